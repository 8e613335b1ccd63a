// Experiment 9: the verdict rule on figures made up to sit on each side of each part (the margins
// worked out by hand), then the quick form once the hybrid policy is in the build.
import { describe, expect, it } from 'vitest';
import {
  HYBRID_POLICIES, type HybridPolicy, LOADS, type Load, type MurphyHybridFigures, type PolicyFigures, judgeLoad, mixedJob, murphyHybrid, ranAsThrottle, storageJob,
} from '../../src/experiment/murphy-hybrid.js';
import { parseFioJobFile } from '../../src/workload/fio.js';
import type { Spread } from '../../src/sweep/figures.js';
import { POLICIES } from '../../src/vm/policy.js';
import { EXPERIMENTS } from '../../src/experiment/registry.js';
import { quickForm } from '../helpers/experiment.js';

const s = (median: number): Spread => ({ n: 3, median, min: median, max: median, spread: 0 });
const MiB = 2 ** 20;

/**
 * A load where the claim holds: dynamic grows to 20 MiB with no failure, throttle stays in its 4 MiB
 * with a 40 ms p99, hybrid uses 8 MiB (60% less than dynamic) with no failure and a 30 ms p99, and
 * ran as the throttle (no timeout, no dynamic or transient pool).
 */
function base(policy: HybridPolicy, load: Load): PolicyFigures {
  const v: Record<HybridPolicy, { mem: number; fail: number; p99: number }> = {
    static: { mem: 4 * MiB, fail: 500, p99: 2000 }, throttle: { mem: 4 * MiB, fail: 0, p99: 40_000 },
    dynamic: { mem: 20 * MiB, fail: 0, p99: 3000 }, hybrid: { mem: 8 * MiB, fail: 0, p99: 30_000 },
  };
  const x = v[policy];
  return {
    policy, load, runs: 3, not_ok: 0, peak_bytes: s(x.mem), map_failures: s(x.fail), io_errors: s(x.fail), packets_dropped: s(0),
    clat_p99: s(x.p99), wait_p99: policy === 'throttle' || policy === 'hybrid' ? s(x.p99 / 2) : null, iops: s(1000),
    timeouts: policy === 'hybrid' ? s(0) : null, sync_grows: policy === 'hybrid' ? s(0) : null,
    dynamic_pools: policy === 'dynamic' ? s(8) : policy === 'hybrid' ? s(0) : null, transient_pools: policy === 'dynamic' ? s(3) : policy === 'hybrid' ? s(0) : null,
  };
}

function figures(over: Partial<Record<`${Load} ${HybridPolicy}`, Partial<PolicyFigures>>> = {}): MurphyHybridFigures {
  return {
    vcpus: 4, pool: '4M', runtime: '2s', time_scale: 32, jobs: { storage: '', mixed: '' },
    rows: LOADS.flatMap((load) => HYBRID_POLICIES.map((p) => ({ ...base(p, load), ...over[`${load} ${p}`] }))),
  };
}

describe('murphy-hybrid: the rule', () => {
  it('reproduced: on both loads no more failures than throttle and dynamic, 10% less memory than dynamic, and the hybrid ran as the throttle', () => {
    expect(murphyHybrid.judge(figures()).verdict).toBe('reproduced');
    // On the margin: 18 MiB is exactly 10% below 20 MiB.
    const edge = figures({ 'storage hybrid': { peak_bytes: s(18 * MiB) } });
    expect(judgeLoad(edge, 'storage')).toMatchObject({ a: true, b: true, c: true });
    expect(murphyHybrid.judge(edge).verdict).toBe('reproduced');
  });
  it('the p99 does not decide: ten times the throttle\'s, the hybrid that ran as the throttle still reproduces; below it, one that grew does not', () => {
    expect(judgeLoad(figures({ 'storage hybrid': { clat_p99: s(400_000) } }), 'storage')).toMatchObject({ c: true, verdict: 'reproduced' });
    const grew = figures({ 'mixed hybrid': { clat_p99: s(1000), dynamic_pools: s(1) } });
    expect(judgeLoad(grew, 'mixed')).toMatchObject({ a: true, b: true, c: null, verdict: 'partly' });
    expect(murphyHybrid.judge(grew).verdict).toBe('partly');
  });
  it('a timeout, a dynamic or a transient pool in any hybrid run (the max, not the median) leaves latency undecided: partly', () => {
    for (const over of [{ timeouts: { ...s(0), max: 1 } }, { dynamic_pools: { ...s(0), max: 1 } }, { transient_pools: s(2) }, { timeouts: null }]) {
      expect(judgeLoad(figures({ 'storage hybrid': over }), 'storage')).toMatchObject({ c: null, verdict: 'partly' });
    }
    expect(ranAsThrottle(base('hybrid', 'storage'))).toBe(true);
  });
  it('partly: memory only 9.9% below dynamic on one load', () => {
    const mem = figures({ 'mixed hybrid': { peak_bytes: s(18.02 * MiB) } });
    expect(judgeLoad(mem, 'mixed')).toMatchObject({ a: true, b: false, c: true, verdict: 'partly' });
    expect(murphyHybrid.judge(mem).verdict).toBe('partly');
  });
  it('a load refutes when hybrid fails more than throttle or dynamic, or a hybrid run stalls; both loads refuting is refuted', () => {
    expect(judgeLoad(figures({ 'storage hybrid': { map_failures: s(1) } }), 'storage').verdict).toBe('refuted');
    expect(judgeLoad(figures({ 'mixed hybrid': { not_ok: 1 } }), 'mixed').verdict).toBe('refuted');
    expect(murphyHybrid.judge(figures({ 'storage hybrid': { map_failures: s(1) } })).verdict).toBe('partly');
    expect(murphyHybrid.judge(figures({ 'storage hybrid': { map_failures: s(1) }, 'mixed hybrid': { not_ok: 1 } })).verdict).toBe('refuted');
  });
  it('a throttle or dynamic run that stalls counts as worse: hybrid with failures still has no more than a policy that did not finish', () => {
    const f = figures({ 'mixed throttle': { not_ok: 3, map_failures: null, clat_p99: null }, 'mixed hybrid': { map_failures: s(5) }, 'mixed dynamic': { map_failures: s(5) } });
    expect(judgeLoad(f, 'mixed')).toMatchObject({ a: true, c: true });
    expect(judgeLoad(figures({ 'mixed hybrid': { not_ok: 1 } }), 'mixed').c).toBe(null);
  });
  it('generates the loads as job files the parser takes: the storage job, and the mixed one with a NIC job', () => {
    const st = parseFioJobFile(storageJob(4, 64), 'storage').jobs;
    expect(st.map((j) => [j.engine, j.numjobs, j.iodepth])).toEqual([['storage', 4, 64]]);
    const mx = parseFioJobFile(mixedJob(2, 32), 'mixed').jobs;
    expect(mx.map((j) => [j.engine, j.numjobs])).toEqual([['storage', 2], ['net', 2]]);
  });
});

describe('murphy-hybrid: the quick form', () => {
  it('is listed exactly when the build has the hybrid policy', () => {
    expect(EXPERIMENTS.some((e) => e.name === 'murphy-hybrid')).toBe(POLICIES.hybrid.unavailable === undefined);
  });
  it.skipIf(POLICIES.hybrid.unavailable !== undefined)('runs the four policies on both loads and reaches the recorded verdict', async () => {
    const r = await quickForm(murphyHybrid);
    const f = r.figures as MurphyHybridFigures;
    expect(f.rows).toHaveLength(8);
    for (const p of f.rows) expect(p.runs).toBe(murphyHybrid.repeats.quick);
    expect(f.time_scale).toBe(16);
    // The deciding counts are the policies': only the hybrid has timeouts, only dynamic swiotlb pools.
    for (const p of f.rows) expect(p.timeouts === null).toBe(p.policy !== 'hybrid');
    for (const p of f.rows) expect(p.dynamic_pools === null).toBe(p.policy === 'static' || p.policy === 'throttle');
    // Without growth the pool is its boot size: static and throttle peak at the 2 MiB pool.
    for (const p of f.rows.filter((x) => x.policy === 'static' || x.policy === 'throttle')) expect(p.peak_bytes?.max ?? 2 * MiB).toBe(2 * MiB);
  }, 300_000);
});
