// The console's entry point: wires the streams panel, the query form, the
// URL fragment and live refresh together.

import { getJSON, hasToken, forgetToken } from "./api.js";
import { h } from "./dom.js";
import * as query from "./query.js";
import * as result from "./render.js";
import * as streams from "./streams.js";

// pollSeconds is how often the streams panel is refreshed.
const pollSeconds = 2;

const $ = (id) => document.getElementById(id);
const form = $("query");
const els = {
  section: $("result"),
  meta: $("result-meta"),
  error: $("result-error"),
  chart: $("chart"),
  bars: $("bars"),
  samples: $("samples"),
  table: $("data-table"),
  count: $("data-count"),
};

const app = {
  st: query.readFragment(location.hash),
  list: [],
  specs: new Map(),
  hist: new streams.History(),
  keysFor: "",
  seq: 0,
  inflight: null,
  windowSel: -1,
  liveTimer: null,
};

// ---- streams ----

async function pollStreams() {
  const now = Date.now();
  const res = await getJSON("/v1/streams");
  app.list = res.streams;
  app.hist.add(app.list, now);
  for (const st of app.list) app.specs.set(st.name, st.spec);
  $("streams-msg").textContent = app.list.length ? "" : "no streams yet: create one with POST /v1/streams (see docs/api.md)";
  renderStreams(now);
}

function renderStreams(now) {
  streams.renderList($("streams").tBodies[0], app.list, app.hist, app.st.stream, selectStream, now);
  streams.renderDetail($("stream-detail"), app.list.find((s) => s.name === app.st.stream), app.hist, now);
  $("clock").textContent = new Date(now).toISOString().slice(11, 19) + "Z";
  $("token-forget").hidden = !hasToken();
}

function selectStream(name) {
  if (name === app.st.stream) return;
  app.st.stream = name;
  app.st.aggregate = "";
  app.st.where = [];
  app.st.groupBy = [];
  fillForm();
  changed();
}

// ---- the form ----

function option(value, label, selected) {
  return h("option", { value, selected }, label);
}

// fillForm sets every control from app.st and the stream's spec.
function fillForm() {
  const names = app.list.map((s) => s.name);
  if (!names.includes(app.st.stream)) app.st.stream = names[0] || "";
  $("stream").replaceChildren(...names.map((n) => option(n, n, n === app.st.stream)));
  const spec = app.specs.get(app.st.stream);
  const aggs = spec ? Object.keys(spec.aggregates).sort() : [];
  if (!aggs.includes(app.st.aggregate)) app.st.aggregate = aggs[0] || "";
  $("aggregate").replaceChildren(...aggs.map((a) => option(a, `${a} (${spec.aggregates[a].sketch})`, a === app.st.aggregate)));
  const kind = spec && spec.aggregates[app.st.aggregate] ? spec.aggregates[app.st.aggregate].sketch : "";
  $("kind").textContent = kind;
  for (const l of $("params").querySelectorAll("[data-kind]")) l.hidden = l.dataset.kind !== kind;

  $("range").value = app.st.range;
  for (const l of form.querySelectorAll(".abs")) l.hidden = app.st.range !== "custom";
  $("from").value = app.st.from;
  $("to").value = app.st.to;
  $("step").value = app.st.step;
  $("window").value = app.st.window;
  $("param-q").value = app.st.q;
  $("param-cdf").value = app.st.cdf;
  $("param-top").value = app.st.top;
  $("param-item").value = app.st.item.join("\n");
  $("param-n").value = app.st.n;
  $("live").value = app.st.live;

  const dims = spec ? spec.group_by : [];
  $("group-by").replaceChildren(...dims.map((d) => {
    const cb = h("input", { type: "checkbox", name: "group_by", value: d, checked: app.st.groupBy.includes(d) });
    return h("label", { class: "check" }, cb, d);
  }));
  $("where").replaceChildren(...app.st.where.map((w) => whereRow(dims, w)));
  if (spec) {
    const gran = query.durationSeconds(spec.granularity);
    $("step-list").replaceChildren(option("none", "one window"),
      ...[1, 5, 10, 15, 30, 60, 300, 900, 3600, 86400].filter((s) => s % gran === 0).map((s) => option(query.formatSeconds(s), "")));
  }
  loadKeys(spec);
}

// whereRow is one where= filter: a dimension and a value (with the values
// seen offered as suggestions).
function whereRow(dims, w) {
  const [dim, ...rest] = w.split("=");
  const sel = h("select", { class: "where-dim" }, dims.map((d) => option(d, d, d === dim)));
  const input = h("input", { class: "where-value", size: 10, value: rest.join("="), list: `values-${dim || dims[0]}` });
  sel.addEventListener("change", () => input.setAttribute("list", `values-${sel.value}`));
  const del = h("button", { type: "button", class: "where-del", title: "remove this filter" }, "×");
  const row = h("span", { class: "where-row" }, sel, "=", input, del);
  del.addEventListener("click", () => {
    row.remove();
    changed();
  });
  return row;
}

// loadKeys fetches the stream's recent keys once per stream, for the
// where= value suggestions.
async function loadKeys(spec) {
  if (!spec || app.keysFor === spec.name) return;
  app.keysFor = spec.name;
  try {
    const res = await getJSON(`/v1/streams/${encodeURIComponent(spec.name)}/keys?limit=1000`);
    const lists = spec.group_by.map((d) => {
      const vals = [...new Set(res.keys.map((k) => k[d]))].sort();
      return h("datalist", { id: `values-${d}` }, vals.map((v) => h("option", { value: v })));
    });
    $("where-values").replaceChildren(...lists);
  } catch {
    app.keysFor = ""; // suggestions only: try again next time
  }
}

// readForm takes app.st from the controls.
function readForm() {
  const st = app.st;
  const prev = { stream: st.stream, aggregate: st.aggregate };
  st.stream = $("stream").value;
  st.aggregate = $("aggregate").value;
  if (st.stream !== prev.stream) {
    st.aggregate = "";
    st.where = [];
    st.groupBy = [];
    return true; // the form must be refilled for the new stream
  }
  st.range = $("range").value;
  st.from = $("from").value.trim();
  st.to = $("to").value.trim();
  st.step = $("step").value.trim();
  st.window = $("window").value.trim();
  st.q = $("param-q").value.trim();
  st.cdf = $("param-cdf").value.trim();
  st.top = $("param-top").value.trim();
  st.item = $("param-item").value.split("\n").map((s) => s.trim()).filter((s) => s !== "");
  st.n = $("param-n").value.trim();
  st.live = $("live").value;
  st.groupBy = [...$("group-by").querySelectorAll("input:checked")].map((cb) => cb.value);
  st.where = [...$("where").querySelectorAll(".where-row")]
    .map((r) => [r.querySelector(".where-dim").value, r.querySelector(".where-value").value.trim()])
    .filter(([, v]) => v !== "")
    .map(([d, v]) => `${d}=${v}`);
  return st.aggregate !== prev.aggregate;
}

// changed reads the form, records it in the fragment and runs the query.
function changed() {
  if (readForm()) fillForm();
  else for (const l of form.querySelectorAll(".abs")) l.hidden = app.st.range !== "custom";
  app.windowSel = -1;
  history.replaceState(null, "", query.fragment(app.st));
  $("share").href = query.fragment(app.st);
  live();
  run();
}

// ---- the query ----

async function run() {
  const spec = app.specs.get(app.st.stream);
  if (!spec || !app.st.aggregate) return;
  let req;
  try {
    req = query.request(app.st, spec, Date.now());
  } catch (e) {
    fail(e.message, "");
    return;
  }
  const url = `${req.path}?${req.params}`;
  if (app.inflight) app.inflight.abort();
  const ctl = new AbortController();
  app.inflight = ctl;
  const my = ++app.seq;
  els.section.dataset.state = "loading";
  try {
    const ans = await getJSON(url, ctl.signal);
    if (my !== app.seq) return;
    els.error.hidden = true;
    show(ans);
    els.section.dataset.query = url;
    els.section.dataset.seq = String(my);
    els.section.dataset.state = "ok";
  } catch (e) {
    if (e.name === "AbortError" || my !== app.seq) return;
    fail(e.parameter ? `${e.message} (parameter ${e.parameter})` : e.message, url);
  } finally {
    if (app.inflight === ctl) app.inflight = null;
  }
}

function show(ans) {
  app.answer = ans;
  result.render(ans, els, app.windowSel, (i) => {
    app.windowSel = i;
    show(app.answer);
  });
}

function fail(msg, url) {
  result.clear(els);
  els.error.textContent = msg;
  els.error.hidden = false;
  els.section.dataset.query = url;
  els.section.dataset.state = "error";
}

// live re-runs the query every app.st.live seconds while the tab is
// visible (presets slide with the clock).
function live() {
  clearInterval(app.liveTimer);
  app.liveTimer = null;
  const sec = +app.st.live;
  if (sec > 0) app.liveTimer = setInterval(() => {
    if (document.visibilityState === "visible" && !app.inflight) run();
  }, sec * 1000);
}

// ---- start ----

async function start() {
  document.body.append(h("div", { id: "where-values", hidden: true }));
  form.addEventListener("change", (ev) => {
    if (ev.target.id !== "window-pick") changed();
  });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    changed();
  });
  $("where-add").addEventListener("click", () => {
    const spec = app.specs.get(app.st.stream);
    if (spec && spec.group_by.length) $("where").append(whereRow(spec.group_by, ""));
  });
  $("live").addEventListener("change", changed);
  $("token-forget").addEventListener("click", () => {
    forgetToken();
    location.reload();
  });
  window.addEventListener("hashchange", () => {
    app.st = query.readFragment(location.hash);
    fillForm();
    changed();
  });
  window.addEventListener("resize", () => result.resize(els.chart));
  try {
    await pollStreams();
  } catch (e) {
    $("streams-msg").textContent = `cannot list streams: ${e.message}`;
  }
  fillForm();
  changed();
  setInterval(async () => {
    if (document.visibilityState !== "visible") return;
    try {
      await pollStreams();
    } catch (e) {
      $("streams-msg").textContent = `cannot list streams: ${e.message}`;
    }
  }, pollSeconds * 1000);
}

start();
