// Completion-latency histogram kept in a SharedArrayBuffer, so that each vCPU thread records into its
// own histograms without messages, and the main thread (or any worker) rebuilds a view of them from
// the same memory to report.
//
// The bucket scheme is fio's (stat.h, FIO_IO_U_PLAT_BITS = 6), so our percentiles are the numbers fio
// would print for the same samples:
//   - 0 .. 127 ns have one bucket each (exact);
//   - from 128 ns up, each power of two [2^m, 2^(m+1)) is split into 64 equal buckets, i.e. a sample
//     keeps its most significant bit and the next 6 bits, and the lower m-6 bits are dropped;
//   - a bucket is represented by its midpoint, so a percentile is within 1/128 (0.78%) of the sample
//     it stands for (half a bucket, 2^(m-7), over the smallest value in the group, 2^m).
// fio stops at 29 groups (2^34 ns, about 17 s). We keep 35 groups, up to 2^40 - 1 ns (about 1100 s);
// a larger sample is counted in the last bucket, as fio does, though min, max, mean and stdev stay
// exact.
//
// Memory ordering: each histogram has a single writer (the vCPU thread that owns it), so record()
// uses plain stores and no atomics. A reader on another thread during a run may see a torn snapshot:
// the count from one moment and the buckets from another, or (the JS memory model allows it, x86-64
// does not do it for aligned stores) a torn 8-byte value. That is good enough for a progress line.
// Final reports must read after the writers have stopped and after a synchronising edge with them
// (the worker's 'exit' event, a message it posts after its last record(), or an Atomics operation on
// a shared flag), and then see exact values.
import { assert, InvariantError } from '../errors.js';

// ---- The bucket scheme -------------------------------------------------------------------------

/** Bits of a sample kept below its most significant bit: fio's FIO_IO_U_PLAT_BITS. */
export const HISTOGRAM_SUB_BUCKET_BITS = 6;
/** Buckets per power-of-two group: fio's FIO_IO_U_PLAT_VAL. */
export const HISTOGRAM_SUB_BUCKETS = 1 << HISTOGRAM_SUB_BUCKET_BITS;
/** Highest most-significant-bit tracked: 2^40 - 1 ns is about 1100 s. */
export const HISTOGRAM_MAX_MSB = 39;
/** Groups of 64 buckets: two exact ones (0..127 ns), then one per bit from 7 to HISTOGRAM_MAX_MSB. */
export const HISTOGRAM_GROUPS = HISTOGRAM_MAX_MSB - HISTOGRAM_SUB_BUCKET_BITS + 2;
export const HISTOGRAM_BUCKETS = HISTOGRAM_GROUPS * HISTOGRAM_SUB_BUCKETS;
/** Largest sample with a bucket of its own; larger ones are counted in the last bucket. */
export const HISTOGRAM_MAX_TRACKED_NS = 2 ** (HISTOGRAM_MAX_MSB + 1) - 1;
/** Bound on |percentile - sample| / sample for samples up to HISTOGRAM_MAX_TRACKED_NS. */
export const HISTOGRAM_RELATIVE_ERROR_MAX = 1 / (2 * HISTOGRAM_SUB_BUCKETS);

// ---- The layout in shared memory ---------------------------------------------------------------
//
// One histogram is HISTOGRAM_SLOTS Float64 slots from its byteOffset: a 64-byte header, then the
// buckets. Everything is Float64: sums must be (a Uint32 sum of nanoseconds overflows after 4 s), and
// counts are too, because a Uint32 bucket overflows after 2^32 samples (7 minutes at 10M IOPS into
// one bucket) while a Float64 counts exactly to 2^53; one element type also keeps the layout a single
// typed array. The price is 17.5 KiB per histogram, 2.2 MiB for 64 vCPUs x 2 directions.

/** Samples recorded. */
export const HIST_SLOT_COUNT = 0;
/** Smallest sample, ns (meaningless while the count is 0). */
export const HIST_SLOT_MIN_NS = 1;
/** Largest sample, ns (meaningless while the count is 0). */
export const HIST_SLOT_MAX_NS = 2;
/** Sum of samples, ns: exact while below 2^53 ns (104 days of summed latency). */
export const HIST_SLOT_SUM_NS = 3;
/**
 * Sum of squared deviations from the mean, ns^2, kept by Welford's update (as fio keeps its
 * io_stat.S) rather than a plain sum of squares, whose variance formula cancels catastrophically
 * when the mean is large against the spread (1 s +- 1 us).
 */
export const HIST_SLOT_M2_NS2 = 4;
/** Header slots: five used, padded to one 64-byte cache line. */
export const HIST_HEADER_SLOTS = 8;
/** First bucket count. */
export const HIST_SLOT_BUCKETS = HIST_HEADER_SLOTS;
export const HIST_SLOTS = HIST_HEADER_SLOTS + HISTOGRAM_BUCKETS;
export const HISTOGRAM_BYTES = HIST_SLOTS * Float64Array.BYTES_PER_ELEMENT;
export const CACHE_LINE_BYTES = 64;

assert(HIST_SLOT_M2_NS2 < HIST_HEADER_SLOTS, 'histogram: header fields overflow the header');
assert(HIST_HEADER_SLOTS * Float64Array.BYTES_PER_ELEMENT === CACHE_LINE_BYTES, 'histogram: header is not one cache line');
// Histograms laid end to end from a cache-line-aligned base then never share a line, so two vCPUs
// recording into neighbouring histograms do not slow each other down.
assert(HISTOGRAM_BYTES % CACHE_LINE_BYTES === 0, 'histogram: size is not a whole number of cache lines');
assert(HISTOGRAM_MAX_TRACKED_NS >= 1000e9, 'histogram: does not reach 1000 s');
assert(HISTOGRAM_RELATIVE_ERROR_MAX < 0.02, 'histogram: error bound above 2%');

/** fio's default percentile_list. */
export const FIO_DEFAULT_PERCENTILES: readonly number[] = Object.freeze([
  1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.5, 99.9, 99.95, 99.99,
]);

const TWO_POW_31 = 2 ** 31;
const TWO_POW_32 = 2 ** 32;

/**
 * Bucket of a whole, non-negative number of nanoseconds (fio's plat_val_to_idx). Int32 arithmetic
 * below 2^31 ns (2.1 s), the case that matters for speed; divisions by powers of two (exact) above.
 */
export function histogramBucketIndex(ns: number): number {
  if (ns < TWO_POW_31) {
    const v = ns | 0;
    if (v < 2 * HISTOGRAM_SUB_BUCKETS) return v;
    const errorBits = 31 - Math.clz32(v) - HISTOGRAM_SUB_BUCKET_BITS;
    return ((errorBits + 1) << HISTOGRAM_SUB_BUCKET_BITS) + ((v >> errorBits) & (HISTOGRAM_SUB_BUCKETS - 1));
  }
  if (ns > HISTOGRAM_MAX_TRACKED_NS) return HISTOGRAM_BUCKETS - 1;
  const high = Math.floor(ns / TWO_POW_32);
  const msb = high === 0 ? 31 : 63 - Math.clz32(high);
  const errorBits = msb - HISTOGRAM_SUB_BUCKET_BITS;
  return ((errorBits + 1) << HISTOGRAM_SUB_BUCKET_BITS) + (Math.floor(ns / 2 ** errorBits) & (HISTOGRAM_SUB_BUCKETS - 1));
}

/** Smallest sample, ns, counted in bucket `index`. */
export function histogramBucketLowNs(index: number): number {
  if (index < 2 * HISTOGRAM_SUB_BUCKETS) return index;
  const errorBits = (index >> HISTOGRAM_SUB_BUCKET_BITS) - 1;
  return (2 ** HISTOGRAM_SUB_BUCKET_BITS + (index & (HISTOGRAM_SUB_BUCKETS - 1))) * 2 ** errorBits;
}

/** The value fio reports for bucket `index`: the midpoint of its range (fio's plat_idx_to_val). */
export function histogramBucketValueNs(index: number): number {
  if (index < 2 * HISTOGRAM_SUB_BUCKETS) return index;
  const errorBits = (index >> HISTOGRAM_SUB_BUCKET_BITS) - 1;
  return histogramBucketLowNs(index) + 2 ** (errorBits - 1);
}

/** One percentile of a snapshot: `p` in 0..100 and the bucket value fio would print for it. */
export interface HistogramPercentile {
  p: number;
  value_ns: number;
}

/** A histogram's summary as plain, JSON-able data. All zeros and no percentiles when count is 0. */
export interface HistogramSnapshot {
  count: number;
  min_ns: number;
  max_ns: number;
  mean_ns: number;
  /** Sample standard deviation (n - 1), as fio's calc_lat; 0 for fewer than two samples. */
  stdev_ns: number;
  /** At FIO_DEFAULT_PERCENTILES unless asked otherwise, in ascending order of p. */
  percentiles: HistogramPercentile[];
}

export class LatencyHistogram {
  /** The histogram's slots (HIST_SLOT_*), a view of the caller's SharedArrayBuffer. */
  private readonly slots: Float64Array;

  /** Bytes one histogram occupies; a multiple of the cache line. */
  static bytesNeeded(): number {
    return HISTOGRAM_BYTES;
  }

  /** A histogram in a SharedArrayBuffer of its own (for tests and one-off use). */
  static create(): LatencyHistogram {
    return new LatencyHistogram(new SharedArrayBuffer(HISTOGRAM_BYTES));
  }

  /**
   * A view of the histogram at `byteOffset` in `sab`. Writes nothing, so any thread can rebuild a
   * view of a live histogram; a zero-filled region is an empty histogram. `byteOffset` must be a
   * multiple of 8, and should be a multiple of CACHE_LINE_BYTES when another thread writes nearby.
   */
  constructor(sab: SharedArrayBuffer, byteOffset = 0) {
    assert(
      Number.isSafeInteger(byteOffset) && byteOffset >= 0 && byteOffset % Float64Array.BYTES_PER_ELEMENT === 0,
      `latency histogram: byteOffset ${byteOffset} is not a non-negative multiple of 8`,
    );
    assert(
      byteOffset + HISTOGRAM_BYTES <= sab.byteLength,
      `latency histogram: ${HISTOGRAM_BYTES} bytes at offset ${byteOffset} do not fit a ${sab.byteLength}-byte buffer`,
    );
    this.slots = new Float64Array(sab, byteOffset, HIST_SLOTS);
  }

  /**
   * Count one completion of `ns` nanoseconds. Only the owning thread may call it. Rounds to whole
   * nanoseconds (fio counts whole nanoseconds; rounding also absorbs the float noise of
   * performance.now() differences). Allocates nothing.
   */
  record(ns: number): void {
    // Also rejects NaN. Cheap enough to leave on: a negative latency means a broken clock or caller.
    if (!(ns >= 0)) throw new InvariantError(`latency histogram: ${ns} ns is not a latency`);
    const v = Math.round(ns);
    const s = this.slots;
    s[HIST_SLOT_BUCKETS + histogramBucketIndex(v)]++;
    const n0 = s[HIST_SLOT_COUNT]!;
    if (n0 === 0) {
      s[HIST_SLOT_MIN_NS] = v;
      s[HIST_SLOT_MAX_NS] = v;
      s[HIST_SLOT_SUM_NS] = v;
      s[HIST_SLOT_COUNT] = 1;
      return;
    }
    const n1 = n0 + 1;
    const sum0 = s[HIST_SLOT_SUM_NS]!;
    const sum1 = sum0 + v;
    // Welford: M2 += (x - mean_before) * (x - mean_after), with the means taken from the exact sum.
    s[HIST_SLOT_M2_NS2] = s[HIST_SLOT_M2_NS2]! + (v - sum0 / n0) * (v - sum1 / n1);
    s[HIST_SLOT_SUM_NS] = sum1;
    s[HIST_SLOT_COUNT] = n1;
    if (v < s[HIST_SLOT_MIN_NS]!) s[HIST_SLOT_MIN_NS] = v;
    if (v > s[HIST_SLOT_MAX_NS]!) s[HIST_SLOT_MAX_NS] = v;
  }

  /**
   * Add `from`'s samples to `into` (fio's sum_stat plus adding the bucket arrays). For reports: call
   * it once the writer of `from` has stopped, and on an `into` that no other thread writes.
   */
  static merge(into: LatencyHistogram, from: LatencyHistogram): void {
    const a = into.slots;
    const b = from.slots;
    const nb = b[HIST_SLOT_COUNT]!;
    if (nb === 0) return;
    for (let i = HIST_SLOT_BUCKETS; i < HIST_SLOTS; i++) a[i] = a[i]! + b[i]!;
    const na = a[HIST_SLOT_COUNT]!;
    if (na === 0) {
      for (let i = 0; i < HIST_HEADER_SLOTS; i++) a[i] = b[i]!;
      return;
    }
    const n = na + nb;
    // Chan et al.'s pairwise update of M2: the two parts' M2 plus the spread between their means.
    const delta = b[HIST_SLOT_SUM_NS]! / nb - a[HIST_SLOT_SUM_NS]! / na;
    a[HIST_SLOT_M2_NS2] = a[HIST_SLOT_M2_NS2]! + b[HIST_SLOT_M2_NS2]! + delta * delta * ((na * nb) / n);
    a[HIST_SLOT_SUM_NS] = a[HIST_SLOT_SUM_NS]! + b[HIST_SLOT_SUM_NS]!;
    a[HIST_SLOT_COUNT] = n;
    if (b[HIST_SLOT_MIN_NS]! < a[HIST_SLOT_MIN_NS]!) a[HIST_SLOT_MIN_NS] = b[HIST_SLOT_MIN_NS]!;
    if (b[HIST_SLOT_MAX_NS]! > a[HIST_SLOT_MAX_NS]!) a[HIST_SLOT_MAX_NS] = b[HIST_SLOT_MAX_NS]!;
  }

  /** Forget every sample. Only the owning thread, or anyone once it has stopped, may call it. */
  reset(): void {
    this.slots.fill(0);
  }

  get count(): number {
    return this.slots[HIST_SLOT_COUNT]!;
  }

  /** Smallest sample, ns; 0 when empty. */
  get min(): number {
    return this.count === 0 ? 0 : this.slots[HIST_SLOT_MIN_NS]!;
  }

  /** Largest sample, ns; 0 when empty. */
  get max(): number {
    return this.count === 0 ? 0 : this.slots[HIST_SLOT_MAX_NS]!;
  }

  /** Mean, ns; 0 when empty. */
  get mean(): number {
    const n = this.count;
    return n === 0 ? 0 : this.slots[HIST_SLOT_SUM_NS]! / n;
  }

  /** Sample standard deviation, ns (divides by n - 1, as fio); 0 for fewer than two samples. */
  get stdev(): number {
    const n = this.count;
    return n < 2 ? 0 : Math.sqrt(Math.max(0, this.slots[HIST_SLOT_M2_NS2]!) / (n - 1));
  }

  /**
   * The p-th percentile (p in 0..100, e.g. 99.9), the way fio's calc_clat_percentiles finds it: the
   * value of the first bucket whose running count reaches p/100 of the samples. That bucket holds the
   * ceil(p/100 * n)-th smallest sample (the first one, for p = 0), so the result is within
   * HISTOGRAM_RELATIVE_ERROR_MAX of it. 0 when empty.
   */
  percentile(p: number): number {
    assert(p >= 0 && p <= 100, `latency histogram: percentile ${p} is not within 0..100`);
    const s = this.slots;
    // Count from the buckets, not the count slot, so that a torn read during a run still finds a bucket.
    let total = 0;
    for (let i = HIST_SLOT_BUCKETS; i < HIST_SLOTS; i++) total += s[i]!;
    if (total === 0) return 0;
    return histogramBucketValueNs(this.bucketReaching(Math.max(1, (p / 100) * total)));
  }

  /** Percentiles at each of `ps` (ascending, within 0..100) in one pass; see percentile(). */
  percentiles(ps: readonly number[]): number[] {
    for (let j = 0; j < ps.length; j++) {
      const p = ps[j]!;
      assert(p >= 0 && p <= 100, `latency histogram: percentile ${p} is not within 0..100`);
      assert(j === 0 || p >= ps[j - 1]!, 'latency histogram: percentiles must be in ascending order');
    }
    const s = this.slots;
    let total = 0;
    for (let i = HIST_SLOT_BUCKETS; i < HIST_SLOTS; i++) total += s[i]!;
    const out = new Array<number>(ps.length).fill(0);
    if (total === 0) return out;
    let j = 0;
    let running = 0;
    for (let i = 0; i < HISTOGRAM_BUCKETS && j < ps.length; i++) {
      running += s[HIST_SLOT_BUCKETS + i]!;
      while (j < ps.length && running >= Math.max(1, (ps[j]! / 100) * total)) {
        out[j++] = histogramBucketValueNs(i);
      }
    }
    return out;
  }

  /** Summary as plain data, with percentiles at `ps` (fio's default list unless given). */
  snapshot(ps: readonly number[] = FIO_DEFAULT_PERCENTILES): HistogramSnapshot {
    const count = this.count;
    if (count === 0) return { count: 0, min_ns: 0, max_ns: 0, mean_ns: 0, stdev_ns: 0, percentiles: [] };
    const values = this.percentiles(ps);
    return {
      count,
      min_ns: this.min,
      max_ns: this.max,
      mean_ns: this.mean,
      stdev_ns: this.stdev,
      percentiles: ps.map((p, j) => ({ p, value_ns: values[j]! })),
    };
  }

  /** First bucket whose running count reaches `rank` (a bucket always does when rank <= total). */
  private bucketReaching(rank: number): number {
    const s = this.slots;
    let running = 0;
    let last = 0;
    for (let i = 0; i < HISTOGRAM_BUCKETS; i++) {
      const c = s[HIST_SLOT_BUCKETS + i]!;
      if (c === 0) continue;
      running += c;
      last = i;
      if (running >= rank) return i;
    }
    return last;
  }
}
