// A fixed-size log-scale histogram for percentiles over a stream of any length in constant memory.
// Buckets are 2^(1/32) wide (a relative error of at most 1.1% around a bucket's middle); count, sum,
// min and max are exact. 1,400 buckets cover 1 to 2^43 (about 100 days in microseconds).

const PER_OCTAVE = 32;
const BUCKETS = 1 + 43 * PER_OCTAVE + 1;

export interface Percentiles {
  count: number;
  sum: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

export class LogHistogram {
  private readonly counts = new Float64Array(BUCKETS);
  count = 0;
  sum = 0;
  min = Infinity;
  max = -Infinity;

  /** Record one value (negative values count as 0). */
  add(value: number): void {
    const v = value > 0 ? value : 0;
    this.count++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
    this.counts[LogHistogram.index(v)]!++;
  }

  private static index(v: number): number {
    if (v < 1) return 0;
    return Math.min(BUCKETS - 1, 1 + Math.floor(Math.log2(v) * PER_OCTAVE));
  }

  /** The middle of bucket i (geometric), which is what a percentile in it reports. */
  private static value(i: number): number {
    if (i === 0) return 0;
    return 2 ** ((i - 1 + 0.5) / PER_OCTAVE);
  }

  /** The q-quantile (0 < q <= 1): the value at rank ceil(q * count), within the bucket error. */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) {
        // Exact at the ends: the smallest and largest values are known.
        return Math.min(this.max, Math.max(this.min, LogHistogram.value(i)));
      }
    }
    return this.max;
  }

  summary(): Percentiles {
    const empty = this.count === 0;
    return {
      count: this.count,
      sum: this.sum,
      min: empty ? 0 : this.min,
      mean: empty ? 0 : this.sum / this.count,
      p50: this.quantile(0.5),
      p90: this.quantile(0.9),
      p99: this.quantile(0.99),
      p999: this.quantile(0.999),
      max: empty ? 0 : this.max,
    };
  }
}
