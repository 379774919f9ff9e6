// DOM and formatting helpers. Text always goes in as textContent, never
// as HTML: sampled events and item names are user data.

// h makes an element: attrs are attributes (data-* included; null values
// are left out), children are nodes or strings.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

const svgNS = "http://www.w3.org/2000/svg";

// sparkline draws values as a small SVG polyline (NaN: a gap).
export function sparkline(values, w = 110, hgt = 22) {
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", w);
  svg.setAttribute("height", hgt);
  svg.setAttribute("viewBox", `0 0 ${w} ${hgt}`);
  svg.setAttribute("data-values", values.map((v) => (isFinite(v) ? +v.toFixed(3) : "")).join(","));
  const finite = values.filter((v) => isFinite(v));
  if (finite.length < 2) return svg;
  const max = Math.max(...finite, 1e-9);
  const dx = w / Math.max(values.length - 1, 1);
  const pts = values
    .map((v, i) => (isFinite(v) ? `${(i * dx).toFixed(1)},${(hgt - 1 - (v / max) * (hgt - 2)).toFixed(1)}` : null))
    .filter((p) => p !== null);
  const line = document.createElementNS(svgNS, "polyline");
  line.setAttribute("points", pts.join(" "));
  svg.append(line);
  return svg;
}

const big = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const small = new Intl.NumberFormat("en-US", { maximumSignificantDigits: 4 });

// num formats a number for reading; null and undefined are a dash.
export function num(x) {
  if (x === null || x === undefined || !isFinite(x)) return "–";
  return Math.abs(x) >= 1000 ? big.format(x) : small.format(x);
}

// ago formats a duration in seconds as "12s", "3m 5s", "2h 1m".
export function ago(sec) {
  if (!isFinite(sec)) return "–";
  const neg = sec < 0;
  sec = Math.round(Math.abs(sec));
  let out;
  if (sec < 60) out = `${sec}s`;
  else if (sec < 3600) out = `${Math.floor(sec / 60)}m ${sec % 60}s`;
  else if (sec < 86400) out = `${Math.floor(sec / 3600)}h ${Math.floor((sec % 3600) / 60)}m`;
  else out = `${Math.floor(sec / 86400)}d ${Math.floor((sec % 86400) / 3600)}h`;
  return neg ? "−" + out : out;
}

// shortTime shows an RFC 3339 time without the date when it is today (UTC).
export function shortTime(s) {
  if (!s) return "–";
  const today = new Date().toISOString().slice(0, 10);
  const t = s.replace(/(\.\d{3})\d+/, "$1");
  return t.startsWith(today) ? t.slice(11) : t;
}

// groupLabel names a group by its key: "country=DE device=mobile", or
// "all" for the group of an answer without group_by.
export function groupLabel(key) {
  const parts = Object.entries(key || {}).map(([k, v]) => `${k}=${v}`);
  return parts.length ? parts.join(" ") : "all";
}

// genericValue renders JSON of unknown shape (fields the console does not
// know yet): arrays of objects as tables, objects as key/value tables.
export function genericValue(v) {
  if (Array.isArray(v) && v.length && v.every((x) => x && typeof x === "object" && !Array.isArray(x))) {
    const cols = [...new Set(v.flatMap((x) => Object.keys(x)))];
    return h("table", { class: "grid" },
      h("thead", {}, h("tr", {}, cols.map((c) => h("th", {}, c)))),
      h("tbody", {}, v.map((x) => h("tr", {}, cols.map((c) => h("td", {}, genericValue(x[c])))))));
  }
  if (v && typeof v === "object" && !Array.isArray(v)) {
    return h("table", { class: "kv" },
      h("tbody", {}, Object.entries(v).map(([k, x]) => h("tr", {}, h("th", {}, k), h("td", {}, genericValue(x))))));
  }
  if (v === null || v === undefined) return "–";
  return typeof v === "string" ? v : JSON.stringify(v);
}
