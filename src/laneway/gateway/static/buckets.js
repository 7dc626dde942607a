// Client-side dual buckets: the dashboard keeps what it shows in the same
// shape the engine keeps a session's events (see laneway/core/_buckets.py),
// so a long-open page behaves like the server under load: bounded by count
// per lane, one of the three overflow strategies, and a memory cap that
// evicts the oldest regular event first, like the engine's memory budget.

export const OVERFLOW_STRATEGIES = ["remove_oldest_regular", "remove_oldest", "reject_new"];

// A FIFO that only loses entries at its old end. Array.shift() is O(n);
// this advances a head index and compacts once half the array is dead.
export class Fifo {
  constructor() {
    this.items = [];
    this.head = 0;
  }
  get length() {
    return this.items.length - this.head;
  }
  push(item) {
    this.items.push(item);
  }
  // Keep the FIFO in `before` order: walk back from the new end past every
  // entry that should come after `item`. Live events arrive in order, so
  // this is one comparison; only late history (a tenant whose recent
  // events come after another's live ones) walks further.
  insert(item, before) {
    let i = this.items.length;
    while (i > this.head && before(item, this.items[i - 1])) i--;
    if (i === this.items.length) this.items.push(item);
    else this.items.splice(i, 0, item);
  }
  first() {
    return this.items[this.head];
  }
  shift() {
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head += 1;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
  // Newest first, at most `limit`, those passing `keep`.
  newest(limit, keep) {
    const out = [];
    for (let i = this.items.length - 1; i >= this.head && out.length < limit; i--) {
      const item = this.items[i];
      if (!keep || keep(item)) out.push(item);
    }
    return out;
  }
  // Drop every entry matching `pred` (rare: a session's history was lost).
  removeWhere(pred) {
    const kept = this.items.slice(this.head).filter((item) => !pred(item));
    const removed = this.length - kept.length;
    this.items = kept;
    this.head = 0;
    return removed;
  }
}

// Commit order: the LSN where both have one (v2, HTTP), else the time.
// A lane is newest first by this, whatever order the events arrived in.
export function earlier(a, b) {
  if (a.lsn && b.lsn) return a.lsn < b.lsn;
  return a.ts < b.ts;
}

// Rough heap cost of a kept event: its JSON text as UTF-16 plus object
// overhead. Enough to keep a page that is left open for a day bounded.
export function eventBytes(event) {
  return 2 * (event.raw ? event.raw.length : JSON.stringify(event.payload ?? null).length) + 400;
}

export class DualBucket {
  // priorityMax / regularMax: events per lane; overflow: one of
  // OVERFLOW_STRATEGIES; maxBytes: memory cap for both lanes together.
  constructor({ priorityMax = 1000, regularMax = 2000, overflow = "remove_oldest_regular", maxBytes = 32 << 20 } = {}) {
    if (!OVERFLOW_STRATEGIES.includes(overflow)) throw new Error(`unknown overflow strategy ${overflow}`);
    if (!(priorityMax >= 1 && regularMax >= 1 && maxBytes >= 1)) throw new Error("bucket limits must be >= 1");
    this.priorityMax = priorityMax;
    this.regularMax = regularMax;
    this.overflow = overflow;
    this.maxBytes = maxBytes;
    this.priority = new Fifo();
    this.regular = new Fifo();
    this.bytes = 0;
    this.counters = { kept: 0, evicted: 0, rejected: 0, budgetEvicted: 0 };
  }

  get length() {
    return this.priority.length + this.regular.length;
  }

  // Limits may change when a later sync carries a tenant's new settings;
  // the next add() brings the contents back within them.
  configure({ priorityMax, regularMax, overflow }) {
    if (priorityMax >= 1) this.priorityMax = priorityMax;
    if (regularMax >= 1) this.regularMax = regularMax;
    if (OVERFLOW_STRATEGIES.includes(overflow)) this.overflow = overflow;
  }

  // Keep `event` ({priority, ...}); returns {kept, evicted: [events]}.
  add(event) {
    const fifo = event.priority > 0 ? this.priority : this.regular;
    if (this.overflow === "reject_new") {
      const max = event.priority > 0 ? this.priorityMax : this.regularMax;
      if (fifo.length >= max) {
        this.counters.rejected += 1;
        return { kept: false, evicted: [] };
      }
    }
    event.bytes = eventBytes(event);
    fifo.insert(event, earlier);
    this.bytes += event.bytes;
    this.counters.kept += 1;
    const evicted = this.fit();
    return { kept: !evicted.includes(event), evicted };
  }

  removeWhere(pred) {
    let bytes = 0;
    const count = (item) => {
      const hit = pred(item);
      if (hit) bytes += item.bytes;
      return hit;
    };
    const removed = this.priority.removeWhere(count) + this.regular.removeWhere(count);
    this.bytes -= bytes;
    return removed;
  }

  fit() {
    const evicted = [];
    const pop = (fifo) => {
      const item = fifo.shift();
      this.bytes -= item.bytes;
      evicted.push(item);
    };
    if (this.overflow === "remove_oldest_regular") {
      // One shared room; regular events use at most regularMax of it,
      // priority events may borrow the rest. Regular events go first.
      const room = this.priorityMax + this.regularMax;
      while (this.regular.length && (this.regular.length > this.regularMax || this.length > room)) pop(this.regular);
      while (this.priority.length && this.length > room) pop(this.priority);
    } else {
      // remove_oldest: each lane is a ring. reject_new refused new events
      // above; this only trims after the limits shrank.
      while (this.priority.length > this.priorityMax) pop(this.priority);
      while (this.regular.length > this.regularMax) pop(this.regular);
    }
    this.counters.evicted += evicted.length;
    // The memory cap, whatever the strategy: oldest regular first.
    while (this.bytes > this.maxBytes && this.length > 0) {
      pop(this.regular.length ? this.regular : this.priority);
      this.counters.budgetEvicted += 1;
    }
    return evicted;
  }
}
