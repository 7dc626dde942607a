// A WebSocket load client for the gateway benchmarks, in Node.js: libuv's
// event loop reads a thousand sockets for a fraction of what a Python
// selector loop costs, so at a thousand subscribers the client stops being
// the bottleneck it would otherwise be. Same protocol and output as
// _wsload.py (which `laneway bench` uses when node is not installed).
//
//   node wsload.mjs PORT TOKEN CONNECTIONS SECONDS PUBLISH_RATE NO_SUBSCRIBE SAMPLE_EVERY
import net from "node:net";
import crypto from "node:crypto";
import readline from "node:readline";

const [port, token, connections, seconds, publishRate, noSubscribe, sampleEvery] = process.argv.slice(2);
const N = Number(connections), SECONDS = Number(seconds), PUBLISH = Number(publishRate);
const SUBSCRIBE = noSubscribe !== "1", SAMPLE = Number(sampleEvery);
const SEQ = Buffer.from('"seq":'), SEQ_NULL = Buffer.from('"seq":null'), CHUNK = Buffer.from('"type":"chunk"');
const PONG = Buffer.from([0x8a, 0x80, 0, 0, 0, 0]);

let events = 0, frames = 0, synced = 0, measuring = false, acked = 0, go = false;
let latencies = [], acks = [];
const closed = {};

function masked(text) {
  const payload = Buffer.from(text);
  const n = payload.length;
  const header = n < 126 ? Buffer.from([0x81, 0x80 | n]) : Buffer.from([0x81, 0x80 | 126, n >> 8, n & 255]);
  const key = crypto.randomBytes(4);
  for (let i = 0; i < n; i++) payload[i] ^= key[i & 3];
  return Buffer.concat([header, key, payload]);
}

function count(buf, needle) {
  let n = 0, i = 0;
  while ((i = buf.indexOf(needle, i)) !== -1) { n++; i += needle.length; }
  return n;
}

const sockets = [];

function connect(index) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(port), "127.0.0.1");
    sockets.push(sock);
    const sample = index % SAMPLE === 0;
    const pending = new Map();
    let buf = Buffer.alloc(0), open = false, published = 0;
    let parts = [], partsLen = 0, need = 0;  // bytes of an incomplete frame, and how many it needs
    sock.setNoDelay(true);
    sock.on("error", reject);
    sock.on("connect", () => {
      const key = crypto.randomBytes(16).toString("base64");
      sock.write(`GET /ws?token=${token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: laneway.v2.json\r\n\r\n`);
    });
    sock.on("data", (data) => {
      if (!open) {
        buf = Buffer.concat([buf, data]);
        const end = buf.indexOf("\r\n\r\n");
        if (end === -1) return;
        open = true;
        data = buf.subarray(end + 4);
        buf = Buffer.alloc(0);
        if (SUBSCRIBE) sock.write(masked(JSON.stringify({ type: "subscribe", tenant: "bench", recent: 0 })));
        else synced++;
        if (PUBLISH) {
          // Closed loop: one publish in flight per client, at most PUBLISH/s
          // (a tick with an ack still outstanding is skipped, not queued).
          const interval = 1000 / PUBLISH;
          setTimeout(() => setInterval(() => {
            if (!go || pending.size) return;
            const id = `${index}-${++published}`;
            pending.set(id, performance.now());
            sock.write(masked(JSON.stringify({ type: "publish", id, tenant: "bench", session: `c${index % 100}`, event_type: "T", payload: { n: published } })));
          }, interval), (index % 100) * interval / 100);
        }
        resolve();
        if (data.length === 0) return;
      }
      if (!sample && synced >= N && !PUBLISH) {
        events += count(data, SEQ) - count(data, SEQ_NULL) + count(data, CHUNK);  // counting only
        if (data.indexOf("\x89\x07laneway", 0, "latin1") !== -1) sock.write(PONG);
        return;
      }
      // A client that falls behind gets ever bigger `bulk` frames: collect
      // the chunks of one until it is complete instead of concatenating on
      // every chunk (quadratic in the frame size).
      parts.push(data); partsLen += data.length;
      if (partsLen < need) return;
      buf = parts.length === 1 ? parts[0] : Buffer.concat(parts, partsLen);
      parts = []; partsLen = 0; need = 0;
      let pos = 0;
      while (buf.length - pos >= 2) {
        const opcode = buf[pos] & 15;
        let n = buf[pos + 1] & 127, off = pos + 2;
        if (n === 126) { if (buf.length - pos < 4) break; n = buf.readUInt16BE(pos + 2); off = pos + 4; }
        else if (n === 127) { if (buf.length - pos < 10) break; n = Number(buf.readBigUInt64BE(pos + 2)); off = pos + 10; }
        if (buf.length < off + n) { need = off + n - pos; break; }
        const body = buf.subarray(off, off + n);
        pos = off + n;
        frames++;
        if (opcode === 9) { sock.write(PONG); continue; }
        if (opcode === 8) { const code = n >= 2 ? body.readUInt16BE(0) : 1005; closed[code] = (closed[code] || 0) + 1; continue; }
        if (opcode !== 1) continue;
        const head = body.subarray(0, 40).toString();
        if (head.startsWith('{"v":2,"type":"sync"')) { synced++; continue; }
        const msg = JSON.parse(body);
        if (msg.type === "bulk" || msg.type === "event" || msg.type === "priority_event") {
          const list = msg.type === "bulk" ? msg.payload : [msg];
          events += list.length;
          if (measuring && sample) { const now = Date.now() / 1000; for (const e of list) if (e.payload && e.payload.t) latencies.push(now - e.payload.t); }
        } else if (msg.type === "chunk") {
          // Streamed output: each chunk's data starts with its send time.
          events++;
          if (measuring && sample) latencies.push(Date.now() / 1000 - parseFloat(msg.payload.data));
        } else if (msg.type === "ack") {
          const started = pending.get(msg.metadata.id);
          if (started !== undefined) { pending.delete(msg.metadata.id); if (measuring) acks.push((performance.now() - started) / 1000); }
          if (measuring) acked++;
        }
      }
      if (pos < buf.length) { parts.push(buf.subarray(pos)); partsLen = buf.length - pos; }
    });
  });
}

for (let i = 0; i < N; i += 200) {
  await Promise.all(Array.from({ length: Math.min(200, N - i) }, (_, k) => connect(i + k)));
}
while (synced < N) await new Promise((r) => setTimeout(r, 50));
console.log("CONNECTED");
const rl = readline.createInterface({ input: process.stdin });
await new Promise((r) => rl.once("line", r));
go = true;  // publishers start now; one second of warm-up before counting
await new Promise((r) => setTimeout(r, PUBLISH ? 1000 : 0));
const events0 = events, frames0 = frames, cpu0 = process.cpuUsage(), started = performance.now();
latencies = []; acks = []; measuring = true;
await new Promise((r) => setTimeout(r, SECONDS * 1000));
const elapsed = (performance.now() - started) / 1000, cpu = process.cpuUsage(cpu0);
const result = JSON.stringify({
  events: events - events0, frames: frames - frames0, seconds: elapsed, latencies, acks, closed,
  client_cpu_fraction: (cpu.user + cpu.system) / 1e6 / elapsed, client: "node",
});
// Stop reading first: a client that fell behind would otherwise spend
// minutes on the backlog before the result below reaches the pipe.
for (const sock of sockets) sock.destroy();
// Writes to a pipe are asynchronous in Node: exit only once it is flushed.
process.stdout.write(result + "\n", () => process.exit(0));
