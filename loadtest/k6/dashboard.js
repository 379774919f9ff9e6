// k6 dashboard scenario of the sketchd query API: VUS virtual users each
// watch one dashboard (the panels of loadtest/querymix's DashboardOf, with
// the filter value of user i = VALUES[i mod 20]) and refresh all its
// panels at once every REFRESH seconds, as a browser does. 10 panels × 20
// values = 200 distinct queries. Thresholds fail the run (exit code 99).
//
//   go run ./loadtest/cmd/querymix -format dashboard > dashboard.json
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e DASHBOARD=dashboard.json loadtest/k6/dashboard.js
//
// Environment: BASE_URL, VUS (default 50), REFRESH (seconds, default 5),
// DURATION (default 60s), DASHBOARD (path of the JSON), P99_MS (default
// 20), MAX_ERROR_RATE (default 0.001).
//
// Each request is tagged with its panel (`panel`, and `name` for k6's
// summary), and each answer adds to the Rate dashboard_stale whether sketchd
// served it stale (response header Sketchd-Stale: true), tagged with the
// panel. With the system tags vu and iter, which k6 emits as metadata, a
// request's http_req_duration and its dashboard_stale sample share (vu,
// iter, panel): the load runner joins them from k6's CSV output
//
//   k6 run --system-tags status,vu,iter --out csv=fileName=dash.csv,timeFormat=unix_micro ...
//
// (loadtest/cmd/bench, k6csv.go).
import http from 'k6/http';
import { check, sleep } from 'k6';
import exec from 'k6/execution';
import { Rate } from 'k6/metrics';

// stale is the share of answers served stale (Sketchd-Stale: true).
const stale = new Rate('dashboard_stale');

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const VUS = parseInt(__ENV.VUS || '50', 10);
const REFRESH = parseFloat(__ENV.REFRESH || '5');
const DURATION = __ENV.DURATION || '60s';
const P99 = __ENV.P99_MS || '20';
const MAX_ERROR_RATE = __ENV.MAX_ERROR_RATE || '0.001';
const D = JSON.parse(open(__ENV.DASHBOARD || './dashboard.json'));

export const options = {
  discardResponseBodies: true,
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(99)', 'max'],
  // A browser opens up to 6 connections per host.
  batchPerHost: 6,
  scenarios: {
    dashboard: {
      executor: 'constant-vus',
      vus: VUS,
      duration: DURATION,
      gracefulStop: '5s',
    },
  },
  thresholds: {
    http_req_failed: [`rate<${MAX_ERROR_RATE}`],
    http_req_duration: [`p(99)<${P99}`],
  },
};

export default function () {
  const vu = exec.vu.idInTest - 1;
  const v = D.values[vu % D.values.length];
  // Users do not refresh in step: each starts at its own offset.
  if (exec.vu.iterationInScenario === 0) sleep((vu % 10) * REFRESH / 10);
  const start = Date.now();
  const reqs = D.panels.map((p) => ({
    method: 'GET',
    url: BASE_URL + p.path.split('{v}').join(encodeURIComponent(v)),
    params: { tags: { name: p.name, panel: p.name } },
  }));
  const res = http.batch(reqs);
  res.forEach((r, i) => {
    check(r, { 'status 200': (x) => x.status === 200 });
    stale.add(r.headers['Sketchd-Stale'] === 'true', { panel: D.panels[i].name });
  });
  const left = REFRESH - (Date.now() - start) / 1000;
  if (left > 0) sleep(left);
}
