// Experiment 1, kelley-throttle: Michael Kelley's claim for his throttling RFC (seed 000), that with
// throttling a storage load too big for the pool sees no I/O errors and the high-water mark stays near
// high_throttle, while without it the pool runs out.
import { readFileSync } from 'node:fs';
import type { RunRecord } from '../sweep/run.js';
import { overrideJob } from '../sweep/size.js';
import { runErrors } from '../vm/report.js';
import { cell, config, notOk, pct, repeated, reports, shippedJob, spreadFig } from './measure.js';
import type { Spread } from '../sweep/figures.js';
import type { Experiment } from './types.js';

/** "Near" the threshold: the largest high-water mark at most this much of the pool above high_throttle. */
export const NEAR_FRACTION = 0.1;

interface PolicyFigures {
  policy: 'static' | 'throttle';
  runs: number;
  not_ok: number;
  /** Runs (of the ok ones) with at least one map failure / I/O error. */
  runs_with_failures: number;
  runs_with_io_errors: number;
  map_failures: Spread | null;
  io_errors: Spread | null;
  hiwater: Spread | null;
  iops: Spread | null;
  nslabs: number;
  /** high_throttle in slots (the throttle policy's; the RFC's 70% of nslabs for static, for reference). */
  high_throttle: number;
}

export interface KelleyThrottleFigures {
  job: string;
  vcpus: number;
  pool: string;
  runtime: string;
  static: PolicyFigures;
  throttle: PolicyFigures;
}

function policyFigures(policy: 'static' | 'throttle', recs: RunRecord[]): PolicyFigures {
  const reps = reports(recs);
  const nslabs = reps[0]?.swiotlb.io_tlb_nslabs ?? 0;
  return {
    policy, runs: recs.length, not_ok: notOk(recs).length,
    runs_with_failures: reps.filter((r) => r.swiotlb.map_failures > 0).length,
    runs_with_io_errors: reps.filter((r) => runErrors(r).io_errors > 0).length,
    map_failures: spreadFig(recs, 'map_failures'), io_errors: spreadFig(recs, 'io_errors'), hiwater: spreadFig(recs, 'hiwater'), iops: spreadFig(recs, 'iops'),
    nslabs, high_throttle: reps.find((r) => r.throttle.enabled)?.throttle.high_throttle ?? Math.floor((nslabs * 70) / 100),
  };
}

export const kelleyThrottle: Experiment<KelleyThrottleFigures> = {
  name: 'kelley-throttle',
  number: 1,
  claim: {
    author: 'Michael Kelley',
    source: 'seed 000_6d5dc4262ceed328.txt (reply in the "[RFC 0/7] Introduce swiotlb throttling" thread, Aug 2024)',
    quote: 'Without SWIOTLB_DYNAMIC and no throttling, it\'s pretty easy to reach the limit and get I/O errors due to DMA map failure. With throttling and the same "fio" load, the usage high-water mark stays near the throttling threshold, with no I/O errors.',
  },
  setup: 'jobs/heavy.fio (random 64 KiB/256 KiB reads and writes, verified) with one clone per vCPU and iodepth 256, so each vCPU wants about 40 MiB of bounce buffers at once, on a pool that holds a fraction of it, static (mainline, no throttling) against --policy throttle (the RFC: NVMe data maps carry DMA_ATTR_MAY_BLOCK, high_throttle 70% and low_throttle 65% of nslabs), same seed, repeated. The pool is large against one request (a 256 KiB map is under 2% of it), so the slop the RFC accepts (requests admitted in parallel just under the threshold, one request at a time above it) is small against the 10% the rule allows. Why every static run runs out, whatever the host does: a vCPU submits up to iodepth requests in one pass and reaps completions only between passes (a static map never sleeps, so nothing is unmapped during a pass), so each clone\'s first pass maps 256 requests of 64 KiB or 256 KiB as the seed draws them, at least 16 MiB and 40 MiB on average, before any can complete: in the quick form one clone\'s first pass fills the 16 MiB pool by itself with its first 256 KiB request (all 256 drawn at 64 KiB is the only way not to, a chance of 2^-256), and in the full form the 8 clones\' first passes want about 320 MiB of the 64 MiB pool (one clone\'s 40 MiB fits: two overlapping do not).',
  cannot: 'The NVMe device and its driver are models (a fixed per-command latency and bandwidth, the RFC\'s dma_recommend_may_block() answered yes); a real block layer retries and requeues in ways the emulator does not, and a job stops at its first I/O error as fio\'s does without continue_on_error, so the static runs\' failure counts are small: what matters is that there are any. "Near" is not defined in the thread: the rule takes it as within 10% of the pool above high_throttle. The high-water mark is the kernel\'s lock-free total_used, which can read above what was mapped at once.',
  rule: 'Three parts: (a) without throttling the pool runs out: every static run has map failures; (b) with throttling no run has an I/O error or a map failure and none stalls; (c) the largest throttled high-water mark is at most high_throttle + 10% of nslabs. Reproduced when all three hold; refuted when (b) fails; partly otherwise.',
  forms: {
    full: '8 vCPUs, --mem 4G, a 64 MiB pool, 2 s per run, 5 repeats of each policy.',
    quick: '2 vCPUs, --mem 4G, a 16 MiB pool, 500 ms per run, 1 run of each policy.',
  },
  repeats: { full: 5, quick: 1 },
  async run(ctx) {
    const vcpus = ctx.quick ? 2 : 8;
    const pool = ctx.quick ? '16M' : '64M';
    const runtime = ctx.quick ? '500ms' : '2s';
    const job = ctx.file('heavy-deep.fio', overrideJob(readFileSync(shippedJob('heavy.fio'), 'utf8'), { iodepth: 256, numjobs: vcpus }));
    const base = config({ job, vcpus, mem: '4G', pool: { swiotlb: pool }, runtime });
    const recs = await ctx.run([...repeated(base, ctx.repeat), ...repeated({ ...base, policy: 'throttle' }, ctx.repeat)]);
    const isStatic = (r: RunRecord) => r.config.policy === 'static';
    return {
      job: 'jobs/heavy.fio, iodepth=256, numjobs=vCPUs', vcpus, pool, runtime,
      static: policyFigures('static', recs.filter(isStatic)), throttle: policyFigures('throttle', recs.filter((r) => !isStatic(r))),
    };
  },
  judge(f) {
    const s = f.static;
    const t = f.throttle;
    const okStatic = s.runs - s.not_ok;
    const a = okStatic > 0 && s.runs_with_failures === okStatic;
    const b = t.not_ok === 0 && t.runs > 0 && t.runs_with_failures === 0 && t.runs_with_io_errors === 0;
    const limit = t.high_throttle + NEAR_FRACTION * t.nslabs;
    const c = t.hiwater !== null && t.hiwater.max <= limit;
    const hw = t.hiwater === null ? 'no throttled run ended' : `the throttled high-water mark reached at most ${t.hiwater.max} of ${t.nslabs} slots (${pct(t.hiwater.max / t.nslabs)}; high_throttle ${t.high_throttle}, "near" up to ${Math.floor(limit)})`;
    const st = `${s.runs_with_failures} of ${okStatic} static runs had map failures (median ${s.map_failures?.median ?? '-'})`;
    const th = `throttled runs: ${t.runs_with_failures} with map failures, ${t.runs_with_io_errors} with I/O errors, ${t.not_ok} not ok of ${t.runs}`;
    if (a && b && c) return { verdict: 'reproduced', why: `${st}; ${th}; ${hw}.` };
    if (!b) return { verdict: 'refuted', why: `Throttling did not keep the load free of errors: ${th}; ${st}.` };
    return { verdict: 'partly', why: `${!a ? `Without throttling the pool did not always run out (${st})` : `Throttling kept the load free of errors (${th}) but ${hw}`}${!a && !c ? `, and ${hw}` : ''}.` };
  },
  table(f) {
    const row = (p: PolicyFigures) => [
      p.policy, `${f.pool} (${p.nslabs} slots), ${f.vcpus} vCPUs, ${f.runtime}`, `${p.runs - p.not_ok}/${p.runs}`, cell('count', p.map_failures), cell('count', p.io_errors), cell('slots', p.hiwater),
      p.hiwater === null ? '-' : pct(p.hiwater.max / p.nslabs), p.policy === 'throttle' ? `${p.high_throttle} (${pct(p.high_throttle / p.nslabs, 0)})` : '-', cell('iops', p.iops),
    ];
    return {
      head: ['policy', 'pool, vCPUs, runtime', '>runs ok', '>map failures', '>I/O errors', '>hiwater', '>hiwater max/nslabs', '>high_throttle', '>IOPS'],
      rows: [row(f.static), row(f.throttle)],
    };
  },
  chart(f) {
    const frac = (p: PolicyFigures, v: number | undefined) => (v === undefined || p.nslabs === 0 ? null : (v / p.nslabs) * 100);
    return {
      title: 'High-water mark and failures, static against throttle',
      kind: 'bars', xLabel: 'policy', yLabel: '% of nslabs / runs',
      x: ['static', 'throttle'],
      series: [
        { label: 'hiwater max (% of nslabs)', values: [frac(f.static, f.static.hiwater?.max), frac(f.throttle, f.throttle.hiwater?.max)] },
        { label: 'high_throttle (% of nslabs)', values: [null, frac(f.throttle, f.throttle.high_throttle)] },
        { label: 'runs with map failures', values: [f.static.runs_with_failures, f.throttle.runs_with_failures] },
      ],
    };
  },
};
