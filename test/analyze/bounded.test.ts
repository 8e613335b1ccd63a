// The analyzer's constant-memory parts: the percentile histogram and the chart's time series.
import { describe, expect, it } from 'vitest';
import { LogHistogram } from '../../src/analyze/histogram.js';
import { TimeSeries } from '../../src/analyze/series.js';

describe('LogHistogram', () => {
  it('has exact count, sum, min and max, and percentiles within the bucket error', () => {
    const h = new LogHistogram();
    // 1..100000 in a scrambled order: p50 50000, p90 90000, p99 99000, p99.9 99900.
    for (let i = 0; i < 100_000; i++) h.add(((i * 7919) % 100_000) + 1);
    const s = h.summary();
    expect(s).toMatchObject({ count: 100_000, sum: 5_000_050_000, min: 1, max: 100_000, mean: 50_000.5 });
    for (const [got, want] of [[s.p50, 50_000], [s.p90, 90_000], [s.p99, 99_000], [s.p999, 99_900]] as const) {
      expect(Math.abs(got - want) / want).toBeLessThan(0.012);
    }
  });

  it('handles zero, sub-microsecond and empty inputs', () => {
    expect(new LogHistogram().summary()).toMatchObject({ count: 0, min: 0, max: 0, p50: 0 });
    const h = new LogHistogram();
    h.add(0);
    h.add(0.4);
    h.add(-3);
    expect(h.summary()).toMatchObject({ count: 3, min: 0, max: 0.4, p50: 0 });
  });
});

describe('TimeSeries', () => {
  it('keeps at most maxPoints buckets, and every spike, over any length', () => {
    const s = new TimeSeries(100, 10);
    // One hour of samples every 10 ms with a one-sample spike to 999 at t = 1234.56 s.
    for (let t = 10; t <= 3_600_000; t += 10) s.addSample(t, t === 1_234_560 ? 999 : 100 + (t % 7), 0, 1000, null, 700, 650, 0);
    // Counter rises of 5 and 7 at the spike's two samples, each over its 10 ms; and elsewhere none.
    s.addCounts(1_234_560, 10, { map_failures: 5 });
    s.addCounts(1_234_570, 10, { map_failures: 7 });
    const d = s.data({ map_failures: true, io_errors: true, packets_dropped: true });
    expect(d.x_s.length).toBeLessThanOrEqual(100);
    expect(d.bucket_ms).toBeGreaterThanOrEqual(36_000);
    expect(Math.max(...d.used_max.map((v) => v ?? 0))).toBe(999);
    expect(Math.min(...d.used_min.map((v) => v ?? Infinity))).toBe(100);
    // Merged buckets keep a rate: 12 failures over the 20 ms of sampled time that carried counts.
    const spike = d.used_max.indexOf(999);
    expect(d.map_failures_per_s[spike]).toBe(600);
    expect(d.map_failures_per_s.filter((v) => v !== null)).toHaveLength(1);
    for (let i = 1; i < d.x_s.length; i++) expect(d.x_s[i]!).toBeGreaterThan(d.x_s[i - 1]!);
  });

  it('leaves gaps (null) where there were no samples', () => {
    const s = new TimeSeries(10, 100);
    s.addSample(50, 1, 1, 10, null, 7, 6, 0);
    s.mark(550, 'throttleWaits', 1200);
    const d = s.data();
    expect(d.used_max).toEqual([1, null, null, null, null, null]);
    expect(d.throttle_waits[5]).toBe(1);
    expect(d.throttle_wait_us_max[5]).toBe(1200);
  });
});
