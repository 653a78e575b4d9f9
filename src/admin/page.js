"use strict";
// Reads /api/status, /api/upstreams and /api/events every few seconds. Every value is set
// with textContent: nothing from the API is parsed as HTML.
const REFRESH_MS = 2000;
const $ = (id) => document.getElementById(id);
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function badge(word, level) { return el("span", word, "badge " + level); }
function row(cells) {
  const tr = el("tr");
  for (const c of cells) {
    if (c instanceof Node) { const td = el("td"); td.appendChild(c); tr.appendChild(td); }
    else if (c && typeof c === "object") { tr.appendChild(el("td", c.text, c.cls)); }
    else tr.appendChild(el("td", c));
  }
  return tr;
}
const num = (v, digits) => (v === null || v === undefined) ? "–" : Number(v).toFixed(digits);
const pct = (v) => (v === null || v === undefined) ? "–" : (100 * v).toFixed(1) + "%";
const ms = (v) => (v === null || v === undefined) ? "–" : (v < 10 ? v.toFixed(2) : v.toFixed(0)) + " ms";
function duration(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : m ? `${m}m ${s % 60}s` : `${s}s`;
}
const time = (unixMs) => new Date(unixMs).toLocaleTimeString();
function fill(tbody, rows) { tbody.replaceChildren(...rows); }

// One word and a colour per backend; the word alone says it all.
// "ok" and "idle" count as up.
function backendState(b, checked) {
  if (b.draining) return [b.in_flight > 0 ? `draining, ${b.in_flight} in flight` : "drained", "warn"];
  if (b.health === "unhealthy") return ["down", "bad"];
  if (b.ejected) return ["ejected", "bad"];
  if (b.paused_until_unix) return ["paused at its request (Retry-After)", "warn"];
  // An open breaker whose time is over lets the next request through as a probe.
  if (b.breaker.state === "open" && b.breaker.open_until_unix) return ["breaker open", "bad"];
  if (b.breaker.state === "open") return ["breaker open, probe due", "warn"];
  if (b.breaker.state === "half_open") return ["breaker half-open", "warn"];
  if (b.awaiting_first_check) return ["new, no traffic until its first check passes", "idle"];
  if (!b.available) return ["unavailable", "warn"];
  if (checked && b.health === "unknown") return ["up, first check pending", "idle"];
  return ["up", "ok"];
}

function renderStatus(s) {
  $("version").textContent = s.version;
  $("uptime").textContent = duration(s.uptime_seconds);
  $("hash").textContent = s.config.hash;
  const r = s.config.last_reload;
  $("reload").textContent = r ? `${r.result} (${r.trigger}, ${time(r.at_unix_ms)})${r.error ? ": " + r.error : ""}` : "none since start";
  $("readiness").replaceChildren(s.draining ? badge("draining", "warn") : s.ready ? badge("ready", "ok") : badge("starting", "idle"));
  $("window").textContent = s.window_seconds ? `(last ${Math.round(s.window_seconds)} s)` : "(rates after the second sample)";
  fill($("routes").tBodies[0], s.routes.map((rt) => {
    const share = rt.error_share;
    const level = share === null || share === undefined ? "idle" : share > 0.05 ? "bad" : share > 0.01 ? "warn" : "ok";
    const tr = row([rt.name, { text: num(rt.requests_per_second, 1), cls: "num" }, "", { text: ms(rt.p50_ms), cls: "num" }, { text: ms(rt.p99_ms), cls: "num" }, { text: rt.requests_total, cls: "num" }]);
    tr.cells[2].className = "num";
    tr.cells[2].appendChild(badge(pct(share), level));
    tr.dataset.route = rt.name;
    if (rt.maintenance) tr.cells[0].append(" ", badge("maintenance", "warn"));
    if (rt.canary) {
      // A canary rollout: its share and phase, and why it was pulled back or promoted.
      const k = rt.canary;
      const level = k.phase === "aborted" ? "bad" : k.phase === "promoted" ? "ok" : "warn";
      const b = badge(`canary ${k.upstream}: ${k.percent}% ${k.phase}`, level);
      b.dataset.canary = k.phase;
      tr.cells[0].append(" ", b);
      if (k.reason) tr.cells[0].append(" ", el("span", k.reason, "muted"));
    }
    return tr;
  }));
  fill($("limits").tBodies[0], s.rate_limits.map((l) => row([l.name, { text: num(l.limited_per_second, 1), cls: "num" }, { text: l.limited_total, cls: "num" }, { text: `${l.keys} / ${l.max_keys}`, cls: "num" }, { text: l.keys_evicted_total, cls: "num" }, l.shadow ? badge("shadow", "idle") : badge("enforcing", "ok")])));
  const c = $("cache");
  if (!s.cache) { c.replaceChildren(el("span", "no [cache] configured", "muted")); }
  else {
    const card = (label, value) => { const d = el("div", label); d.prepend(el("b", value)); return d; };
    c.replaceChildren(card("hit ratio (recent)", pct(s.cache.hit_ratio)), card("hit ratio since start", pct(s.cache.hit_ratio_since_start)),
      card("entries", s.cache.entries), card("stored", `${(s.cache.stored_bytes / 1048576).toFixed(1)} / ${(s.cache.max_bytes / 1048576).toFixed(0)} MiB`), card("evictions", s.cache.evictions_total));
  }
}

// The latest transition per backend, for its "why" column.
let lastWhy = new Map();
function renderEvents(events) {
  lastWhy = new Map();
  for (const e of events) if (e.backend) lastWhy.set(e.upstream + " " + e.backend, e);
  const level = { info: "ok", warn: "warn", error: "bad" };
  fill($("events").tBodies[0], events.slice(-50).reverse().map((e) => {
    const subject = e.backend ? `${e.upstream} ${e.backend}` : e.limit ? `limit ${e.limit}` : "config";
    return row([time(e.at_unix_ms), badge(e.kind, level[e.level]), subject, `${e.from ? e.from + " → " : ""}${e.to}`, { text: e.reason, cls: "why" }]);
  }));
}

function renderUpstreams(u) {
  const open = new Set([...document.querySelectorAll("#upstreams details[open]")].map((d) => d.dataset.upstream));
  const first = $("upstreams").childElementCount === 0;
  $("upstreams").replaceChildren(...Object.entries(u.upstreams).map(([name, p]) => {
    const rows = p.backends.map((b) => ({ b, st: backendState(b, p.health_check) }));
    // Problems first, so the one bad backend of 200 is on top.
    const rank = { bad: 0, warn: 1, idle: 2, ok: 3 };
    rows.sort((x, y) => rank[x.st[1]] - rank[y.st[1]] || x.b.addr.localeCompare(y.b.addr));
    const up = rows.filter((r) => r.st[1] === "ok" || r.st[1] === "idle").length;
    const det = el("details");
    det.dataset.upstream = name;
    if (open.has(name) || (first && rows.length <= 20) || up < rows.length) det.open = true;
    const sum = el("summary");
    sum.append(el("b", name), " ", badge(`${up} of ${rows.length} up`, up === rows.length ? "ok" : up === 0 ? "bad" : "warn"));
    if (p.shedding) sum.append(" ", badge(`shedding, ${p.queued} queued`, "warn"));
    sum.append(el("span", ` ${p.balance}${p.backup ? ", backup " + p.backup : ""}`, "muted"));
    det.appendChild(sum);
    const table = el("table");
    table.appendChild(el("thead")).appendChild(row(["backend", "state", "health", "breaker", { text: "in flight / limit", cls: "num" }, { text: "ejections", cls: "num" }, "last transition", "last check"]));
    const body = table.appendChild(el("tbody"));
    for (const { b, st } of rows) {
      const why = lastWhy.get(name + " " + b.addr);
      const tr = row([b.addr, badge(st[0], st[1]), p.health_check ? b.health : "not checked", b.breaker.state.replace("_", "-"), { text: b.limit == null ? `${b.in_flight}` : `${b.in_flight} / ${b.limit}`, cls: "num" }, { text: b.ejections, cls: "num" },
        { text: why ? `${why.to}: ${why.reason} (${time(why.at_unix_ms)})` : "–", cls: "why" },
        { text: b.last_check ? `${b.last_check.ok ? "pass" : "fail"}: ${b.last_check.detail}` : "–", cls: "why" }]);
      tr.dataset.backend = b.addr;
      tr.dataset.state = st[0];
      body.appendChild(tr);
    }
    const wrap = el("div", null, "scroll");
    wrap.appendChild(table);
    det.appendChild(wrap);
    return det;
  }));
}

async function get(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(`${path}: ${r.status}`);
  return r.json();
}
async function refresh() {
  try {
    const [s, u, e] = await Promise.all([get("/api/status"), get("/api/upstreams"), get("/api/events")]);
    renderStatus(s);
    renderEvents(e.events);
    renderUpstreams(u);
    $("error").textContent = "";
    document.body.dataset.loaded = "1";
  } catch (err) {
    $("error").textContent = `cannot reach brace: ${err.message}`;
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}
refresh();
