// k6 load test of the sketchd query API: a constant arrival rate over the
// query mix of loadtest/querymix (mix.json, regenerate with
// `go run ./loadtest/cmd/querymix -format k6 > loadtest/k6/mix.json`),
// with thresholds that fail the run (exit code 99) on a regression.
//
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e RATE=1000 -e DURATION=30s loadtest/k6/queries.js
//
// Environment: BASE_URL, RATE (requests/s), DURATION, MIX (path of the mix
// JSON, default ./mix.json next to this script), P99_1H_MS, P99_24H_MS and
// P99_30D_MS (latency thresholds, default 10, 50 and 50: the targets of
// issue 14), MAX_ERROR_RATE (default 0.001).
import http from 'k6/http';
import { check } from 'k6';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const RATE = parseInt(__ENV.RATE || '1000', 10);
const DURATION = __ENV.DURATION || '30s';
const P99_1H = __ENV.P99_1H_MS || '10';
const P99_24H = __ENV.P99_24H_MS || '50';
const P99_30D = __ENV.P99_30D_MS || '50';
const MAX_ERROR_RATE = __ENV.MAX_ERROR_RATE || '0.001';
const MIX = JSON.parse(open(__ENV.MIX || './mix.json'));

// Cumulative weights for a weighted pick.
const CUM = [];
let total = 0;
for (const q of MIX) {
  total += q.weight;
  CUM.push(total);
}

export const options = {
  discardResponseBodies: true,
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(99)', 'max'],
  scenarios: {
    queries: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      // Enough VUs for 200 ms of arrivals, started before the run: a VU
      // that k6 must start mid-run (past preAllocatedVUs) takes longer to
      // start on a loaded box than the arrivals it is for, which k6 drops
      // meanwhile (its docs: "Arrival-rate VU allocation"). Latency past
      // 200 ms still drops arrivals, up to maxVUs.
      preAllocatedVUs: Math.max(10, Math.ceil(RATE / 5)),
      maxVUs: Math.max(50, Math.ceil(RATE / 2)),
      gracefulStop: '5s',
    },
  },
  thresholds: {
    // A request that is not 2xx is a failure.
    http_req_failed: [`rate<${MAX_ERROR_RATE}`],
    'http_req_duration{range:1h}': [`p(99)<${P99_1H}`],
    'http_req_duration{range:24h}': [`p(99)<${P99_24H}`],
    'http_req_duration{range:30d}': [`p(99)<${P99_30D}`],
    // Arrivals k6 could not start (no free VU): the rate was not held.
    dropped_iterations: ['count<1'],
  },
};

export default function () {
  const r = Math.random() * total;
  let i = 0;
  while (CUM[i] <= r) i++;
  const q = MIX[i];
  let url = BASE_URL + q.path;
  if (q.from_ago > 0) {
    const from = Math.floor(Date.now() / 1000) - q.from_ago;
    url += (q.path.includes('?') ? '&' : '?') + 'from=' + from;
  }
  const res = http.get(url, { tags: { name: q.name, range: q.range } });
  check(res, { 'status 200': (x) => x.status === 200 });
}
