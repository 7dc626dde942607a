// Trends drawn as SVG, no library: events/s by priority over the last
// minutes, and one sparkline per session. Fed with live events only (the
// history a page loads when it opens is not a rate).

const SVG = "http://www.w3.org/2000/svg";
export const CHART_SECONDS = 300; // the rate chart's span
export const SPARK_BUCKET_S = 10; // one sparkline point per this many seconds
export const SPARK_POINTS = 30; // so a sparkline spans 5 minutes

// Live arrivals per second, per priority, for the last `seconds`.
export class RateHistory {
  constructor(seconds = CHART_SECONDS) {
    this.seconds = seconds;
    this.counts = new Map(); // unix second -> [p0, p1, p2, p3]
  }

  add(second, priority, n) {
    let row = this.counts.get(second);
    if (!row) {
      row = [0, 0, 0, 0];
      this.counts.set(second, row);
    }
    row[priority] += n;
  }

  // Oldest first: one [p0..p3] per whole second before `nowSecond`.
  series(nowSecond) {
    for (const second of this.counts.keys()) if (second < nowSecond - this.seconds) this.counts.delete(second);
    const out = [];
    for (let s = nowSecond - this.seconds; s < nowSecond; s++) out.push(this.counts.get(s) || [0, 0, 0, 0]);
    return out;
  }
}

function svgNode(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

// Averages over `width` seconds: a per-second line of a bursty stream is
// unreadable, and 5 s matches the events/s figure in the header.
function smooth(values, width) {
  return values.map((_, i) => {
    const from = Math.max(0, i - width + 1);
    let sum = 0;
    for (let j = from; j <= i; j++) sum += values[j];
    return sum / (i - from + 1);
  });
}

// One line per priority (regular, P1, P2, P3) into `svg` (viewBox 0 0 W H);
// returns the top of the scale in events/s.
export function drawRateChart(svg, series, { width = 600, height = 90 } = {}) {
  const lines = [0, 1, 2, 3].map((p) => smooth(series.map((row) => row[p]), 5));
  const top = Math.max(1, ...lines.flat());
  const x = (i) => (series.length < 2 ? width : (i * width) / (series.length - 1));
  const y = (v) => height - 2 - (v / top) * (height - 6);
  const drawn = lines.map((values, p) =>
    svgNode("polyline", { class: `line p${p}`, "data-priority": p, points: values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ") }),
  );
  svg.replaceChildren(...drawn);
  svg.dataset.points = String(series.length);
  svg.dataset.max = top.toFixed(2);
  return top; // the scale, for a label outside the (stretched) drawing
}

// Per session: live events in the last SPARK_POINTS buckets of SPARK_BUCKET_S.
export class SparkCounts {
  constructor() {
    this.buckets = new Map(); // bucket index -> events
  }

  add(second, n) {
    const bucket = Math.floor(second / SPARK_BUCKET_S);
    this.buckets.set(bucket, (this.buckets.get(bucket) || 0) + n);
  }

  points(nowSecond) {
    const last = Math.floor(nowSecond / SPARK_BUCKET_S);
    for (const b of this.buckets.keys()) if (b <= last - SPARK_POINTS) this.buckets.delete(b);
    const out = [];
    for (let b = last - SPARK_POINTS + 1; b <= last; b++) out.push(this.buckets.get(b) || 0);
    return out;
  }
}

export function sparkline(points, { width = 60, height = 14 } = {}) {
  const top = Math.max(1, ...points);
  const x = (i) => (points.length < 2 ? width : (i * width) / (points.length - 1));
  const y = (v) => height - 1 - (v / top) * (height - 2);
  const svg = svgNode("svg", { class: "spark", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", "aria-hidden": "true" });
  svg.append(svgNode("polyline", { points: points.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ") }));
  svg.dataset.total = String(points.reduce((a, b) => a + b, 0));
  return svg;
}
