import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { InvariantError } from '../../src/errors.js';
import {
  CACHE_LINE_BYTES,
  FIO_DEFAULT_PERCENTILES,
  HIST_SLOT_BUCKETS,
  HIST_SLOT_COUNT,
  HIST_SLOT_MAX_NS,
  HIST_SLOT_MIN_NS,
  HIST_SLOT_SUM_NS,
  HIST_SLOTS,
  HISTOGRAM_BUCKETS,
  LatencyHistogram,
  histogramBucketIndex,
  histogramBucketLowNs,
  histogramBucketValueNs,
} from '../../src/report/histogram.js';
import { Rng } from '../../src/util/rng.js';

// The accuracy the scheme promises (fio's 1/2^(PLAT_BITS+1) with 6 bits), written here rather than
// read from the module, and the brief's ceiling for it.
const BOUND = 1 / 128;

/** The project's seeded generator (src/util/rng.ts), as a () => [0, 1) source. */
function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.float();
}

function randInt(r: () => number, lo: number, hi: number): number {
  return lo + Math.floor(r() * (hi - lo + 1));
}

/** The sample a percentile stands for: the ceil(p/100 * n)-th smallest (the smallest for p = 0). */
function exactPercentile(sorted: readonly number[], p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

function sampleStdev(xs: readonly number[]): number {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1));
}

function expectWithinBound(got: number, want: number, what: string): void {
  const err = Math.abs(got - want);
  expect(err, `${what}: got ${got}, want ${want}`).toBeLessThanOrEqual(want * BOUND + 1e-9);
}

describe('bucket scheme (fio stat.h, 64 buckets per power of two)', () => {
  it('keeps 0..127 ns exact, then splits each power of two into 64 buckets', () => {
    // Worked by hand from fio's rule: msb <= 6 is its own bucket; else error_bits = msb - 6,
    // index = (error_bits + 1) * 64 + ((v >> error_bits) & 63), value = low + 2^(error_bits - 1).
    const cases: [ns: number, index: number, value: number][] = [
      [0, 0, 0],
      [1, 1, 1],
      [127, 127, 127],
      [128, 128, 129], // msb 7, 1 error bit: [128, 130)
      [129, 128, 129],
      [255, 191, 255], // [254, 256)
      [256, 192, 258], // msb 8, 2 error bits: [256, 260)
      [1000, 317, 1004], // msb 9, 3 error bits: 4 * 64 + (125 & 63 = 61); [1000, 1008)
      [2 ** 31 - 1, 1663, 2 ** 31 - 2 ** 23], // msb 30, 24 error bits: 25 * 64 + 63
      [2 ** 31, 1664, 2 ** 31 + 2 ** 24], // msb 31, 25 error bits: 26 * 64 + 0
      [2 ** 32 - 1, 1727, 2 ** 32 - 2 ** 24], // msb 31, 25 error bits: last bucket of its group
      [2 ** 32, 1728, 2 ** 32 + 2 ** 25], // msb 32, 26 error bits
      [5e9, 1738, 4_999_610_368], // 5e9 / 2^26 = 74.5 -> 74 & 63 = 10; 74 * 2^26 + 2^25
      [2 ** 40 - 1, 2239, 1_095_216_660_480], // the last bucket: [2^40 - 2^33, 2^40)
    ];
    for (const [ns, index, value] of cases) {
      expect(histogramBucketIndex(ns), `index of ${ns}`).toBe(index);
      expect(histogramBucketValueNs(index), `value of bucket ${index}`).toBe(value);
    }
    expect(HISTOGRAM_BUCKETS).toBe(2240);
  });

  it('counts samples beyond 2^40 - 1 ns (1099 s) in the last bucket', () => {
    expect(histogramBucketIndex(2 ** 40)).toBe(HISTOGRAM_BUCKETS - 1);
    expect(histogramBucketIndex(3600e9)).toBe(HISTOGRAM_BUCKETS - 1);
    expect(histogramBucketIndex(Number.MAX_SAFE_INTEGER)).toBe(HISTOGRAM_BUCKETS - 1);
  });

  it('maps every value into a bucket that contains it, in order, with its value within 1/128', () => {
    // Collect mismatches and assert once: an expect() per value makes this test slow.
    const bad: string[] = [];
    const check = (ns: number): void => {
      const i = histogramBucketIndex(ns);
      const v = histogramBucketValueNs(i);
      if (histogramBucketLowNs(i) > ns) bad.push(`${ns}: bucket ${i} starts above it`);
      if (i + 1 < HISTOGRAM_BUCKETS && histogramBucketLowNs(i + 1) <= ns) bad.push(`${ns}: bucket ${i + 1} starts at or below it`);
      if (ns === 0 ? v !== 0 : Math.abs(v - ns) / ns > BOUND) bad.push(`${ns}: value ${v} is off by more than 1/128`);
    };
    let prev = -1;
    for (let ns = 0; ns < 1 << 20; ns++) {
      check(ns);
      const i = histogramBucketIndex(ns);
      if (i !== prev && i !== prev + 1) bad.push(`${ns}: bucket ${i} after ${prev}`);
      prev = i;
    }
    const r = rng(1);
    for (let k = 0; k < 200_000; k++) check(Math.floor(2 ** (r() * 40)));
    for (let bit = 20; bit < 40; bit++) {
      check(2 ** bit - 1);
      check(2 ** bit);
      check(2 ** bit + 1);
    }
    expect(bad.slice(0, 10)).toEqual([]);
  });
});

describe('LatencyHistogram', () => {
  it('sizes itself in whole cache lines', () => {
    expect(LatencyHistogram.bytesNeeded() % CACHE_LINE_BYTES).toBe(0);
    expect(LatencyHistogram.bytesNeeded()).toBe(HIST_SLOTS * 8);
  });

  it('keeps exact count, min, max, mean and sample stdev', () => {
    const h = LatencyHistogram.create();
    const xs = [400, 100, 1000, 300, 200];
    for (const x of xs) h.record(x);
    expect(h.count).toBe(5);
    expect(h.min).toBe(100);
    expect(h.max).toBe(1000);
    expect(h.mean).toBe(400);
    // Deviations -300, -200, -100, 0, 600: squares sum to 500000, / (5 - 1) = 125000.
    expect(h.stdev).toBeCloseTo(Math.sqrt(125_000), 9);
    expect(h.stdev).toBeCloseTo(sampleStdev(xs), 9);
  });

  it('is empty when zero-filled, and after reset()', () => {
    const h = LatencyHistogram.create();
    expect(h.snapshot()).toEqual({ count: 0, min_ns: 0, max_ns: 0, mean_ns: 0, stdev_ns: 0, percentiles: [] });
    expect(h.percentile(50)).toBe(0);
    h.record(5);
    h.record(7);
    h.reset();
    expect(h.snapshot()).toEqual({ count: 0, min_ns: 0, max_ns: 0, mean_ns: 0, stdev_ns: 0, percentiles: [] });
    h.record(9);
    expect([h.count, h.min, h.max, h.mean, h.stdev]).toEqual([1, 9, 9, 9, 0]);
  });

  it('rounds to whole nanoseconds and rejects negative and NaN latencies', () => {
    const h = LatencyHistogram.create();
    h.record(1199.9999999999998); // 0.0012 ms * 1e6, as a performance.now() difference comes out
    expect(h.min).toBe(1200);
    expect(() => h.record(-1)).toThrow(InvariantError);
    expect(() => h.record(Number.NaN)).toThrow(InvariantError);
    expect(h.count).toBe(1);
  });

  it('keeps the stdev accurate when the mean is large against the spread', () => {
    const h = LatencyHistogram.create();
    const xs: number[] = [];
    for (let i = 0; i < 100_000; i++) xs.push(1e12 + (i % 2 === 0 ? -1000 : 1000));
    for (const x of xs) h.record(x);
    expect(h.stdev).toBeCloseTo(sampleStdev(xs), 3);
  });

  it('finds percentiles of uniform samples within 1/128 of the exact ones', () => {
    const r = rng(42);
    const xs: number[] = [];
    for (let i = 0; i < 100_000; i++) xs.push(randInt(r, 1, 1_000_000));
    const h = LatencyHistogram.create();
    for (const x of xs) h.record(x);
    const sorted = [...xs].sort((a, b) => a - b);
    for (const p of [0, 0.1, ...FIO_DEFAULT_PERCENTILES, 99.999, 100]) {
      expectWithinBound(h.percentile(p), exactPercentile(sorted, p), `p${p}`);
    }
  });

  it('finds percentiles of skewed samples (long tail up to 30 s) within 1/128', () => {
    const r = rng(7);
    const xs: number[] = [];
    for (let i = 0; i < 200_000; i++) {
      const u = r();
      if (u < 0.9) xs.push(randInt(r, 1500, 3000)); // bounce and copy
      else if (u < 0.99) xs.push(randInt(r, 50_000, 500_000)); // waited for slots
      else if (u < 0.999) xs.push(randInt(r, 5_000_000, 50_000_000)); // throttled
      else xs.push(randInt(r, 1e9, 30e9)); // stuck behind a full pool
    }
    const h = LatencyHistogram.create();
    for (const x of xs) h.record(x);
    const sorted = [...xs].sort((a, b) => a - b);
    const snap = h.snapshot();
    expect(snap.percentiles.map((e) => e.p)).toEqual(FIO_DEFAULT_PERCENTILES);
    for (const { p, value_ns } of snap.percentiles) {
      expectWithinBound(value_ns, exactPercentile(sorted, p), `p${p}`);
    }
    expect(snap.count).toBe(xs.length);
    expect(snap.min_ns).toBe(sorted[0]);
    expect(snap.max_ns).toBe(sorted.at(-1));
    expect(snap.mean_ns).toBeCloseTo(xs.reduce((a, b) => a + b, 0) / xs.length, 6);
    expect(snap.stdev_ns / sampleStdev(xs)).toBeCloseTo(1, 9);
    expect(JSON.parse(JSON.stringify(snap))).toEqual(snap);
  });

  it('gives small values exactly and reports a value past the range as the last bucket', () => {
    const h = LatencyHistogram.create();
    for (const x of [3, 3, 3, 50, 90]) h.record(x);
    expect(h.percentiles([20, 60, 61, 80, 100])).toEqual([3, 3, 50, 50, 90]);
    h.record(2000e9);
    expect(h.max).toBe(2000e9);
    expect(h.percentile(100)).toBe(1_095_216_660_480);
  });

  it('merges to the same result as recording everything into one', () => {
    const r = rng(3);
    const a = LatencyHistogram.create();
    const b = LatencyHistogram.create();
    const all = LatencyHistogram.create();
    for (let i = 0; i < 50_000; i++) {
      const x = randInt(r, 100, 200_000);
      const y = randInt(r, 5_000, 90_000_000);
      a.record(x);
      b.record(y);
      all.record(x);
      all.record(y);
    }
    LatencyHistogram.merge(a, b);
    const ps: number[] = [];
    for (let p = 0; p <= 100; p += 0.25) ps.push(p);
    expect(a.percentiles(ps)).toEqual(all.percentiles(ps));
    expect([a.count, a.min, a.max, a.mean]).toEqual([all.count, all.min, all.max, all.mean]);
    expect(a.stdev / all.stdev).toBeCloseTo(1, 9);
    // b is unchanged
    expect(b.count).toBe(50_000);
  });

  it('merges into and from an empty histogram', () => {
    const a = LatencyHistogram.create();
    const b = LatencyHistogram.create();
    for (const x of [10, 20, 30]) b.record(x);
    const before = b.snapshot();
    LatencyHistogram.merge(b, a);
    expect(b.snapshot()).toEqual(before);
    expect([before.count, before.min_ns, before.max_ns, before.mean_ns]).toEqual([3, 10, 30, 20]);
    expect(before.stdev_ns).toBeCloseTo(10, 12);
    LatencyHistogram.merge(a, b);
    expect(a.snapshot()).toEqual(before);
  });

  it('lets histograms share one SharedArrayBuffer at different offsets without interfering', () => {
    const size = LatencyHistogram.bytesNeeded();
    const sab = new SharedArrayBuffer(3 * size);
    const h0 = new LatencyHistogram(sab, 0);
    const h1 = new LatencyHistogram(sab, size);
    const h2 = new LatencyHistogram(sab, 2 * size);
    for (let i = 0; i < 1000; i++) h1.record(2 ** 40 + i); // the last bucket, next to h2's header
    h0.record(0); // the first bucket, next to nothing
    h2.record(77);
    expect([h0.count, h0.min, h0.max]).toEqual([1, 0, 0]);
    expect([h1.count, h1.min, h1.max]).toEqual([1000, 2 ** 40, 2 ** 40 + 999]);
    expect([h2.count, h2.min, h2.max]).toEqual([1, 77, 77]);
    expect(h2.percentile(100)).toBe(77);
    expect(h0.percentile(100)).toBe(0);
  });

  it('rebuilds a view of the same histogram from the SharedArrayBuffer', () => {
    const sab = new SharedArrayBuffer(2 * LatencyHistogram.bytesNeeded());
    const offset = LatencyHistogram.bytesNeeded();
    const writer = new LatencyHistogram(sab, offset);
    for (const x of [1000, 2000, 3000, 4000]) writer.record(x);
    const reader = new LatencyHistogram(sab, offset);
    expect(reader.snapshot()).toEqual(writer.snapshot());
    writer.record(5000);
    expect(reader.count).toBe(5);
    expect(new LatencyHistogram(sab, 0).count).toBe(0);
  });

  it('checks the offset and the buffer size', () => {
    const sab = new SharedArrayBuffer(LatencyHistogram.bytesNeeded() + 8);
    expect(() => new LatencyHistogram(sab, 4)).toThrow(InvariantError);
    expect(() => new LatencyHistogram(sab, 16)).toThrow(InvariantError);
    expect(() => new LatencyHistogram(sab, -8)).toThrow(InvariantError);
    expect(() => new LatencyHistogram(sab, 8)).not.toThrow();
    expect(() => LatencyHistogram.create().percentile(101)).toThrow(InvariantError);
    expect(() => LatencyHistogram.create().percentiles([50, 10])).toThrow(InvariantError);
  });
});

describe('LatencyHistogram across threads', () => {
  // The worker is plain JavaScript (it cannot import TypeScript): it uses only the slot numbers the
  // module exports and bucket indices computed here, as a vCPU thread's compiled code would.
  const workerCode = `
    const { workerData, parentPort } = require('node:worker_threads');
    const { sab, byteOffset, slots, nslots, samples, indices, readBucket } = workerData;
    const s = new Float64Array(sab, byteOffset, nslots);
    for (let i = 0; i < samples.length; i++) {
      const v = samples[i];
      s[slots.buckets + indices[i]]++;
      if (s[slots.count] === 0 || v < s[slots.min]) s[slots.min] = v;
      if (s[slots.count] === 0 || v > s[slots.max]) s[slots.max] = v;
      s[slots.sum] += v;
      s[slots.count]++;
    }
    parentPort.postMessage({
      count: s[slots.count], min: s[slots.min], max: s[slots.max], sum: s[slots.sum],
      bucket: s[slots.buckets + readBucket],
    });
  `;
  const slots = {
    count: HIST_SLOT_COUNT,
    min: HIST_SLOT_MIN_NS,
    max: HIST_SLOT_MAX_NS,
    sum: HIST_SLOT_SUM_NS,
    buckets: HIST_SLOT_BUCKETS,
  };

  function runWorker(data: Record<string, unknown>): Promise<Record<string, number>> {
    return new Promise((resolve, reject) => {
      const w = new Worker(workerCode, { eval: true, workerData: data });
      let result: Record<string, number> | undefined;
      w.on('message', (m: Record<string, number>) => (result = m));
      w.on('error', reject);
      // 'exit' orders the worker's writes before our reads.
      w.on('exit', (code) => (code === 0 && result ? resolve(result) : reject(new Error(`worker exited ${code}`))));
    });
  }

  it('sees in the main thread what a worker wrote, and the worker sees what the main thread wrote', async () => {
    const size = LatencyHistogram.bytesNeeded();
    const sab = new SharedArrayBuffer(2 * size);
    const mine = new LatencyHistogram(sab, 0);
    for (const x of [250, 250, 9000]) mine.record(x);

    const samples = [1500, 2500, 2500, 80_000, 3_000_000];
    const got = await runWorker({
      sab,
      byteOffset: size,
      slots,
      nslots: HIST_SLOTS,
      samples,
      indices: samples.map(histogramBucketIndex),
      readBucket: histogramBucketIndex(2500),
    });
    expect(got).toEqual({ count: 5, min: 1500, max: 3_000_000, sum: 3_086_500, bucket: 2 });

    const theirs = new LatencyHistogram(sab, size);
    expect([theirs.count, theirs.min, theirs.max, theirs.mean]).toEqual([5, 1500, 3_000_000, 617_300]);
    const sorted = [...samples].sort((a, b) => a - b);
    for (const p of FIO_DEFAULT_PERCENTILES) expectWithinBound(theirs.percentile(p), exactPercentile(sorted, p), `p${p}`);
    // The neighbour the main thread wrote is untouched.
    expect([mine.count, mine.min, mine.max]).toEqual([3, 250, 9000]);

    const back = await runWorker({
      sab,
      byteOffset: 0,
      slots,
      nslots: HIST_SLOTS,
      samples: [],
      indices: [],
      readBucket: histogramBucketIndex(250),
    });
    expect(back).toEqual({ count: 3, min: 250, max: 9000, sum: 9500, bucket: 2 });
  });
});
