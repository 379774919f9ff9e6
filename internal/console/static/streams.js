// The streams panel: each stream's health and counters, with sparklines
// of the counters' rates computed from successive polls, its rollup tiers
// when the server reports them, and its spec.

import { h, sparkline, num, ago, shortTime, genericValue } from "./dom.js";

// keep is how many polls of history each stream keeps.
const keep = 61;

// The status members the panel shows by name; any other member (a newer
// server's, such as rollup tier progress) is shown as it comes.
const knownStatus = new Set(["name", "id", "state", "error", "created", "watermark", "max_event_time", "committed_watermark", "last_commit", "counters", "open_panes", "evicted_early", "dropped", "pending", "ack_floor", "spec", "rollups"]);

// counters flattens a status's counters, invalid ones by reason.
export function counters(st) {
  const c = st.counters || {};
  const out = {};
  for (const [k, v] of Object.entries(c)) {
    if (k === "invalid") {
      out.invalid = Object.values(v || {}).reduce((a, b) => a + b, 0);
      for (const [r, n] of Object.entries(v || {})) out[`invalid: ${r}`] = n;
    }
    else out[k] = v;
  }
  out.dropped = st.dropped;
  out.evicted_early = st.evicted_early;
  return out;
}

// History keeps each stream's recent counter samples.
export class History {
  constructor() {
    this.byStream = new Map();
  }

  add(list, nowMs) {
    for (const st of list) {
      const hist = this.byStream.get(st.name) || [];
      hist.push({ t: nowMs / 1000, c: counters(st) });
      if (hist.length > keep) hist.shift();
      this.byStream.set(st.name, hist);
    }
  }

  // rates returns the per-second rates of a counter between successive
  // samples (NaN where it was missing or went backwards: a restart).
  rates(name, key) {
    const hist = this.byStream.get(name) || [];
    const out = [];
    for (let i = 1; i < hist.length; i++) {
      const a = hist[i - 1].c[key];
      const b = hist[i].c[key];
      const dt = hist[i].t - hist[i - 1].t;
      out.push(a === undefined || b === undefined || b < a || dt <= 0 ? NaN : (b - a) / dt);
    }
    return out;
  }

  // ingestRates: events applied per second (on time + late).
  ingestRates(name) {
    const a = this.rates(name, "on_time");
    const b = this.rates(name, "late");
    return a.map((x, i) => x + (b[i] || 0));
  }
}

const last = (xs) => (xs.length ? xs[xs.length - 1] : NaN);

function lagSeconds(t, nowMs) {
  return t ? nowMs / 1000 - Date.parse(t) / 1000 : NaN;
}

function stateBadge(st) {
  return h("span", { class: `badge state-${st.state}`, title: st.error || null }, st.state);
}

// renderList fills the streams table; clicking a row selects its stream.
export function renderList(tbody, list, hist, selected, onSelect, nowMs) {
  tbody.replaceChildren(...list.map((st) => {
    const rates = hist.ingestRates(st.name);
    const tr = h("tr", { class: st.name === selected ? "selected" : null, "data-stream": st.name },
      h("td", {}, st.name),
      h("td", {}, stateBadge(st)),
      h("td", { class: "n" }, isFinite(last(rates)) ? num(last(rates)) : "–", " ", sparkline(rates, 60, 16)),
      h("td", { class: "n" }, ago(lagSeconds(st.watermark, nowMs))));
    tr.addEventListener("click", () => onSelect(st.name));
    return tr;
  }));
}

// renderDetail shows one stream's health, counters, tiers and spec.
export function renderDetail(el, st, hist, nowMs) {
  if (!st) {
    el.replaceChildren();
    return;
  }
  const health = [
    ["state", stateBadge(st), st.error || ""],
    ["watermark", shortTime(st.watermark), `lag ${ago(lagSeconds(st.watermark, nowMs))}`],
    ["committed watermark", shortTime(st.committed_watermark), `lag ${ago(lagSeconds(st.committed_watermark, nowMs))}`],
    ["max event time", shortTime(st.max_event_time), ""],
    ["last commit", shortTime(st.last_commit), st.last_commit ? `${ago(lagSeconds(st.last_commit, nowMs))} ago` : ""],
    ["open panes", num(st.open_panes), ""],
    ["pending (JetStream)", num(st.pending), `ack floor ${num(st.ack_floor)}`],
  ];
  const cs = counters(st);
  const counterRows = Object.entries(cs).map(([k, v]) => {
    const rates = hist.rates(st.name, k);
    const reason = k.startsWith("invalid: ") ? k.slice(9) : null;
    return h("tr", { "data-counter": k, "data-value": v, class: reason ? "sub" : null },
      h("th", {}, reason || k), h("td", { class: "n" }, num(v)),
      h("td", { class: "n" }, isFinite(last(rates)) ? num(last(rates)) : "–"),
      h("td", {}, sparkline(rates, 80, 18)));
  });
  const aggs = Object.entries(st.spec.aggregates || {}).map(([name, a]) => {
    const { sketch, field, ...params } = a;
    return h("tr", {}, h("th", {}, name), h("td", {}, sketch), h("td", {}, field || "(whole event)"),
      h("td", { class: "muted" }, Object.entries(params).map(([k, v]) => `${k} ${v}`).join(", ")));
  });
  const parts = [
    h("h2", {}, st.name, " ", stateBadge(st)),
    h("table", { class: "kv health" }, h("tbody", {}, health.map(([k, v, note]) =>
      h("tr", {}, h("th", {}, k), h("td", {}, v), h("td", { class: "muted" }, note))))),
    h("h3", {}, "counters"),
    h("table", { class: "grid counters" },
      h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", {}, "total"), h("th", {}, "/s"), h("th", {}, "rate"))),
      h("tbody", {}, counterRows)),
  ];
  // Rollup tiers (spec.rollups) and their progress, when the server has
  // them, and any other status member this console does not know yet.
  if (st.spec.rollups?.length) parts.push(h("h3", {}, "rollup tiers"), tiersTable(st, nowMs));
  const other = Object.entries(st).filter(([k]) => !knownStatus.has(k));
  for (const [k, v] of other) parts.push(h("h3", {}, k.replaceAll("_", " ")), h("div", { class: "other" }, genericValue(v)));
  parts.push(
    h("h3", {}, "aggregates"),
    h("table", { class: "grid" }, h("tbody", {}, aggs)),
    h("details", {}, h("summary", {}, "spec"), h("pre", { class: "spec" }, JSON.stringify(st.spec, null, 2))));
  const open = el.querySelector("details")?.open;
  el.replaceChildren(...parts);
  if (open) el.querySelector("details").open = true;
}

// tiersTable shows each rollup tier of the spec with its build progress
// from the status: built to (its panes before are stored), ready to (how
// far its source panes are final) and how far the build is behind.
function tiersTable(st, nowMs) {
  const rows = st.spec.rollups.map((r, i) => {
    const p = (st.rollups || [])[i] || {};
    const behind = p.built_to && p.ready_to ? (Date.parse(p.ready_to) - Date.parse(p.built_to)) / 1000 : null;
    const note = !p.built_to ? "not built yet" : behind > 0 ? `building, ${ago(behind)} behind` : `built, lag ${ago(lagSeconds(p.built_to, nowMs))}`;
    return h("tr", { "data-tier": r.granularity, "data-built-to": p.built_to || "" },
      h("th", {}, r.granularity), h("td", {}, `keep ${r.retention}`),
      h("td", {}, shortTime(p.built_to)), h("td", {}, shortTime(p.ready_to)), h("td", { class: "muted" }, note));
  });
  return h("table", { class: "grid tiers" },
    h("thead", {}, h("tr", {}, h("th", {}, "tier"), h("th", {}, "retention"), h("th", {}, "built to"), h("th", {}, "ready to"), h("th", {}, ""))),
    h("tbody", {}, rows));
}
