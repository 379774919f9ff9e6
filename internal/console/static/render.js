// Rendering a query's answer: series charts with error bands (uPlot),
// bars with bounds, sample tables, and the data table that lists every
// number shown. Windows that are not final are marked everywhere.

import { h, num, groupLabel, shortTime } from "./dom.js";

const palette = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#475569", "#b45309"];
const nonFinalFill = "rgba(245, 158, 11, 0.16)";
// maxChartGroups bounds the groups drawn in a chart (the busiest by
// events); the data table lists them all.
const maxChartGroups = 8;
// maxBarGroups bounds the groups of a one-window bar chart.
const maxBarGroups = 50;
// maxRows bounds the data table.
const maxRows = 2000;

// The window members every kind has; others (fields a newer server adds)
// become extra columns of the data table.
const knownWindowKeys = new Set(["start", "end", "final", "events", "panes", "distinct", "total", "epsilon", "confidence", "error_bound", "top", "items", "count", "min", "max", "compression", "quantiles", "cdf", "population", "size", "truncated", "sample"]);

let chart = null;

// render shows ans in the result section's elements. sel is the chosen
// window of a multi-window top-k or sample answer (index, -1 = last),
// onSelect is called with a new choice.
export function render(ans, els, sel, onSelect) {
  clear(els);
  els.meta.textContent = meta(ans);
  const series = ans.step !== null && (ans.kind === "hll" || ans.kind === "tdigest");
  if (series) chartSeries(els.chart, ans);
  else if (ans.kind === "hll" || ans.kind === "tdigest") els.bars.append(boundBars(ans));
  if (ans.kind === "cms" || ans.kind === "reservoir") {
    const idx = pickWindow(ans, sel);
    const picker = windowPicker(ans, idx, onSelect);
    const target = ans.kind === "cms" ? els.bars : els.samples;
    if (picker) target.append(picker);
    target.append(ans.kind === "cms" ? topBars(ans, idx) : sampleTables(ans, idx));
  }
  dataTable(els.table, els.count, ans);
}

export function clear(els) {
  if (chart) {
    chart.destroy();
    chart = null;
  }
  for (const k of ["chart", "bars", "samples", "table"]) els[k].replaceChildren();
  els.count.textContent = "";
  els.meta.textContent = "";
}

// resize fits the chart to its container's width.
export function resize(el) {
  if (chart) chart.setSize({ width: chartWidth(el), height: chart.height });
}

// chartWidth is the width inside the chart's box (6px padding each side).
function chartWidth(el) {
  return Math.max(el.clientWidth - 12, 300);
}

function meta(ans) {
  const parts = [
    `${ans.stream}/${ans.aggregate} (${ans.kind})`,
    `${ans.from} → ${ans.to}`,
    ans.step ? `step ${ans.step}, window ${ans.window}` : "one window",
    `${ans.keys} keys, ${ans.panes} panes`,
    `watermark ${ans.watermark ?? "none yet"}`,
  ];
  if (ans.resolution?.length) parts.push(`served by ${resolution(ans.resolution)}`);
  return parts.join(" · ");
}

// resolution names what served each part of the range: the stream's own
// panes or a stored rollup tier, with its granularity ("rollup 5s
// 10:00:00–10:05:00, panes 1s 10:05:00–10:05:07").
function resolution(spans) {
  const hms = (t) => t.slice(11, 19);
  return spans.map((s) => `${s.source} ${s.granularity} ${hms(s.from)}–${hms(s.to)}`).join(", ");
}

const secs = (s) => Date.parse(s) / 1000;

// lines lists what a series chart draws per group: one line for a
// distinct count, one per quantile.
function lines(ans) {
  if (ans.kind === "hll") return [{ name: "distinct", pick: (w) => w.distinct }];
  const qs = ans.groups[0]?.windows[0]?.quantiles?.map((x) => x.q) || [];
  return qs.map((q, i) => ({ name: `p${+(q * 100).toFixed(3)}`, pick: (w) => w.quantiles[i] }));
}

function value(x) {
  if (!x) return null;
  return x.estimate !== undefined ? x.estimate : x.value;
}

// busiest orders groups by events, most first.
function busiest(groups) {
  const events = (g) => g.windows.reduce((s, w) => s + w.events, 0);
  return [...groups].sort((a, b) => events(b) - events(a));
}

// chartSeries draws each group's line(s) with the band between lower and
// upper, and shades the windows that are not final.
function chartSeries(el, ans) {
  if (!ans.groups.length) {
    el.append(h("p", { class: "muted" }, "no keys matched: nothing to draw"));
    return;
  }
  const xs = ans.groups[0].windows.map((w) => secs(w.start));
  const data = [xs];
  const series = [{ label: "window start", value: (u, v) => (v == null ? "–" : new Date(v * 1e3).toISOString().replace(".000", "")) }];
  const bands = [];
  const groups = busiest(ans.groups).slice(0, maxChartGroups);
  let c = 0;
  for (const g of groups) {
    const byStart = new Map(g.windows.map((w) => [w.start, w]));
    const ws = ans.groups[0].windows.map((w) => byStart.get(w.start));
    for (const line of lines(ans)) {
      const color = palette[c++ % palette.length];
      const label = ans.groups.length > 1 || ans.kind === "tdigest" ? `${groupLabel(g.key)} ${line.name}` : line.name;
      const at = (f) => ws.map((w) => (w ? f(line.pick(w)) : null));
      data.push(at(value), at((x) => x?.lower ?? null), at((x) => x?.upper ?? null));
      const i = series.length;
      // The legend shows "value [lower – upper]" on the line's row; the
      // bounds' own rows are hidden (class bound).
      const withBounds = (u, v, si, di) => (di == null || v == null ? "–" : `${num(v)} [${num(u.data[si + 1][di])} – ${num(u.data[si + 2][di])}]`);
      series.push(
        { label, stroke: color, width: 2, value: withBounds },
        { label: "lower", class: "bound", stroke: color + "99", width: 1, dash: [3, 3], points: { show: false } },
        { label: "upper", class: "bound", stroke: color + "99", width: 1, dash: [3, 3], points: { show: false } },
      );
      bands.push({ series: [i + 2, i + 1], fill: color + "33" });
    }
  }
  const open = ans.groups[0].windows.filter((w) => !w.final).map((w) => [secs(w.start), secs(w.end)]);
  el.dataset.nonfinalWindows = String(open.length);
  el.dataset.bands = String(bands.length);
  const opts = {
    width: chartWidth(el),
    height: 320,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
    scales: { x: { time: true, range: () => [secs(ans.from), secs(ans.to)] } },
    series,
    bands,
    axes: [{ values: (u, ticks) => ticks.map(timeTick(secs(ans.to) - secs(ans.from))) }, { size: 60, values: (u, vals) => vals.map(num) }],
    hooks: { drawClear: [(u) => shade(u, open)] },
    legend: { live: true },
  };
  // Until the pointer hovers a window, the legend shows the last final
  // window with data (or the last with data when none is final).
  const hasData = (i) => data.slice(1).some((d) => d[i] !== null && d[i] !== 0);
  const final = ans.groups[0].windows.map((w) => w.final);
  let lastIdx = xs.findLastIndex((_, i) => final[i] && hasData(i));
  if (lastIdx < 0) lastIdx = xs.findLastIndex((_, i) => hasData(i));
  if (lastIdx >= 0) opts.hooks.ready = [(u) => u.setLegend({ idx: lastIdx })];
  chart = new uPlot(opts, data, el);
  const note = h("p", { class: "chart-note" }, h("span", { class: "swatch open" }), " not final: may still change · bands: lower–upper bounds");
  if (ans.groups.length > groups.length) note.append(` · the ${groups.length} busiest of ${ans.groups.length} groups drawn; the table has all`);
  el.append(note);
}

// timeTick labels the time axis in UTC: with the date for ranges over two
// days, with seconds for ranges under ten minutes.
function timeTick(rangeSec) {
  return (t) => {
    const iso = new Date(t * 1e3).toISOString();
    if (rangeSec > 2 * 86400) return `${iso.slice(5, 10)} ${iso.slice(11, 16)}`;
    return rangeSec < 600 ? iso.slice(11, 19) : iso.slice(11, 16);
  };
}

// shade fills the plot area behind windows that are not final.
function shade(u, open) {
  const ctx = u.ctx;
  const { left, top, width, height } = u.bbox;
  ctx.save();
  ctx.fillStyle = nonFinalFill;
  for (const [s, e] of open) {
    const x0 = Math.max(u.valToPos(s, "x", true), left);
    const x1 = Math.min(u.valToPos(e, "x", true), left + width);
    if (x1 > x0) ctx.fillRect(x0, top, x1 - x0, height);
  }
  ctx.restore();
}

// bar draws one value with its [lower, upper] whisker, scaled to max.
function bar(label, v, lower, upper, max, attrs) {
  const pct = (x) => `${Math.max(0, Math.min(100, (100 * (x ?? 0)) / (max || 1)))}%`;
  const fill = h("span", { class: "bar-fill" });
  fill.style.width = pct(v);
  const err = h("span", { class: "bar-err" });
  err.style.left = pct(lower);
  err.style.width = `calc(${pct(upper)} - ${pct(lower)})`;
  return h("div", { class: "bar-row", ...attrs },
    h("span", { class: "bar-label", title: label }, label),
    h("span", { class: "bar-track" }, fill, err),
    h("span", { class: "bar-value" }, `${num(v)} `, h("span", { class: "muted" }, `[${num(lower)} – ${num(upper)}]`)));
}

// boundBars shows one-window distinct counts and quantiles as bars, for
// the busiest groups.
function boundBars(ans) {
  const rows = [];
  for (const g of busiest(ans.groups).slice(0, maxBarGroups)) {
    const w = g.windows[0];
    if (!w) continue;
    if (ans.kind === "hll") rows.push([groupLabel(g.key), w.distinct, w.final]);
    else for (const x of w.quantiles) rows.push([`${groupLabel(g.key)} p${+(x.q * 100).toFixed(3)}`, x, w.final]);
  }
  const max = Math.max(...rows.map(([, x]) => x.upper ?? 0), 0);
  const out = h("div", { class: "bars" }, rows.map(([label, x, final]) =>
    bar(label + (final ? "" : " (not final)"), value(x), x.lower, x.upper, max, { "data-final": final, class: final ? "bar-row" : "bar-row nonfinal" })));
  if (ans.groups.length > maxBarGroups) out.append(h("p", { class: "muted" }, `the ${maxBarGroups} busiest of ${ans.groups.length} groups; the table has all`));
  return out;
}

function pickWindow(ans, sel) {
  const n = ans.groups[0]?.windows.length || 0;
  return sel >= 0 && sel < n ? sel : n - 1;
}

function windowPicker(ans, idx, onSelect) {
  const ws = ans.groups[0]?.windows || [];
  if (ws.length < 2) return null;
  const s = h("select", { id: "window-pick" }, ws.map((w, i) =>
    h("option", { value: i, selected: i === idx }, `${shortTime(w.start)} – ${shortTime(w.end)}${w.final ? "" : " (not final)"}`)));
  s.addEventListener("change", () => onSelect(+s.value));
  return h("label", { class: "picker" }, "window ", s);
}

// topBars shows each group's heavy hitters (and asked items) as bars with
// their lower and upper counts.
function topBars(ans, idx) {
  const out = h("div", { class: "bars" });
  for (const g of busiest(ans.groups).slice(0, maxChartGroups)) {
    const w = g.windows[idx];
    if (!w) continue;
    const all = [...w.top, ...(w.items || [])];
    const max = Math.max(...all.map((x) => x.upper), 1);
    out.append(h("h3", { class: w.final ? "" : "nonfinal" }, `${groupLabel(g.key)} · ${num(w.total)} events · ±${num(w.error_bound)} at ${+(w.confidence * 100).toFixed(2)}%`, w.final ? "" : " · not final"));
    if (!all.length) out.append(h("p", { class: "muted" }, "no items"));
    for (const x of w.top) out.append(bar(x.item, x.estimate, x.lower, x.upper, max, { "data-item": x.item }));
    for (const x of w.items || []) out.append(bar(`item=${x.item}`, x.estimate, x.lower, x.upper, max, { "data-item": x.item, class: "bar-row asked" }));
  }
  return out;
}

// sampleTables shows each group's sampled events as a table, one column
// per field.
function sampleTables(ans, idx) {
  const out = h("div", {});
  for (const g of ans.groups.slice(0, maxChartGroups)) {
    const w = g.windows[idx];
    if (!w) continue;
    out.append(h("h3", { class: w.final ? "" : "nonfinal" },
      `${groupLabel(g.key)} · ${w.sample.length} of ${num(w.population)} events (reservoir size ${w.size})`,
      w.truncated ? " · truncated by the byte budget" : "", w.final ? "" : " · not final"));
    const objects = w.sample.every((x) => x && typeof x === "object" && !Array.isArray(x));
    const cols = objects ? [...new Set(w.sample.flatMap((x) => Object.keys(x)))] : ["value"];
    const cell = (v) => (typeof v === "string" ? v : JSON.stringify(v) ?? "");
    out.append(h("table", { class: "grid samples" },
      h("thead", {}, h("tr", {}, cols.map((c) => h("th", {}, c)))),
      h("tbody", {}, w.sample.map((x) => h("tr", {}, cols.map((c) => h("td", {}, cell(objects ? x[c] : x))))))));
  }
  return out;
}

// dataTable lists every number of the answer, one row per group, window
// and measure, with the raw values in data-* attributes.
function dataTable(table, count, ans) {
  const extra = [...new Set(ans.groups.flatMap((g) => g.windows.flatMap((w) => Object.keys(w))))]
    .filter((k) => !knownWindowKeys.has(k));
  const kindCols = {
    hll: ["estimate", "lower", "upper"],
    tdigest: ["measure", "value", "lower", "upper", "rank error"],
    cms: ["total", "error bound", "rank", "item", "estimate", "lower", "upper"],
    reservoir: ["population", "#", "sample"],
  }[ans.kind];
  const head = ["group", "start", "end", "final", "events", ...extra, ...kindCols];
  const body = h("tbody", {});
  let n = 0;
  let total = 0;
  for (const g of ans.groups) {
    for (const w of g.windows) {
      for (const m of measures(ans.kind, w)) {
        total++;
        if (n >= maxRows) continue;
        n++;
        const attrs = {
          class: w.final ? null : "nonfinal",
          "data-group": JSON.stringify(g.key),
          "data-start": w.start,
          "data-end": w.end,
          "data-final": String(w.final),
          "data-events": w.events,
          ...m.attrs,
        };
        body.append(h("tr", attrs,
          h("td", {}, groupLabel(g.key)), h("td", {}, shortTime(w.start)), h("td", {}, shortTime(w.end)),
          h("td", {}, w.final ? "final" : h("span", { class: "badge open" }, "not final")),
          h("td", { class: "n" }, num(w.events)),
          extra.map((k) => h("td", {}, typeof w[k] === "object" ? JSON.stringify(w[k]) : String(w[k] ?? "–"))),
          m.cells.map((c) => h("td", { class: typeof c === "number" || c === null ? "n" : null }, typeof c === "number" || c === null ? num(c) : c))));
      }
    }
  }
  table.append(h("thead", {}, h("tr", {}, head.map((c) => h("th", {}, c)))), body);
  count.textContent = total > n ? `(${n} of ${total} rows)` : `(${total} rows)`;
  table.dataset.rows = String(total);
}

// measures lists a window's rows for the data table: the cells shown and
// the exact values as data-* attributes.
function measures(kind, w) {
  const raw = (x) => (x === null || x === undefined ? "" : String(x));
  switch (kind) {
    case "hll": {
      const d = w.distinct;
      return [{ cells: [d.estimate, d.lower, d.upper], attrs: { "data-estimate": raw(d.estimate), "data-lower": raw(d.lower), "data-upper": raw(d.upper) } }];
    }
    case "tdigest":
      return [
        ...w.quantiles.map((x) => ({
          cells: [`p${+(x.q * 100).toFixed(3)}`, x.value, x.lower, x.upper, x.rank_error],
          attrs: { "data-q": raw(x.q), "data-value": raw(x.value), "data-lower": raw(x.lower), "data-upper": raw(x.upper) },
        })),
        ...(w.cdf || []).map((x) => ({ cells: [`cdf(${x.value})`, x.p, null, null, null], attrs: { "data-cdf": raw(x.value), "data-value": raw(x.p) } })),
      ];
    case "cms":
      if (!w.top.length && !(w.items || []).length) return [{ cells: [w.total, w.error_bound, "", "", null, null, null], attrs: {} }];
      return [
        ...w.top.map((x, i) => ({ cells: [w.total, w.error_bound, String(i + 1), x.item, x.estimate, x.lower, x.upper], attrs: { "data-item": x.item, "data-estimate": raw(x.estimate), "data-lower": raw(x.lower), "data-upper": raw(x.upper) } })),
        ...(w.items || []).map((x) => ({ cells: [w.total, w.error_bound, "item=", x.item, x.estimate, x.lower, x.upper], attrs: { "data-item": x.item, "data-asked": "true", "data-estimate": raw(x.estimate), "data-lower": raw(x.lower), "data-upper": raw(x.upper) } })),
      ];
    case "reservoir":
      if (!w.sample.length) return [{ cells: [w.population, "", ""], attrs: {} }];
      return w.sample.map((x, i) => ({ cells: [w.population, String(i + 1), JSON.stringify(x)], attrs: { "data-sample": JSON.stringify(x) } }));
  }
  return [];
}
