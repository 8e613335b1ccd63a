// Experiment 9: the verdict rule on figures made up to sit on each side of each part (the margins
// worked out by hand), then the quick form once the hybrid policy is in the build.
import { describe, expect, it } from 'vitest';
import {
  HYBRID_POLICIES, type HybridPolicy, LOADS, type Load, type MurphyHybridFigures, type PolicyFigures, judgeLoad, mixedJob, murphyHybrid, storageJob,
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
 * with a 40 ms p99, hybrid uses 8 MiB (60% less than dynamic) with no failure and a 30 ms p99.
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
  };
}

function figures(over: Partial<Record<`${Load} ${HybridPolicy}`, Partial<PolicyFigures>>> = {}): MurphyHybridFigures {
  return {
    vcpus: 4, pool: '4M', runtime: '2s', jobs: { storage: '', mixed: '' },
    rows: LOADS.flatMap((load) => HYBRID_POLICIES.map((p) => ({ ...base(p, load), ...over[`${load} ${p}`] }))),
  };
}

describe('murphy-hybrid: the rule', () => {
  it('reproduced: on both loads no more failures than throttle and dynamic, 10% less memory than dynamic, p99 within 10% of throttle', () => {
    expect(murphyHybrid.judge(figures()).verdict).toBe('reproduced');
    // On the margins: 18 MiB is exactly 10% below 20 MiB; 44 ms is exactly 10% above 40 ms.
    const edge = figures({ 'storage hybrid': { peak_bytes: s(18 * MiB), clat_p99: s(44_000) } });
    expect(judgeLoad(edge, 'storage')).toMatchObject({ a: true, b: true, c: true });
    expect(murphyHybrid.judge(edge).verdict).toBe('reproduced');
  });
  it('partly: memory only 9.9% below dynamic, or p99 just above throttle + 10%, on one load', () => {
    const mem = figures({ 'mixed hybrid': { peak_bytes: s(18.02 * MiB) } });
    expect(judgeLoad(mem, 'mixed')).toMatchObject({ a: true, b: false, c: true, verdict: 'partly' });
    expect(murphyHybrid.judge(mem).verdict).toBe('partly');
    const p99 = figures({ 'storage hybrid': { clat_p99: s(44_001) } });
    expect(judgeLoad(p99, 'storage')).toMatchObject({ a: true, b: true, c: false });
    expect(murphyHybrid.judge(p99).verdict).toBe('partly');
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
    // Without growth the pool is its boot size: static and throttle peak at the 2 MiB pool.
    for (const p of f.rows.filter((x) => x.policy === 'static' || x.policy === 'throttle')) expect(p.peak_bytes?.max ?? 2 * MiB).toBe(2 * MiB);
  }, 300_000);
});
