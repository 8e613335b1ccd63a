// The time series behind the HTML chart, in bounded memory whatever the log's length: time is cut
// into at most maxPoints buckets; when a record falls past the last bucket, the bucket width doubles
// and neighbouring buckets merge. Each bucket keeps the min and max of io_tlb_used (so a spike is
// never averaged away), the max of used_hiwater, the thresholds, the pool size (io_tlb_nslabs) and
// the slots in transient pools (io_tlb_transient_nslabs), counts of the
// events marked on the chart, and the rises of the samples' cumulative counters with the sampled
// time they cover (a rate per second whatever the bucket width).
//
// To add a series: a field in Bucket (with its empty value and its merge), where it is fed, and its
// array in ChartData; a counter the samples carry needs only its name in COUNTER_KINDS.

/** Cumulative counters of the sample records, charted as rates (the exact counts of ratelimited events). */
export const COUNTER_KINDS = ['map_failures', 'io_errors', 'packets_dropped'] as const;
export type CounterKind = (typeof COUNTER_KINDS)[number];

function zeroCounts(): Record<CounterKind, number> {
  return Object.fromEntries(COUNTER_KINDS.map((k) => [k, 0])) as Record<CounterKind, number>;
}

export interface Bucket {
  samples: number;
  /** Time of the latest sample in the bucket. */
  sampleTMax: number;
  usedMin: number;
  usedMax: number;
  hiwaterMax: number;
  nslabs: number;
  /** io_tlb_transient_nslabs: the latest sample's; -Infinity when no sample in the bucket carries it. */
  transient: number;
  high: number;
  low: number;
  queueMax: number;
  mapFailures: number;
  throttleWaits: number;
  throttleWaitUsMax: number;
  stalls: number;
  ioErrors: number;
  packetDrops: number;
  tunables: number;
  /** Dynamic pools added (pool_created, kind dynamic). */
  growths: number;
  /** Sampled time (ms) covered by the samples in this bucket, and their counters' rises. */
  counterMs: number;
  counts: Record<CounterKind, number>;
}

function emptyBucket(): Bucket {
  return {
    samples: 0, sampleTMax: -Infinity, usedMin: Infinity, usedMax: -Infinity, hiwaterMax: -Infinity, nslabs: -Infinity, transient: -Infinity,
    high: -Infinity, low: -Infinity, queueMax: -Infinity,
    mapFailures: 0, throttleWaits: 0, throttleWaitUsMax: 0, stalls: 0, ioErrors: 0, packetDrops: 0, tunables: 0, growths: 0,
    counterMs: 0, counts: zeroCounts(),
  };
}

function merge(a: Bucket, b: Bucket): Bucket {
  return {
    samples: a.samples + b.samples,
    sampleTMax: Math.max(a.sampleTMax, b.sampleTMax),
    usedMin: Math.min(a.usedMin, b.usedMin),
    usedMax: Math.max(a.usedMax, b.usedMax),
    hiwaterMax: Math.max(a.hiwaterMax, b.hiwaterMax),
    // Thresholds and pool size: the later value when the later bucket has one.
    nslabs: b.samples > 0 ? b.nslabs : a.nslabs,
    transient: Number.isFinite(b.transient) ? b.transient : a.transient,
    high: b.samples > 0 ? b.high : a.high,
    low: b.samples > 0 ? b.low : a.low,
    queueMax: Math.max(a.queueMax, b.queueMax),
    mapFailures: a.mapFailures + b.mapFailures,
    throttleWaits: a.throttleWaits + b.throttleWaits,
    throttleWaitUsMax: Math.max(a.throttleWaitUsMax, b.throttleWaitUsMax),
    stalls: a.stalls + b.stalls,
    ioErrors: a.ioErrors + b.ioErrors,
    packetDrops: a.packetDrops + b.packetDrops,
    tunables: a.tunables + b.tunables,
    growths: a.growths + b.growths,
    counterMs: a.counterMs + b.counterMs,
    counts: Object.fromEntries(COUNTER_KINDS.map((k) => [k, a.counts[k] + b.counts[k]])) as Record<CounterKind, number>,
  };
}

export type MarkKind = 'mapFailures' | 'throttleWaits' | 'stalls' | 'ioErrors' | 'packetDrops' | 'tunables' | 'growths';

/** The chart's data: one entry per bucket, x in seconds since the run started; null = no data. */
export interface ChartData {
  bucket_ms: number;
  x_s: number[];
  used_max: Array<number | null>;
  used_min: Array<number | null>;
  hiwater: Array<number | null>;
  nslabs: Array<number | null>;
  /** io_tlb_transient_nslabs (slots in transient pools), when the samples carry it. */
  transient_nslabs: Array<number | null>;
  high_throttle: Array<number | null>;
  low_throttle: Array<number | null>;
  throttle_queue_len: Array<number | null>;
  /**
   * Per second: from the samples' exact counters (rise / sampled time, at the sample's bucket), or in
   * a log whose samples lack the counter, from the printed (ratelimited) records per bucket width.
   */
  map_failures_per_s: Array<number | null>;
  io_errors_per_s: Array<number | null>;
  packets_dropped_per_s: Array<number | null>;
  /** Where the three rates come from. */
  failure_source: Record<CounterKind, 'counters' | 'records'>;
  /** Counts per bucket. */
  throttle_waits: Array<number | null>;
  throttle_wait_us_max: Array<number | null>;
  stalls: Array<number | null>;
  /** tunable_changed records per bucket (drawn when the change was made). */
  tunables: Array<number | null>;
  /** Dynamic pools added per bucket (drawn when the pool was added). */
  growths: Array<number | null>;
}

export class TimeSeries {
  private buckets: Bucket[] = [];
  private widthMs: number;

  /** Times are ms since the run started; initialWidthMs is the finest resolution (normally the sample interval). */
  constructor(private readonly maxPoints: number, initialWidthMs = 10) {
    this.widthMs = initialWidthMs;
  }

  get bucketMs(): number {
    return this.widthMs;
  }

  private at(tMs: number): Bucket {
    let i = Math.floor(Math.max(0, tMs) / this.widthMs);
    while (i >= this.maxPoints) {
      this.coarsen();
      i = Math.floor(Math.max(0, tMs) / this.widthMs);
    }
    while (this.buckets.length <= i) this.buckets.push(emptyBucket());
    return this.buckets[i]!;
  }

  private coarsen(): void {
    const next: Bucket[] = [];
    for (let i = 0; i < this.buckets.length; i += 2) {
      const a = this.buckets[i]!;
      const b = this.buckets[i + 1];
      next.push(b === undefined ? a : merge(a, b));
    }
    this.buckets = next;
    this.widthMs *= 2;
  }

  addSample(tMs: number, used: number, hiwater: number, nslabs: number, transient: number | null, high: number, low: number, queueLen: number): void {
    const b = this.at(tMs);
    b.samples++;
    if (tMs > b.sampleTMax) b.sampleTMax = tMs;
    if (used < b.usedMin) b.usedMin = used;
    if (used > b.usedMax) b.usedMax = used;
    if (hiwater > b.hiwaterMax) b.hiwaterMax = hiwater;
    b.nslabs = nslabs;
    if (transient !== null) b.transient = transient;
    b.high = high;
    b.low = low;
    if (queueLen > b.queueMax) b.queueMax = queueLen;
  }

  /** The rises of the samples' counters over the `dtMs` before the sample at tMs. */
  addCounts(tMs: number, dtMs: number, rises: Partial<Record<CounterKind, number>>): void {
    const b = this.at(tMs);
    b.counterMs += dtMs;
    for (const k of COUNTER_KINDS) b.counts[k] += rises[k] ?? 0;
  }

  mark(tMs: number, kind: MarkKind, waitUs = 0): void {
    const b = this.at(tMs);
    b[kind]++;
    if (kind === 'throttleWaits' && waitUs > b.throttleWaitUsMax) b.throttleWaitUsMax = waitUs;
  }

  /** The chart's arrays; `fromCounters` says, per counter, whether the samples carried it. */
  data(fromCounters: Record<CounterKind, boolean> = { map_failures: false, io_errors: false, packets_dropped: false }): ChartData {
    const n = this.buckets.length;
    const fin = (v: number): number | null => (Number.isFinite(v) ? v : null);
    const count = (v: number): number | null => (v > 0 ? v : null);
    const source = Object.fromEntries(COUNTER_KINDS.map((k) => [k, fromCounters[k] ? 'counters' : 'records'])) as ChartData['failure_source'];
    const d: ChartData = {
      bucket_ms: this.widthMs, x_s: [], used_max: [], used_min: [], hiwater: [], nslabs: [], transient_nslabs: [], high_throttle: [],
      low_throttle: [], throttle_queue_len: [], map_failures_per_s: [], io_errors_per_s: [], packets_dropped_per_s: [],
      failure_source: source, throttle_waits: [], throttle_wait_us_max: [], stalls: [], tunables: [], growths: [],
    };
    const records: Record<CounterKind, 'mapFailures' | 'ioErrors' | 'packetDrops'> = { map_failures: 'mapFailures', io_errors: 'ioErrors', packets_dropped: 'packetDrops' };
    const out: Record<CounterKind, Array<number | null>> = { map_failures: d.map_failures_per_s, io_errors: d.io_errors_per_s, packets_dropped: d.packets_dropped_per_s };
    for (let i = 0; i < n; i++) {
      const b = this.buckets[i]!;
      // x at the bucket's latest sample (a sample taken at t describes the pool at t), else its middle.
      const x = b.samples > 0 ? Math.max(i * this.widthMs, b.sampleTMax) : (i + 0.5) * this.widthMs;
      d.x_s.push(x / 1000);
      d.used_max.push(fin(b.usedMax));
      d.used_min.push(fin(b.usedMin));
      d.hiwater.push(fin(b.hiwaterMax));
      d.nslabs.push(fin(b.nslabs));
      d.transient_nslabs.push(fin(b.transient));
      d.high_throttle.push(fin(b.high));
      d.low_throttle.push(fin(b.low));
      d.throttle_queue_len.push(fin(b.queueMax));
      for (const k of COUNTER_KINDS) {
        const rate = source[k] === 'counters'
          ? (b.counterMs > 0 && b.counts[k] > 0 ? (b.counts[k] * 1000) / b.counterMs : null)
          : (b[records[k]] > 0 ? (b[records[k]] * 1000) / this.widthMs : null);
        out[k].push(rate);
      }
      d.throttle_waits.push(count(b.throttleWaits));
      d.throttle_wait_us_max.push(count(b.throttleWaitUsMax));
      d.stalls.push(count(b.stalls));
      d.tunables.push(count(b.tunables));
      d.growths.push(count(b.growths));
    }
    return d;
  }
}
