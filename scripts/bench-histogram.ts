// Cost of LatencyHistogram.record() in a loop, in ns per call. Timings live here, not in tests.
// Run: npx tsc -p tsconfig.json && node dist/scripts/bench-histogram.js
import { LatencyHistogram } from '../src/report/histogram.js';

const SAMPLES = 1 << 20;
const ROUNDS = 20;

/** Latencies shaped like a swiotlb run: mostly a few us, a tail of waits up to seconds. */
function makeSamples(): Float64Array {
  const xs = new Float64Array(SAMPLES);
  let seed = 12345;
  const next = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 4294967296;
  };
  for (let i = 0; i < SAMPLES; i++) {
    const u = next();
    const base = u < 0.9 ? 1500 : u < 0.99 ? 50_000 : u < 0.999 ? 5_000_000 : 1_000_000_000;
    xs[i] = Math.floor(base * (1 + 9 * next()));
  }
  return xs;
}

function nsPerOp(label: string, xs: Float64Array, body: (xs: Float64Array) => number): number {
  body(xs); // warm up: let the JIT optimise before timing
  body(xs);
  const t0 = process.hrtime.bigint();
  let sink = 0;
  for (let r = 0; r < ROUNDS; r++) sink += body(xs);
  const ns = Number(process.hrtime.bigint() - t0) / (ROUNDS * SAMPLES);
  console.log(`${label.padEnd(44)} ${ns.toFixed(2)} ns/op${sink === -1 ? ' ' : ''}`);
  return ns;
}

const xs = makeSamples();
const h = LatencyHistogram.create();
const sab = new SharedArrayBuffer(64 * LatencyHistogram.bytesNeeded());
const many = Array.from({ length: 64 }, (_, i) => new LatencyHistogram(sab, i * LatencyHistogram.bytesNeeded()));

const loop = nsPerOp('loop only (read sample, sum)', xs, (a) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]!;
  return s;
});
const one = nsPerOp('record(), one histogram', xs, (a) => {
  for (let i = 0; i < a.length; i++) h.record(a[i]!);
  return h.count;
});
const spread = nsPerOp('record(), 64 histograms in one SAB, round robin', xs, (a) => {
  for (let i = 0; i < a.length; i++) many[i & 63]!.record(a[i]!);
  return many[0]!.count;
});
console.log(`record() net of the loop: ${(one - loop).toFixed(2)} ns (one), ${(spread - loop).toFixed(2)} ns (64)`);

const t0 = process.hrtime.bigint();
const snap = h.snapshot();
console.log(`snapshot() of ${snap.count} samples: ${(Number(process.hrtime.bigint() - t0) / 1000).toFixed(1)} us`);
