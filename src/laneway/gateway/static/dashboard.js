// The laneway live dashboard: one WebSocket (v2 JSON, v1 as a fallback),
// one subscription per tenant, client-side dual buckets, resume after a
// disconnect. No framework and no build step; the gateway serves this file
// as is (docs/protocol.md describes every frame handled here).

import { DualBucket } from "./buckets.js";
import { RateHistory, SparkCounts, drawRateChart, sparkline } from "./charts.js";
import { gist } from "./gist.js";
import { SlaPanel } from "./sla.js";

const PROTOCOL_V2 = "laneway.v2.json";
const PROTOCOL_V1 = "laneway.v1.json";
const LANE_ROWS = 300; // rows drawn per lane; the buckets keep more
const SESSION_ROWS = 100;
const LIVE_WINDOW_MS = 60_000; // a session with an event this recent is "live"
const BACKFILL_LIMIT = 1000; // newest events fetched for a session first seen on a resume
const TENANT_POLL_MS = 3000;
const SLA_POLL_MS = 2000;
const PING_MS = 15_000;
const RATE_WINDOW_S = 5;
const MAX_GAP_NOTES = 50;
const DEFAULT_MAX_SUBSCRIPTIONS = 16; // the gateway's default, if /api cannot say

// Close codes after which retrying cannot help (docs/protocol.md, Close codes).
const FINAL_CLOSES = new Map([
  [1007, "the server refused a frame from this page"],
  [1008, "WebSocket protocol violation"],
  [4001, "the token was refused (missing, expired or wrong signature)"],
  [4003, "the token does not grant this tenant or scope"],
  [4009, "too many subscriptions on one connection"],
]);

// -- events ---------------------------------------------------------------------

// One shape for events from a v2 or v1 envelope and from the HTTP API.
function fromEnvelope(env, version) {
  const m = env.metadata || {};
  return {
    tenant: m.tenant,
    session: m.session,
    seq: env.seq,
    ts: env.ts,
    type: m.event_type,
    lsn: m.lsn ?? null,
    epoch: m.epoch ?? null,
    priority: version === 1 ? 0 : m.priority ?? 0, // v1 has no priorities
    reason: m.priority_metadata ?? null,
    source: m.source ?? null,
    dedupeKey: m.dedupe_key ?? null,
    attrs: m.attrs ?? null,
    coalesced: m.coalesced ?? [],
    payload: env.payload,
  };
}

function fromHttp(e, version) {
  return {
    tenant: e.tenant,
    session: e.session,
    seq: e.seq,
    ts: e.ts,
    type: e.type,
    lsn: e.lsn,
    epoch: e.epoch,
    priority: version === 1 ? 0 : e.priority,
    reason: e.priority_metadata ?? null,
    source: e.source ?? null,
    dedupeKey: e.dedupe_key ?? null,
    attrs: e.attrs ?? null,
    coalesced: [],
    payload: e.payload,
  };
}

const keyOf = (tenant, session) => `${tenant}\u0000${session}`;
const eventKey = (e) => `${e.tenant}\u0000${e.session}\u0000${e.seq}`;

// -- state ----------------------------------------------------------------------

// Everything the page knows, independent of how it is drawn.
export class Store {
  constructor(bucketOptions) {
    this.buckets = new DualBucket(bucketOptions);
    this.sessions = new Map(); // keyOf -> session record
    this.byPriority = [0, 0, 0, 0]; // events received, coalesced ones included
    this.received = 0;
    this.duplicates = 0; // repeats dropped by seq (a resume never sends any; counted to prove it)
    this.gaps = []; // newest last
    this.gapCount = 0;
    this.resumes = 0;
    this.arrivals = new Map(); // unix second -> live events (the events/s figure)
    this.rates = new RateHistory(); // live events per second and priority (the chart)
    // Streamed output going on now: stream id -> {tenant, session, replyTo, text, ts}.
    // Provisional: a final chunk removes it, and the committed result
    // arrives as an ordinary event.
    this.streams = new Map();
    this.dirty = true;
  }

  // A piece of a stream; the server may repeat characters we have (around
  // a reconnect), so only what lies past our text is appended.
  chunk(meta, payload, replyTo, ts) {
    let s = this.streams.get(meta.stream);
    if (!s) {
      s = { tenant: meta.tenant, session: meta.session, replyTo, text: "", ts };
      this.streams.set(meta.stream, s);
    }
    if (payload.offset <= s.text.length) s.text += payload.data.slice(s.text.length - payload.offset);
    s.ts = ts;
    if (payload.final) this.streams.delete(meta.stream);
    this.dirty = true;
  }

  streamOffsets(tenant) {
    const out = {};
    for (const [id, s] of this.streams) if (s.tenant === tenant) out[id] = s.text.length;
    return out;
  }

  session(tenant, name) {
    const key = keyOf(tenant, name);
    let s = this.sessions.get(key);
    if (!s) {
      s = { key, tenant, session: name, lastSeq: 0, epoch: null, count: 0, total: null, lastType: "", lastTs: 0, pending: null, spark: new SparkCounts() };
      this.sessions.set(key, s);
    }
    return s;
  }

  sessionsOf(tenant) {
    return [...this.sessions.values()].filter((s) => s.tenant === tenant);
  }

  // An event from the server. While a session is being backfilled over
  // HTTP its live events wait, so they are applied after older ones.
  // `event.history` marks what the page loads when it opens or catches up
  // (a sync's recent events, a backfill): kept and shown, but no rate.
  ingest(event) {
    const s = this.session(event.tenant, event.session);
    if (s.pending) {
      s.pending.push(event);
      return;
    }
    this.accept(s, event);
  }

  accept(s, event) {
    if (event.seq <= s.lastSeq) {
      this.duplicates += 1;
      return;
    }
    s.lastSeq = event.seq;
    if (event.epoch !== null) s.epoch = event.epoch;
    const n = 1 + event.coalesced.length; // a coalesced event stands for those it replaced
    s.count += n;
    s.lastType = event.type;
    s.lastTs = Math.max(s.lastTs, event.ts);
    this.byPriority[event.priority] += n;
    this.received += n;
    if (!event.history) {
      const second = Math.floor(Date.now() / 1000);
      this.arrivals.set(second, (this.arrivals.get(second) || 0) + n);
      this.rates.add(second, event.priority, n);
      s.spark.add(second, n);
    }
    this.buckets.add(event);
    this.dirty = true;
  }

  // Live events of a session follow from just after `seq`.
  floor(s, seq, epoch) {
    s.lastSeq = Math.max(s.lastSeq, seq);
    if (epoch !== undefined && epoch !== null) s.epoch = epoch;
  }

  note(tenant, reason, range) {
    this.gapCount += 1;
    this.gaps.push({ tenant, reason, ...range, at: Date.now() });
    if (this.gaps.length > MAX_GAP_NOTES) this.gaps.shift();
    this.dirty = true;
  }

  gap(tenant, payload) {
    for (const range of payload.ranges) {
      this.note(tenant, payload.reason, range);
      if (payload.reason === "epoch_changed") {
        // That history is gone: forget what we showed of it and follow the new one.
        const s = this.session(tenant, range.session);
        this.buckets.removeWhere((e) => e.tenant === tenant && e.session === range.session);
        s.lastSeq = range.to_seq;
        s.epoch = range.epoch ?? null;
        s.count = 0;
      }
    }
  }

  summary(payload) {
    for (const row of payload.sessions || []) {
      const s = this.session(row.tenant, row.session);
      s.total = row.events;
      s.lastTs = Math.max(s.lastTs, row.last_ts);
    }
    this.dirty = true;
  }

  rate(nowMs) {
    const now = Math.floor(nowMs / 1000);
    let sum = 0;
    for (const [second, n] of this.arrivals) {
      if (second < now - RATE_WINDOW_S) this.arrivals.delete(second);
      else if (second < now) sum += n; // whole seconds only: the current one is still filling
    }
    return sum / RATE_WINDOW_S;
  }
}

// -- the connection -------------------------------------------------------------

export class Connection {
  constructor({ base, token, store, onState, forceV1 = false, onNotice }) {
    this.base = base;
    this.token = token;
    this.store = store;
    this.onState = onState;
    this.onNotice = onNotice;
    this.forceV1 = forceV1;
    this.tenants = [];
    this.synced = new Set(); // tenants that had a sync on some connection
    this.subscriptions = new Map(); // subscription id -> tenant
    this.resumedFrom = new Map(); // tenant -> the resume map sent on this connection
    this.attempt = 0;
    this.reconnects = 0;
    this.version = null;
    this.ws = null;
    this.stopped = false;
  }

  addTenant(tenant) {
    if (this.tenants.includes(tenant)) return;
    this.tenants.push(tenant);
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.subscribe(tenant);
  }

  start() {
    const url = new URL("/ws", this.base);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("token", this.token);
    this.state("connecting");
    const ws = new WebSocket(url, this.forceV1 ? [PROTOCOL_V1] : [PROTOCOL_V2, PROTOCOL_V1]);
    this.ws = ws;
    ws.onopen = () => {
      this.version = ws.protocol === PROTOCOL_V1 ? 1 : 2;
      this.attempt = 0;
      this.subscriptions.clear();
      this.resumedFrom.clear();
      this.state("live");
      for (const tenant of this.tenants) this.subscribe(tenant);
      this.pinger = setInterval(() => this.send({ type: "ping", id: "p" }), PING_MS);
    };
    ws.onmessage = (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        this.onNotice("the server sent a frame that is not JSON; ignored");
        return;
      }
      this.handle(frame);
    };
    ws.onclose = (event) => {
      clearInterval(this.pinger);
      if (this.ws !== ws || this.stopped) return;
      const final = FINAL_CLOSES.get(event.code);
      if (final) {
        this.state("offline", `${final} (close ${event.code}${event.reason ? ": " + event.reason : ""})`);
        return;
      }
      // Back off 0.5 s, 1 s, 2 s ... up to 10 s, with jitter so a restarted
      // server is not met by every page at the same instant.
      const delay = Math.min(10_000, 500 * 2 ** this.attempt) * (0.75 + Math.random() / 2);
      this.attempt += 1;
      this.reconnects += 1;
      this.state("reconnecting", `close ${event.code}${event.reason ? ": " + event.reason : ""}; retrying in ${(delay / 1000).toFixed(1)} s`);
      this.retry = setTimeout(() => this.start(), delay);
    };
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retry);
    clearInterval(this.pinger);
    if (this.ws) this.ws.close(1000, "page closed");
  }

  send(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  state(name, detail = "") {
    this.onState({ name, detail, version: this.version, reconnects: this.reconnects });
  }

  // First time: the recent events. After a reconnect: resume every session
  // we know from its last seq (and epoch); nothing missed, nothing repeated.
  subscribe(tenant) {
    const frame = { type: "subscribe", id: tenant, tenant };
    if (this.synced.has(tenant)) {
      const resume = {};
      const epochs = {};
      for (const s of this.store.sessionsOf(tenant)) {
        if (s.lastSeq <= 0) continue;
        resume[s.session] = s.lastSeq;
        if (s.epoch !== null && this.version === 2) epochs[s.session] = s.epoch;
      }
      frame.resume = resume;
      frame.epochs = epochs;
      frame.recent = 0;
      if (this.version === 2) frame.streams = this.store.streamOffsets(tenant);
      this.resumedFrom.set(tenant, resume);
    } else {
      frame.recent = 100;
    }
    if (this.version === 2) frame.summaries = true;
    this.send(frame);
  }

  handle(frame) {
    switch (frame.type) {
      case "event":
      case "priority_event":
        this.store.ingest(fromEnvelope(frame, this.version));
        break;
      case "bulk":
        for (const part of frame.payload) this.handle(part);
        break;
      case "sync":
        this.sync(frame.payload);
        break;
      case "gap":
        this.store.gap(this.subscriptions.get(frame.payload.subscription) ?? "?", frame.payload);
        break;
      case "summary":
        this.store.summary(frame.payload);
        break;
      case "chunk":
        this.store.chunk(frame.metadata, frame.payload, frame.seq, frame.ts);
        break;
      case "error":
        this.onNotice(`server: ${frame.payload.error}: ${frame.payload.message}`);
        break;
      default: // heartbeat, ack, and types added later
        break;
    }
  }

  sync(p) {
    const tenant = p.tenant;
    this.subscriptions.set(p.subscription, tenant);
    if (p.buckets) {
      this.store.buckets.configure({
        priorityMax: p.buckets.priority_max_events,
        regularMax: p.buckets.regular_max_events,
        overflow: p.buckets.overflow,
      });
    }
    const events = p.events.map((env) => ({ ...fromEnvelope(env, this.version), history: true }));
    // Recent events come priority-aware (priority first); apply them in
    // commit order so each session's seqs arrive ascending.
    events.sort((a, b) => (a.lsn ?? 0) - (b.lsn ?? 0) || a.ts - b.ts);
    for (const event of events) this.store.ingest(event);
    const first = !this.synced.has(tenant);
    const resumed = this.resumedFrom.get(tenant) || {};
    for (const [name, position] of Object.entries(p.sessions || {})) {
      const s = this.store.session(tenant, name);
      if (first) {
        this.store.floor(s, position.last_seq, position.epoch);
      } else if (!(name in resumed) && position.last_seq > s.lastSeq) {
        // A session that started while we were away: the resume could not
        // name it, so fetch what it has so far before its live events.
        this.backfill(s, position.last_seq);
      }
    }
    if (p.resumed) this.store.resumes += 1;
    this.synced.add(tenant);
    this.store.dirty = true;
  }

  async backfill(s, head) {
    if (s.pending) return;
    s.pending = [];
    const after = Math.max(s.lastSeq, head - BACKFILL_LIMIT);
    if (after > s.lastSeq) {
      this.store.note(s.tenant, "not_fetched", { session: s.session, from_seq: s.lastSeq + 1, to_seq: after, count: after - s.lastSeq });
    }
    let fetched = [];
    try {
      const path = `/api/v1/tenants/${encodeURIComponent(s.tenant)}/sessions/${encodeURIComponent(s.session)}/events`;
      const url = new URL(path, this.base);
      url.searchParams.set("after_seq", String(after));
      url.searchParams.set("limit", String(BACKFILL_LIMIT));
      const response = await apiGet(this.base, this.token, url);
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      fetched = (await response.json()).events.map((e) => ({ ...fromHttp(e, this.version), history: true }));
    } catch (error) {
      this.store.note(s.tenant, "fetch_failed", { session: s.session, from_seq: after + 1, to_seq: head, count: head - after });
      this.onNotice(`could not fetch ${s.session}: ${error.message}`);
      this.store.floor(s, head);
    }
    const pending = s.pending;
    s.pending = null;
    for (const event of fetched) this.store.accept(s, event);
    for (const event of pending) this.store.accept(s, event);
  }
}

// -- drawing --------------------------------------------------------------------

function node(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text; // never innerHTML: payloads are untrusted
  return el;
}

const clock = (ts) => new Date(ts).toLocaleTimeString([], { hour12: false });

export class View {
  constructor(store, root = document) {
    this.store = store;
    this.$ = (id) => root.getElementById(id);
    this.rows = new Map(); // event key -> <li>, reused between frames
    this.filter = null; // a session key, or null for all
    this.sessionsDrawn = 0;
    this.gapsDrawn = 0;
    this.selected = null;
    this.$("lane-priority").addEventListener("click", (e) => this.select(e));
    this.$("lane-regular").addEventListener("click", (e) => this.select(e));
    this.$("sessions").addEventListener("click", (e) => {
      const li = e.target.closest("li[data-key]");
      if (!li) return;
      this.filter = this.filter === li.dataset.key ? null : li.dataset.key;
      this.sessionsDrawn = 0; // show the selection at once
      this.store.dirty = true;
    });
    this.$("detail-close").addEventListener("click", () => {
      this.selected = null;
      this.$("detail").hidden = true;
    });
  }

  connection({ name, detail, version, reconnects }) {
    const el = this.$("connection");
    el.dataset.state = name;
    el.textContent = name;
    el.title = detail;
    this.$("protocol").textContent = version === 1 ? "v1 (no priorities)" : version === 2 ? "v2" : "";
    this.$("reconnects").textContent = String(reconnects);
    this.$("connection-detail").textContent = detail;
  }

  notice(text) {
    const el = this.$("notice");
    el.textContent = text;
    el.hidden = !text;
  }

  select(e) {
    const li = e.target.closest("li[data-key]");
    if (!li) return;
    this.selected = li.event;
    this.detail(li.event);
  }

  detail(event) {
    const meta = {
      tenant: event.tenant,
      session: event.session,
      seq: event.seq,
      lsn: event.lsn,
      epoch: event.epoch,
      time: new Date(event.ts).toISOString(),
      type: event.type,
      priority: event.priority,
      priority_metadata: event.reason,
      source: event.source,
      dedupe_key: event.dedupeKey,
      attrs: event.attrs,
      coalesced: event.coalesced.length ? event.coalesced : undefined,
    };
    this.$("detail-title").textContent = `${event.type} · ${event.session} #${event.seq}`;
    this.$("detail-meta").textContent = JSON.stringify(meta, null, 2);
    this.$("detail-payload").textContent = JSON.stringify(event.payload, null, 2);
    this.$("detail").hidden = false;
  }

  row(event) {
    const key = eventKey(event);
    let li = this.rows.get(key);
    if (li) return li;
    li = node("li", `event p${event.priority}`);
    li.dataset.key = key;
    li.dataset.tenant = event.tenant;
    li.dataset.session = event.session;
    li.dataset.seq = String(event.seq);
    li.dataset.lsn = String(event.lsn ?? "");
    li.dataset.priority = String(event.priority);
    li.event = event;
    li.append(
      node("time", "ts", clock(event.ts)),
      node("span", "badge", event.priority ? `P${event.priority}` : event.source || "·"),
      node("span", "type", event.type),
      node("span", "where", `${event.session} #${event.seq}`),
      node("span", "gist", gist(event.type, event.payload)),
    );
    if (event.coalesced.length) li.append(node("span", "merged", `+${event.coalesced.length} merged`));
    this.rows.set(key, li);
    return li;
  }

  lane(id, fifo, keep) {
    const events = fifo.newest(LANE_ROWS, keep);
    const list = this.$(id);
    const rows = events.map((e) => this.row(e));
    list.replaceChildren(...rows);
    return new Set(rows);
  }

  draw(now) {
    const store = this.store;
    if (store.dirty) {
      store.dirty = false;
      const keep = this.filter ? (e) => keyOf(e.tenant, e.session) === this.filter : null;
      const shown = new Set([...this.lane("lane-priority", store.buckets.priority, keep), ...this.lane("lane-regular", store.buckets.regular, keep)]);
      for (const [key, li] of this.rows) if (!shown.has(li)) this.rows.delete(key);
      // The session list is rebuilt whole: at most twice a second, not per frame.
      if (now - this.sessionsDrawn >= 500) this.sessions(now);
      if (this.gapsDrawn !== store.gapCount) this.gaps();
      this.streams();
      this.$("filter").textContent = this.filter ? `showing ${this.filter.replace("\u0000", " / ")} (click it again for all)` : "all sessions";
    }
    for (let p = 0; p < 4; p++) this.text(`count-${p}`, store.byPriority[p]);
    this.text("received", store.received);
    const b = store.buckets;
    this.text("kept", `${b.priority.length}/${b.priorityMax} · ${b.regular.length}/${b.regularMax}`);
    this.$("kept").title = `overflow ${b.overflow}; evicted ${b.counters.evicted}, not kept ${b.counters.rejected}, over the memory cap ${b.counters.budgetEvicted}`;
    this.text("gap-count", store.gapCount);
    this.text("duplicates", store.duplicates);
  }

  effects(counts) {
    if (!counts) return;
    this.text("effects", `${counts.pending + counts.running} · ${counts.failed} · ${counts.dead}`);
    this.$("effects").title = `done since the server started: ${counts.done}`;
  }

  // Live streamed output, one row per stream, growing as chunks come.
  streams() {
    const live = [...this.store.streams.entries()];
    const panel = this.$("streams");
    panel.hidden = live.length === 0;
    this.$("stream-list").replaceChildren(
      ...live.map(([id, s]) => {
        const li = node("li", "stream");
        li.dataset.stream = id;
        li.dataset.session = s.session;
        li.append(
          node("span", "where", `${s.session}${s.replyTo ? ` · answering #${s.replyTo}` : ""}`),
          node("span", "text", s.text),
        );
        return li;
      }),
    );
  }

  // Runs every frame: touch the DOM only when a figure changed.
  text(id, value) {
    const el = this.$(id);
    const text = String(value);
    if (el.textContent !== text) el.textContent = text;
  }

  tick(now) {
    this.text("rate", this.store.rate(now).toFixed(1));
    const top = drawRateChart(this.$("rate-chart"), this.store.rates.series(Math.floor(now / 1000)));
    this.text("rate-scale", `top of scale ${top.toFixed(top < 10 ? 1 : 0)}/s`);
    this.sessions(now); // "live" fades with time, not only with events
  }

  sessions(now) {
    this.sessionsDrawn = now;
    const list = [...this.store.sessions.values()].sort((a, b) => b.lastTs - a.lastTs).slice(0, SESSION_ROWS);
    const items = list.map((s) => {
      const li = node("li", now - s.lastTs < LIVE_WINDOW_MS ? "session live" : "session");
      li.dataset.key = s.key;
      if (this.filter === s.key) li.classList.add("selected");
      li.append(
        node("span", "dot"),
        node("span", "name", s.session),
        node("span", "tenant", s.tenant),
        node("span", "count", String(s.total ?? s.count)),
        node("span", "last", s.lastType),
        sparkline(s.spark.points(Math.floor(now / 1000))),
      );
      return li;
    });
    this.$("sessions").replaceChildren(...items);
    this.$("session-count").textContent = String(this.store.sessions.size);
  }

  gaps() {
    this.gapsDrawn = this.store.gapCount;
    const items = this.store.gaps
      .slice()
      .reverse()
      .map((g) => node("li", `gap ${g.reason}`, `${clock(g.at)} ${g.tenant} / ${g.session}: seq ${g.from_seq}-${g.to_seq} (${g.count} events) ${g.reason.replace("_", " ")}`));
    this.$("gap-list").replaceChildren(...items);
    this.$("gaps").hidden = items.length === 0;
  }
}

// -- the page -------------------------------------------------------------------

// Subscriptions one connection may hold: asking for more closes it (4009).
async function subscriptionLimit(base) {
  try {
    const response = await fetch(new URL("/api", base));
    const limit = (await response.json()).max_subscriptions;
    return Number.isInteger(limit) && limit > 0 ? limit : DEFAULT_MAX_SUBSCRIPTIONS;
  } catch {
    return DEFAULT_MAX_SUBSCRIPTIONS;
  }
}

// A GET of the HTTP API with the page's token (`path` a string or a URL).
function apiGet(base, token, path) {
  return fetch(new URL(path, base), { headers: { Authorization: `Bearer ${token}` } });
}

async function tenantsVisible(base, token) {
  const response = await apiGet(base, token, "/api/v2/summaries/bulk");
  if (!response.ok) {
    let message = `HTTP ${response.status}`;
    try {
      message = (await response.json()).message;
    } catch {
      // not JSON: keep the status
    }
    throw new Error(message);
  }
  return response.json();
}

export async function main() {
  const params = new URLSearchParams(location.search);
  // The token arrives in the URL printed by `laneway serve --demo`; keep it
  // for this tab and take it out of the address bar (and of screenshots).
  const fromUrl = params.get("token");
  if (fromUrl) {
    sessionStorage.setItem("laneway.token", fromUrl);
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? `?${rest}` : ""));
  }
  const token = sessionStorage.getItem("laneway.token");
  const store = new Store({ maxBytes: Number(params.get("memory_mb") || 32) * 2 ** 20 });
  const view = new View(store);
  if (!token) {
    view.connection({ name: "offline", detail: "no token", version: null, reconnects: 0 });
    view.notice("No token: open the URL that `laneway serve --demo` printed, or add ?token=… (mint one with `laneway token`).");
    return;
  }
  const base = location.origin;
  const connection = new Connection({
    base,
    token,
    store,
    forceV1: params.get("protocol") === "v1",
    onState: (state) => view.connection(state),
    onNotice: (text) => view.notice(text),
  });
  window.laneway = { store, connection, view }; // for the console, and the browser tests
  const maxTenants = await subscriptionLimit(base);
  const pinned = params.get("tenant");
  if (pinned) {
    for (const tenant of pinned.split(",").filter(Boolean).slice(0, maxTenants)) connection.addTenant(tenant);
  } else {
    // Subscribe to every tenant the token may read, and to new ones as they appear.
    const poll = async () => {
      try {
        const { tenants, sessions } = await tenantsVisible(base, token);
        store.summary({ sessions });
        // One subscription per tenant, and no more than the gateway allows:
        // take the most recently active tenants and say what is left out.
        tenants.sort((a, b) => b.last_ts - a.last_ts);
        for (const t of tenants) {
          if (connection.tenants.length >= maxTenants) break;
          connection.addTenant(t.tenant);
        }
        const left = tenants.filter((t) => !connection.tenants.includes(t.tenant)).length;
        if (!tenants.length) view.notice("No events yet: waiting for the first tenant to appear…");
        else if (left) view.notice(`Showing ${connection.tenants.length} of ${tenants.length} tenants; pin others with ?tenant=a,b`);
        else if (document.getElementById("notice").textContent.startsWith("No events yet")) view.notice("");
      } catch (error) {
        view.notice(`could not list tenants: ${error.message}`);
      }
    };
    poll();
    setInterval(poll, TENANT_POLL_MS);
  }
  connection.start();
  // Effects (engine-wide counts, as /metrics has them), every few seconds.
  const effects = async () => {
    const tenant = connection.tenants[0];
    if (!tenant) return;
    try {
      const response = await apiGet(base, token, `/api/v1/tenants/${encodeURIComponent(tenant)}/effects?limit=1`);
      if (response.ok) view.effects((await response.json()).counts);
    } catch {
      // the next poll tries again
    }
  };
  setInterval(effects, TENANT_POLL_MS);
  // Waits per tier and the inversion counter (needs a token for every tenant).
  const sla = new SlaPanel(document.getElementById("sla"));
  const slaPoll = async () => {
    try {
      const response = await apiGet(base, token, "/api/v1/sla");
      if (response.ok) sla.update(await response.json());
      else if (response.status === 403) sla.unavailable("Waits per tier need a token for every tenant (subscribe on '*').");
    } catch {
      // the next poll tries again
    }
  };
  slaPoll();
  setInterval(slaPoll, SLA_POLL_MS);
  const frame = () => {
    view.draw(Date.now());
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
  setInterval(() => view.tick(Date.now()), 1000);
}
