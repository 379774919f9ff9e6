// The query: the form's state, its place in the URL fragment (so a link
// shares it; the token is never part of it), and the API request it makes.

// Go duration strings as the API writes them ("1m", "1h30m", "168h", "7d")
// to seconds; NaN when unparsable.
export function durationSeconds(s) {
  if (typeof s !== "string" || s.trim() === "") return NaN;
  s = s.trim();
  if (s === "0" || s === "0s") return 0;
  const unit = { d: 86400, h: 3600, m: 60, s: 1, ms: 1e-3, us: 1e-6, "µs": 1e-6, ns: 1e-9 };
  const re = /(\d+(?:\.\d+)?)(ms|us|µs|ns|d|h|m|s)/gy;
  let total = 0;
  let end = 0;
  for (let m; (m = re.exec(s)) !== null; ) {
    total += parseFloat(m[1]) * unit[m[2]];
    end = re.lastIndex;
  }
  return end === s.length ? total : NaN;
}

// formatSeconds writes a whole number of seconds as a short duration.
export function formatSeconds(sec) {
  const parts = [
    [86400, "d"],
    [3600, "h"],
    [60, "m"],
  ];
  for (const [n, u] of parts) if (sec >= n && sec % n === 0) return sec / n + u;
  return sec + "s";
}

// niceSteps are the steps "auto" picks from, in seconds.
const niceSteps = [1, 5, 10, 15, 30, 60, 300, 600, 900, 1800, 3600, 10800, 21600, 43200, 86400, 604800];

// autoStep picks a step for about 120 windows over rangeSec: the smallest
// nice multiple of the granularity at least rangeSec/120.
export function autoStep(rangeSec, granSec) {
  const want = Math.max(granSec, rangeSec / 120);
  for (const s of niceSteps) if (s >= want && s % granSec === 0) return s;
  return Math.ceil(want / granSec) * granSec;
}

// The state's members and their names in the fragment.
const single = { stream: "s", aggregate: "a", range: "r", from: "from", to: "to", step: "step", window: "window", q: "q", cdf: "cdf", top: "top", n: "n", live: "live" };
const multi = { where: "where", groupBy: "g", item: "item" };

export function emptyState() {
  return { stream: "", aggregate: "", range: "1h", from: "", to: "", step: "", window: "", q: "", cdf: "", top: "", n: "", live: "0", where: [], groupBy: [], item: [] };
}

// readFragment reads the state from location.hash.
export function readFragment(hash) {
  const st = emptyState();
  const p = new URLSearchParams(hash.replace(/^#/, ""));
  for (const [k, name] of Object.entries(single)) if (p.has(name)) st[k] = p.get(name);
  for (const [k, name] of Object.entries(multi)) st[k] = p.getAll(name).filter((v) => v !== "");
  return st;
}

// fragment writes the state as a fragment, leaving out empty members.
export function fragment(st) {
  const p = new URLSearchParams();
  for (const [k, name] of Object.entries(single)) if (st[k] !== "" && st[k] != null) p.set(name, st[k]);
  for (const [k, name] of Object.entries(multi)) for (const v of st[k]) p.append(name, v);
  return "#" + p.toString();
}

// request turns the state into the API path and parameters of the query,
// for the stream's spec and aggregate kind. nowMs is the clock for the
// presets. It throws an Error with a message for the user when the state
// cannot make a query.
export function request(st, spec, nowMs) {
  const agg = spec.aggregates[st.aggregate];
  if (!agg) throw new Error(`stream ${spec.name} has no aggregate ${st.aggregate}`);
  const p = new URLSearchParams();
  const gran = durationSeconds(spec.granularity);
  let rangeSec, presetTo = NaN;
  if (st.range === "custom") {
    if (!st.from) throw new Error("absolute range: give from (and to, or it is now)");
    p.set("from", st.from);
    if (st.to) p.set("to", st.to);
    const f = parseTime(st.from);
    const t = st.to ? parseTime(st.to) : nowMs / 1000;
    rangeSec = t - f;
  } else {
    rangeSec = durationSeconds(st.range);
    presetTo = Math.ceil(nowMs / 1000);
    p.set("from", String(presetTo - rangeSec));
    p.set("to", String(presetTo));
  }
  for (const w of st.where) p.append("where", w);
  if (st.groupBy.length) p.set("group_by", st.groupBy.join(","));
  // An empty step is "auto": a series for distinct counts and quantiles,
  // one window over the range for top-k and samples. "none" is one window.
  let step = st.step.trim();
  if (step === "") {
    const series = (agg.sketch === "hll" || agg.sketch === "tdigest") && isFinite(rangeSec) && rangeSec > 0;
    step = series ? formatSeconds(autoStep(rangeSec, gran || 60)) : "none";
  }
  if (step !== "" && step !== "none") p.set("step", step);
  // A preset starts on its step's grid, as Grafana aligns its Prometheus
  // range queries: the windows then stay the same from one live refresh to
  // the next (the server answers the final ones from its caches) and line
  // up with the rollup tiers, where a from that moves with the clock makes
  // every window new, merged from the stream's own panes
  // (docs/console.md).
  const stepSec = durationSeconds(step);
  if (isFinite(presetTo) && stepSec > 0 && stepSec <= rangeSec) {
    p.set("from", String(Math.floor((presetTo - rangeSec) / stepSec) * stepSec));
  }
  if (st.window.trim() !== "" && step !== "none") p.set("window", st.window.trim());
  switch (agg.sketch) {
    case "tdigest":
      if (st.q.trim()) p.set("q", st.q.replace(/\s+/g, ""));
      if (st.cdf.trim()) p.set("cdf", st.cdf.replace(/\s+/g, ""));
      break;
    case "cms":
      if (st.top.trim()) p.set("top", st.top.trim());
      for (const it of st.item) p.append("item", it);
      break;
    case "reservoir":
      if (st.n.trim()) p.set("n", st.n.trim());
      break;
  }
  const path = `/v1/streams/${encodeURIComponent(spec.name)}/aggregates/${encodeURIComponent(st.aggregate)}`;
  return { path, params: p, kind: agg.sketch };
}

// parseTime reads the API's time formats (RFC 3339, unix seconds) into
// unix seconds; NaN when unparsable.
export function parseTime(s) {
  s = String(s).trim();
  if (/^-?\d+(\.\d+)?$/.test(s)) return parseFloat(s);
  const ms = Date.parse(s);
  return isNaN(ms) ? NaN : ms / 1000;
}
