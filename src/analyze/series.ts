// The time series behind the HTML chart, in bounded memory whatever the log's length: time is cut
// into at most maxPoints buckets; when a record falls past the last bucket, the bucket width doubles
// and neighbouring buckets merge. Each bucket keeps the min and max of io_tlb_used (so a spike is
// never averaged away), the max of used_hiwater, the thresholds and pool size, and counts of the
// events marked on the chart.

export interface Bucket {
  samples: number;
  /** Time of the latest sample in the bucket. */
  sampleTMax: number;
  usedMin: number;
  usedMax: number;
  hiwaterMax: number;
  nslabs: number;
  high: number;
  low: number;
  queueMax: number;
  mapFailures: number;
  throttleWaits: number;
  throttleWaitUsMax: number;
  stalls: number;
  ioErrors: number;
  packetDrops: number;
}

function emptyBucket(): Bucket {
  return {
    samples: 0, sampleTMax: -Infinity, usedMin: Infinity, usedMax: -Infinity, hiwaterMax: -Infinity, nslabs: -Infinity,
    high: -Infinity, low: -Infinity, queueMax: -Infinity,
    mapFailures: 0, throttleWaits: 0, throttleWaitUsMax: 0, stalls: 0, ioErrors: 0, packetDrops: 0,
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
    high: b.samples > 0 ? b.high : a.high,
    low: b.samples > 0 ? b.low : a.low,
    queueMax: Math.max(a.queueMax, b.queueMax),
    mapFailures: a.mapFailures + b.mapFailures,
    throttleWaits: a.throttleWaits + b.throttleWaits,
    throttleWaitUsMax: Math.max(a.throttleWaitUsMax, b.throttleWaitUsMax),
    stalls: a.stalls + b.stalls,
    ioErrors: a.ioErrors + b.ioErrors,
    packetDrops: a.packetDrops + b.packetDrops,
  };
}

export type MarkKind = 'mapFailures' | 'throttleWaits' | 'stalls' | 'ioErrors' | 'packetDrops';

/** The chart's data: one entry per bucket, x in seconds since the run started; null = no data. */
export interface ChartData {
  bucket_ms: number;
  x_s: number[];
  used_max: Array<number | null>;
  used_min: Array<number | null>;
  hiwater: Array<number | null>;
  nslabs: Array<number | null>;
  high_throttle: Array<number | null>;
  low_throttle: Array<number | null>;
  throttle_queue_len: Array<number | null>;
  map_failures: Array<number | null>;
  throttle_waits: Array<number | null>;
  throttle_wait_us_max: Array<number | null>;
  stalls: Array<number | null>;
  io_errors: Array<number | null>;
  packet_drops: Array<number | null>;
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

  addSample(tMs: number, used: number, hiwater: number, nslabs: number, high: number, low: number, queueLen: number): void {
    const b = this.at(tMs);
    b.samples++;
    if (tMs > b.sampleTMax) b.sampleTMax = tMs;
    if (used < b.usedMin) b.usedMin = used;
    if (used > b.usedMax) b.usedMax = used;
    if (hiwater > b.hiwaterMax) b.hiwaterMax = hiwater;
    b.nslabs = nslabs;
    b.high = high;
    b.low = low;
    if (queueLen > b.queueMax) b.queueMax = queueLen;
  }

  mark(tMs: number, kind: MarkKind, waitUs = 0): void {
    const b = this.at(tMs);
    b[kind]++;
    if (kind === 'throttleWaits' && waitUs > b.throttleWaitUsMax) b.throttleWaitUsMax = waitUs;
  }

  data(): ChartData {
    const n = this.buckets.length;
    const fin = (v: number): number | null => (Number.isFinite(v) ? v : null);
    const count = (v: number): number | null => (v > 0 ? v : null);
    const d: ChartData = {
      bucket_ms: this.widthMs, x_s: [], used_max: [], used_min: [], hiwater: [], nslabs: [], high_throttle: [],
      low_throttle: [], throttle_queue_len: [], map_failures: [], throttle_waits: [], throttle_wait_us_max: [],
      stalls: [], io_errors: [], packet_drops: [],
    };
    for (let i = 0; i < n; i++) {
      const b = this.buckets[i]!;
      // x at the bucket's latest sample (a sample taken at t describes the pool at t), else its middle.
      const x = b.samples > 0 ? Math.max(i * this.widthMs, b.sampleTMax) : (i + 0.5) * this.widthMs;
      d.x_s.push(x / 1000);
      d.used_max.push(fin(b.usedMax));
      d.used_min.push(fin(b.usedMin));
      d.hiwater.push(fin(b.hiwaterMax));
      d.nslabs.push(fin(b.nslabs));
      d.high_throttle.push(fin(b.high));
      d.low_throttle.push(fin(b.low));
      d.throttle_queue_len.push(fin(b.queueMax));
      d.map_failures.push(count(b.mapFailures));
      d.throttle_waits.push(count(b.throttleWaits));
      d.throttle_wait_us_max.push(count(b.throttleWaitUsMax));
      d.stalls.push(count(b.stalls));
      d.io_errors.push(count(b.ioErrors));
      d.packet_drops.push(count(b.packetDrops));
    }
    return d;
  }
}
