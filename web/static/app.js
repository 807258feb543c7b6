// Conflux's delivery dashboard. It reads the admin APIs with the token
// kept in this tab's sessionStorage and draws what they answer. What the
// APIs return reaches the page only as text nodes and attribute values,
// never as HTML: an event, a request or a response can hold anything.
"use strict";

const TOKEN_KEY = "conflux.admin_token";
const REFRESH_MS = 15000;

// The ranges the selector offers, as delivery-metrics windows. MINUTE and
// DAY use the API's default range (an hour, 30 days); HOUR asks for a day.
const RANGES = {
  hour: { granularity: "MINUTE" },
  day: { granularity: "HOUR", since: 24 * 3600e3 },
  month: { granularity: "DAY" },
};

const COUNT_SERIES = [
  { metric: "successes", label: "successes", cls: "s-ok" },
  { metric: "discarded", label: "discarded", cls: "s-bad" },
  { metric: "retried", label: "retried", cls: "s-retry" },
  { metric: "expired", label: "expired", cls: "s-expired" },
];
const LATENCY_SERIES = [
  { key: "p50_ms", label: "p50", cls: "l-50" },
  { key: "p95_ms", label: "p95", cls: "l-95" },
  { key: "p99_ms", label: "p99", cls: "l-99" },
];

const state = { range: "hour", source: "", seq: 0, timer: 0, rendered: "", drill: null };

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// el and svg build an element: attrs become attributes (false and null
// leave one out, true sets it empty), children are nodes or strings,
// which are added as text.
function el(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}
function svg(tag, attrs, ...children) {
  return build(document.createElementNS("http://www.w3.org/2000/svg", tag), attrs, children);
}
function build(node, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// ---- the token and the APIs ----

// takeTokenFromFragment moves "#token=…" into sessionStorage and out of
// the address bar (and so out of the history).
function takeTokenFromFragment() {
  const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (!m) return false;
  sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
  history.replaceState(null, "", location.pathname + location.search);
  return true;
}

class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
  toString() {
    return this.status ? `${this.status} ${this.code}: ${this.message}` : this.message;
  }
}

// api calls one admin API and returns its JSON body; any answer but 2xx
// throws an APIError with the API's own error code and message.
async function api(path, { method = "GET", body } = {}) {
  const headers = { Authorization: "Bearer " + (sessionStorage.getItem(TOKEN_KEY) || "") };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(path, { method, headers, cache: "no-store", body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new APIError(0, "network", `${method} ${path}: ${e.message}`);
  }
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: reported below when it is an error
  }
  if (!resp.ok) {
    const e = (data && data.error) || {};
    throw new APIError(resp.status, e.code || "http_" + resp.status, e.message || text.slice(0, 300) || resp.statusText);
  }
  return data;
}

// fail shows an error: a 401 signs out with the API's message, anything
// else goes in the banner and the data already shown stays.
function fail(err) {
  if (err instanceof APIError && err.status === 401) {
    signOut(String(err));
    return;
  }
  showError(String(err));
}

function showError(msg) {
  $("error").textContent = msg;
  $("error").hidden = !msg;
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  clearInterval(state.timer);
  state.timer = 0;
  state.seq++;
  state.rendered = "";
  state.drill = null;
  for (const id of ["dashboard", "controls", "drill"]) $(id).hidden = true;
  $("destinations").replaceChildren();
  showError("");
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("login-error").hidden = !message;
  $("token").focus();
}

function start() {
  $("login").hidden = true;
  $("dashboard").hidden = false;
  $("controls").hidden = false;
  loadSources();
  refresh();
  clearInterval(state.timer);
  state.timer = setInterval(() => document.hidden || refresh(), REFRESH_MS);
}

// ---- the overview ----

async function loadSources() {
  try {
    const { sources } = await api("/api/v1/sources");
    const sel = $("source");
    sel.replaceChildren(
      el("option", { value: "" }, "all sources"),
      ...sources.map((s) => el("option", { value: s.id }, s.name && s.name !== s.id ? `${s.name} (${s.id})` : s.id)),
    );
    sel.value = state.source;
  } catch (e) {
    fail(e);
  }
}

function metricsPath(id) {
  const r = RANGES[state.range];
  const q = new URLSearchParams({ destination: id, granularity: r.granularity });
  if (state.source) q.set("source", state.source);
  if (r.since) q.set("start", new Date(Date.now() - r.since).toISOString());
  return "/api/v1/delivery-metrics?" + q;
}

async function refresh() {
  const seq = ++state.seq;
  try {
    const { destinations } = await api("/api/v1/destinations");
    const rows = await Promise.all(
      destinations.map(async (d) => {
        const [metrics, queue] = await Promise.all([
          api(metricsPath(d.id)),
          api(`/api/v1/destinations/${encodeURIComponent(d.id)}/delivery`).catch((e) => {
            if (e.status === 404) return null; // disabled, or never ran
            throw e;
          }),
        ]);
        return { d, metrics, queue };
      }),
    );
    if (seq !== state.seq) return; // a newer refresh, or a sign-out, came since
    render(rows);
    showError("");
    $("updated").textContent = "updated " + fmtClock(new Date(), true);
  } catch (e) {
    if (seq === state.seq) fail(e);
  }
}

// render redraws the destinations, unless nothing changed since the last
// time (so that an auto-refresh does not disturb a reader).
function render(rows) {
  const key = state.range + JSON.stringify(rows);
  if (key === state.rendered) return;
  state.rendered = key;
  $("destinations").replaceChildren(
    ...(rows.length ? rows.map(card) : [el("p", { class: "card muted" }, "No destinations yet: declare one in the config file or POST /api/v1/destinations.")]),
  );
}

function card({ d, metrics, queue }) {
  const m = Object.fromEntries(metrics.metrics.map((x) => [x.metric_name, x]));
  const total = (name) => (m[name] ? m[name].total : 0);
  const ok = total("successes");
  const bad = total("discarded");
  const expired = total("expired");
  const finished = ok + bad + expired;
  const rate = finished ? (100 * ok) / finished : null;
  const measured = metrics.latency.reduce((n, p) => n + p.count, 0);
  const name = d.name || d.id;
  const unit = { MINUTE: "minute", HOUR: "hour", DAY: "day" }[metrics.granularity] || metrics.granularity;

  const art = el(
    "article",
    { class: "card dest", "data-destination": d.id, "data-granularity": metrics.granularity },
    el(
      "header",
      { class: "dest-head" },
      el("h2", {}, el("button", { type: "button", class: "link dest-name", "data-action": "errors", title: "show its recent errors" }, name)),
      el("span", { class: "muted" }, [d.id, d.type, d.sources && d.sources.length ? "from " + d.sources.join(", ") : ""].filter(Boolean).join(" · ")),
      d.enabled ? null : el("span", { class: "badge warn" }, "disabled"),
    ),
    el(
      "div",
      { class: "stats" },
      stat("success rate", rate === null ? "—" : rate.toFixed(1) + "%", "success_rate", rate === null ? "" : rate >= 99 ? "good" : rate >= 95 ? "warn" : "bad"),
      stat("successes", fmtInt(ok), "successes"),
      stat("discarded", fmtInt(bad), "discarded", bad ? "bad" : ""),
      stat("retried", fmtInt(total("retried")), "retried", total("retried") ? "warn" : ""),
      stat("expired", fmtInt(expired), "expired", expired ? "bad" : ""),
      stat("p50 latency", measured ? fmtMs(metrics.p50_ms) : "—", "p50"),
      stat("p95 latency", measured ? fmtMs(metrics.p95_ms) : "—", "p95"),
      stat("p99 latency", measured ? fmtMs(metrics.p99_ms) : "—", "p99"),
    ),
    reasons("Discards by reason", m.discarded, "discarded"),
    reasons("Retries by attempt", m.retried, "retried"),
    el(
      "div",
      { class: "charts" },
      chart(
        `Outcomes per ${unit}`,
        COUNT_SERIES.map((s) => ({ ...s, points: (m[s.metric] ? m[s.metric].series : []).map((p) => ({ time: p.time, value: p.count })) })),
        metrics.granularity,
        { integer: true },
      ),
      chart(
        `Latency per ${unit} (ms)`,
        LATENCY_SERIES.map((s) => ({ ...s, points: metrics.latency.map((p) => ({ time: p.time, value: p.count ? p[s.key] : null })) })),
        metrics.granularity,
        {},
      ),
    ),
    queueStatus(queue),
    el("p", {}, el("button", { type: "button", "data-action": "errors" }, "Recent errors")),
  );
  art.addEventListener("click", (ev) => {
    if (ev.target.closest("[data-action=errors]")) openDrill(d.id, name);
  });
  return art;
}

function stat(label, value, key, cls) {
  return el("div", { class: "stat " + (cls || ""), "data-metric": key }, el("span", { class: "value" }, value), el("span", { class: "label" }, label));
}

function reasons(title, metric, key) {
  const b = metric ? metric.breakdown : [];
  return el(
    "p",
    { class: "reasons", "data-breakdown": key },
    el("span", { class: "muted" }, title + ": "),
    b.length ? b.map((r) => el("span", { class: "reason", "data-reason": r.reason }, el("code", {}, r.reason), " ", el("b", {}, fmtInt(r.total)))) : el("span", { class: "muted" }, "none"),
  );
}

function queueStatus(q) {
  if (!q) return el("p", { class: "queue muted", "data-queue": "none" }, "No delivery queue: the destination is disabled or has never run.");
  const behind = Math.max(0, q.last_seq - q.position);
  const item = (label, value, key) => el("div", { "data-queue-item": key }, el("dt", {}, label), el("dd", {}, value));
  return el(
    "dl",
    { class: "queue", "data-queue": "" },
    item("breaker", el("span", { class: "badge breaker-" + q.breaker }, q.breaker.replace("_", " ")), "breaker"),
    item("queue", q.running ? "running" : "stopped", "running"),
    item("in flight", fmtInt(q.in_flight_jobs), "in_flight_jobs"),
    item("awaiting retry", fmtInt(q.awaiting_retry), "awaiting_retry"),
    item("dead letters", fmtInt(q.dead_letters), "dead_letters"),
    item("position", `${fmtInt(q.position)} of ${fmtInt(q.last_seq)} · ${behind ? fmtInt(behind) + " behind" : "caught up"}`, "position"),
    q.error ? item("settings error", q.error, "error") : null,
  );
}

// ---- charts ----

const W = 520;
const H = 150;
const PAD = { l: 46, r: 10, t: 8, b: 22 };

// chart draws series of {time, value} points (null: no value) sharing
// one time axis as an SVG line chart, with a tooltip per bucket.
function chart(title, series, granularity, { integer }) {
  const times = series.length ? series[0].points.map((p) => p.time) : [];
  const n = times.length;
  let max = 0;
  for (const s of series) for (const p of s.points) if (p.value !== null && p.value > max) max = p.value;
  max = niceCeil(max, integer);
  const plotW = W - PAD.l - PAD.r;
  const plotH = H - PAD.t - PAD.b;
  const x = (i) => PAD.l + (n <= 1 ? plotW / 2 : (i * plotW) / (n - 1));
  const y = (v) => PAD.t + plotH * (1 - v / max);
  const fmt = integer ? fmtInt : fmtAxisMs;

  const g = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": title });
  for (const v of [0, max / 2, max]) {
    g.append(
      svg("line", { x1: PAD.l, x2: W - PAD.r, y1: y(v), y2: y(v), class: "grid" }),
      svg("text", { x: PAD.l - 5, y: y(v) + 4, class: "axis", "text-anchor": "end" }, fmt(v)),
    );
  }
  for (const i of new Set([0, Math.floor((n - 1) / 2), n - 1])) {
    if (i < 0) continue;
    const anchor = i === 0 ? "start" : i === n - 1 ? "end" : "middle";
    g.append(svg("text", { x: x(i), y: H - 6, class: "axis", "text-anchor": anchor }, fmtBucket(times[i], granularity)));
  }
  for (const s of series) {
    let run = [];
    const flush = () => {
      if (run.length === 1) g.append(svg("circle", { cx: run[0][0], cy: run[0][1], r: 3, class: s.cls }));
      else if (run.length) g.append(svg("polyline", { points: run.map((p) => p.join(",")).join(" "), class: s.cls }));
      run = [];
    };
    s.points.forEach((p, i) => (p.value === null ? flush() : run.push([x(i).toFixed(1), y(p.value).toFixed(1)])));
    flush();
  }
  const colW = n > 1 ? plotW / (n - 1) : plotW;
  times.forEach((t, i) => {
    const lines = series.map((s) => `${s.label}: ${s.points[i].value === null ? "—" : integer ? fmtInt(s.points[i].value) : fmtMs(s.points[i].value)}`);
    g.append(svg("rect", { x: x(i) - colW / 2, y: PAD.t, width: colW, height: plotH, class: "hit" }, svg("title", {}, [fmtBucket(t, granularity, true), ...lines].join("\n"))));
  });
  return el(
    "figure",
    { class: "chart-box" },
    el("figcaption", {}, title),
    g,
    el("p", { class: "chart-legend" }, series.map((s) => el("span", { class: "key " + s.cls }, s.label))),
  );
}

// niceCeil rounds an axis maximum up to 1, 2 or 5 times a power of ten.
function niceCeil(v, integer) {
  if (v <= 0) return integer ? 2 : 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return integer ? Math.max(2, Math.ceil(m * p)) : m * p;
  return v;
}

// ---- the drill-down: dead letters and replay ----

async function openDrill(id, name) {
  state.drill = { id, name, next: null, shown: 0, total: 0 };
  $("drill").hidden = false;
  $("drill-title").textContent = "Recent errors · " + name;
  $("replay-confirm").hidden = true;
  $("replay-status").hidden = true;
  $("dead-letters").replaceChildren();
  $("drill-summary").textContent = "loading…";
  await loadDeadLetters(false);
  $("drill").scrollIntoView({ block: "start" });
}

async function loadDeadLetters(more) {
  const dr = state.drill;
  if (!dr) return;
  const q = new URLSearchParams({ destination: dr.id, limit: "20", order: "newest" });
  if (more && dr.next) q.set("before", dr.next);
  try {
    const res = await api("/api/v1/dead-letters?" + q);
    if (state.drill !== dr) return;
    if (!more) {
      $("dead-letters").replaceChildren();
      dr.shown = 0;
    }
    res.dead_letters.forEach((d, i) => $("dead-letters").append(deadLetter(d, !more && i === 0)));
    dr.shown += res.dead_letters.length;
    dr.total = res.total;
    dr.next = res.next || null;
    $("drill-more").hidden = !dr.next;
    $("replay").disabled = !res.total;
    $("drill-summary").textContent = res.total
      ? `${fmtInt(res.total)} dead letter${res.total === 1 ? "" : "s"} (discarded or expired), newest first; showing ${fmtInt(dr.shown)}.`
      : "No dead letters: every event this destination got was delivered or filtered, or is still being retried.";
  } catch (e) {
    fail(e);
  }
}

function deadLetter(d, open) {
  const block = (title, text, key) => el("section", {}, el("h3", {}, title), el("pre", { "data-field": key }, text || "(none recorded)"));
  return el(
    "details",
    { class: "dead", "data-dead-letter": d.id, open },
    el(
      "summary",
      {},
      el("span", { class: "badge " + (d.reason === "expired" ? "warn" : "bad"), "data-field": "reason" }, d.reason),
      " ",
      el("strong", { "data-field": "status_code" }, d.status_code ? "HTTP " + d.status_code : "no response"),
      " ",
      el("code", { "data-field": "error_reason" }, d.error_reason || "—"),
      " ",
      el("span", { class: "muted" }, `${d.event_type} · ${d.message_id} · ${d.attempts} attempt${d.attempts === 1 ? "" : "s"} · failed ${fmtDateTime(d.failed_at)}`),
    ),
    d.error ? el("p", { class: "err-text", "data-field": "error" }, d.error) : null,
    el(
      "div",
      { class: "exchange" },
      block("Event, as sent", d.event === undefined || d.event === null ? "" : JSON.stringify(d.event, null, 2), "event"),
      block("Request", d.request, "request"),
      block("Response", d.response, "response"),
    ),
  );
}

function askReplay() {
  const dr = state.drill;
  if (!dr) return;
  $("replay-question").textContent = `Put ${fmtInt(dr.total)} dead letter${dr.total === 1 ? "" : "s"} back into the queue of ${dr.name}, to be sent now?`;
  $("replay-confirm").hidden = false;
}

function showReplay(text, done, of) {
  $("replay-status").hidden = false;
  $("replay-text").textContent = text;
  $("replay-progress").max = Math.max(of, 1);
  $("replay-progress").value = done;
}

// replay moves every dead letter of the destination back into its queue,
// a thousand per call as `conflux replay` does, then follows the replay
// until nothing of it is pending.
async function replay() {
  const dr = state.drill;
  $("replay-confirm").hidden = true;
  $("replay").disabled = true;
  try {
    let id = "";
    let moved = 0;
    let res;
    do {
      res = await api("/api/v1/dead-letters/replay", { method: "POST", body: id ? { destination: dr.id, replay_id: id } : { destination: dr.id } });
      id = res.replay_id;
      moved += res.moved;
      showReplay(`replay ${id}: ${fmtInt(moved)} moved, ${fmtInt(res.remaining)} to move`, 0, moved + res.remaining);
    } while (res.remaining > 0 && res.moved > 0);
    if (!moved) {
      showReplay("nothing to replay", 0, 1);
    } else {
      for (;;) {
        const st = await api("/api/v1/replays/" + encodeURIComponent(id));
        showReplay(
          `replay ${id}: ${fmtInt(st.moved)} moved · ${fmtInt(st.delivered)} delivered · ${fmtInt(st.failed)} failed again · ${fmtInt(st.pending)} pending`,
          st.delivered + st.failed,
          st.moved,
        );
        if (st.pending === 0 || state.drill !== dr) break;
        await sleep(500);
      }
    }
  } catch (e) {
    fail(e);
  }
  if (state.drill === dr) loadDeadLetters(false);
  refresh();
}

// ---- formatting ----

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const pad = (n) => String(n).padStart(2, "0");

function fmtInt(n) {
  return Number(n).toLocaleString("en-US", { maximumFractionDigits: 0 });
}
function fmtMs(ms) {
  if (ms >= 1000) return (ms / 1000).toFixed(2) + " s";
  return (ms >= 100 ? Math.round(ms) : ms.toFixed(1)) + " ms";
}
function fmtAxisMs(ms) {
  return ms >= 1000 ? +(ms / 1000).toFixed(1) + "s" : String(+ms.toFixed(1));
}
function fmtClock(d, seconds) {
  return `${pad(d.getHours())}:${pad(d.getMinutes())}` + (seconds ? ":" + pad(d.getSeconds()) : "");
}
function fmtDay(d) {
  return `${MONTHS[d.getMonth()]} ${d.getDate()}`;
}
function fmtDateTime(iso) {
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : `${fmtDay(d)} ${fmtClock(d, true)}`;
}
// fmtBucket labels a bucket start in local time: a clock for minutes and
// hours, a date for days; long adds the date to a clock.
function fmtBucket(iso, granularity, long) {
  const d = new Date(iso);
  if (granularity === "DAY") return fmtDay(d);
  return long ? `${fmtDay(d)} ${fmtClock(d)}` : fmtClock(d);
}

// ---- start ----

function init() {
  takeTokenFromFragment();
  window.addEventListener("hashchange", () => takeTokenFromFragment() && start());
  $("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("token").value.trim();
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    $("token").value = "";
    start();
  });
  $("logout").addEventListener("click", () => signOut(""));
  $("refresh").addEventListener("click", refresh);
  const ranges = [...$("range").querySelectorAll("button")];
  for (const b of ranges) {
    b.addEventListener("click", () => {
      state.range = b.dataset.range;
      for (const o of ranges) o.setAttribute("aria-pressed", String(o === b));
      refresh();
    });
  }
  $("source").addEventListener("change", (ev) => {
    state.source = ev.target.value;
    refresh();
  });
  $("drill-close").addEventListener("click", () => {
    state.drill = null;
    $("drill").hidden = true;
  });
  $("drill-refresh").addEventListener("click", () => loadDeadLetters(false));
  $("drill-more").addEventListener("click", () => loadDeadLetters(true));
  $("replay").addEventListener("click", askReplay);
  $("replay-cancel").addEventListener("click", () => ($("replay-confirm").hidden = true));
  $("replay-go").addEventListener("click", replay);

  if (sessionStorage.getItem(TOKEN_KEY)) start();
  else signOut("");
}

init();
