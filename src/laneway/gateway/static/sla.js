// The SLA panel: how long ready effects wait per tenant tier, as a small
// live chart, and the priority-inversion counter, which should read 0.
// Fed by GET /api/v1/sla (rows per event priority and tier, see core/_sla.py).

const TIERS = ["high", "medium", "low"];
const HISTORY = 90; // samples kept for the chart (at one poll every 2 s: 3 minutes)
const SVG = "http://www.w3.org/2000/svg";

// Per tier, over its priorities: the worst wait percentiles (the figure a
// tier's SLA is judged by), and the sums of the counters.
export function byTier(rows) {
  const tiers = new Map(TIERS.map((t) => [t, { ready: 0, started: 0, succeeded: 0, failed: 0, misses: 0, p50: 0, p95: 0, p99: 0 }]));
  for (const row of rows) {
    const t = tiers.get(row.tier);
    if (!t) continue;
    t.ready += row.depth;
    t.started += row.started;
    t.succeeded += row.succeeded;
    t.failed += row.failed;
    t.misses += row.deadline_misses;
    t.p50 = Math.max(t.p50, row.wait_ms_p50);
    t.p95 = Math.max(t.p95, row.wait_ms_p95);
    t.p99 = Math.max(t.p99, row.wait_ms_p99);
  }
  return tiers;
}

export function formatMs(ms) {
  if (ms >= 3_600_000) return `${(ms / 3_600_000).toFixed(1)} h`;
  if (ms >= 60_000) return `${(ms / 60_000).toFixed(1)} min`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(1)} s`;
  return `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
}

export class SlaPanel {
  constructor(root) {
    this.root = root;
    this.history = []; // [{p50: {tier: ms}, p99: {tier: ms}}]
  }

  $(id) {
    return this.root.querySelector(`#${id}`);
  }

  // One answer of /api/v1/sla.
  update(answer) {
    const tiers = byTier(answer.sla || []);
    const inversions = answer.priority_inversions || 0;
    const counter = this.$("sla-inversions");
    counter.textContent = String(inversions);
    counter.classList.toggle("bad", inversions > 0);
    this.history.push({ p50: Object.fromEntries([...tiers].map(([t, v]) => [t, v.p50])), p99: Object.fromEntries([...tiers].map(([t, v]) => [t, v.p99])) });
    if (this.history.length > HISTORY) this.history.shift();
    this.table(tiers);
    this.chart();
    this.$("sla-note").textContent = "";
    this.root.hidden = false;
  }

  unavailable(why) {
    this.root.hidden = false;
    this.$("sla-note").textContent = why;
  }

  table(tiers) {
    const rows = [];
    for (const [tier, t] of tiers) {
      const tr = document.createElement("tr");
      tr.dataset.tier = tier;
      const done = t.succeeded + t.failed;
      const cells = [tier, t.ready, formatMs(t.p50), formatMs(t.p95), formatMs(t.p99), t.started, done ? `${((100 * t.succeeded) / done).toFixed(1)}%` : "–", t.misses];
      for (const [i, value] of cells.entries()) {
        const td = document.createElement("td");
        td.textContent = String(value);
        if (i === 0) td.className = `tier ${tier}`;
        tr.append(td);
      }
      rows.push(tr);
    }
    this.$("sla-rows").replaceChildren(...rows);
  }

  // p99 (solid) and p50 (dashed) wait per tier, oldest sample on the left.
  chart() {
    const svg = this.$("sla-chart");
    const width = 300;
    const height = 80;
    const top = Math.max(1, ...this.history.flatMap((h) => TIERS.map((t) => h.p99[t] || 0)));
    const x = (i) => (this.history.length < 2 ? width : (i * width) / (HISTORY - 1));
    const y = (ms) => height - 2 - (ms / top) * (height - 14);
    const lines = [];
    for (const tier of TIERS) {
      for (const q of ["p99", "p50"]) {
        const line = document.createElementNS(SVG, "polyline");
        line.setAttribute("class", `line ${tier} ${q}`);
        line.setAttribute("points", this.history.map((h, i) => `${x(i).toFixed(1)},${y(h[q][tier] || 0).toFixed(1)}`).join(" "));
        lines.push(line);
      }
    }
    const scale = document.createElementNS(SVG, "text");
    scale.setAttribute("x", "2");
    scale.setAttribute("y", "10");
    scale.setAttribute("class", "scale");
    scale.textContent = `max ${formatMs(top)}`;
    svg.replaceChildren(...lines, scale);
    svg.dataset.samples = String(this.history.length);
  }
}
