// Experiment 8: the rule on made-up work ratios (25% is the edge of "a bit"; the measured slowdowns do
// not decide), the counted work of a pair (exact: the same on any host), then the quick form.
import { describe, expect, it } from 'vitest';
import { dynamicPoolsPair, staticPair, staticRate } from '../../src/bench/dynamic-bench.js';
import { type DynamicCostFigures, pairWork, tesarikDynamicCost } from '../../src/experiment/tesarik-dynamic-cost.js';
import { spreadOf } from '../../src/sweep/figures.js';
import { quickForm } from '../helpers/experiment.js';

function figures(w0: number, wMost: number, measured = 1): DynamicCostFigures {
  const row = (pools: number | null, ratio: number) => ({ pools, locks: 2, lookups: 1, work_ratio: ratio, pairs_per_s: null, slowdown: pools === null ? null : spreadOf([measured]) });
  return { rounds: 3, window_s: 0.1, vm: [], core: [row(null, 1), row(0, w0), row(256, wMost)] };
}

describe('tesarik-dynamic-cost: the rule', () => {
  it('reproduced when both the empty and the most-pools work are at most 25% above static', () => {
    expect(tesarikDynamicCost.judge(figures(1, 1.25)).verdict).toBe('reproduced');
  });
  it('partly when only the empty build is within 25%', () => {
    expect(tesarikDynamicCost.judge(figures(1, 1.26)).verdict).toBe('partly');
  });
  it('refuted when even the empty dynamic build does more than 25% more work', () => {
    expect(tesarikDynamicCost.judge(figures(1.3, 1.3)).verdict).toBe('refuted');
  });
  it('the measured slowdown does not decide, however the host ran', () => {
    expect(tesarikDynamicCost.judge(figures(1, 2, 1.73)).verdict).toBe('partly');
    expect(tesarikDynamicCost.judge(figures(1, 2, 0.85)).verdict).toBe('partly');
  });
});

describe('tesarik-dynamic-cost: the counted work', () => {
  it('a map searches every full pool in front of the default one and an unmap walks the list past them', () => {
    expect(pairWork(staticPair())).toEqual({ locks: 2, lookups: 1 });
    expect(pairWork(dynamicPoolsPair(0))).toEqual({ locks: 2, lookups: 1 });
    expect(pairWork(dynamicPoolsPair(16))).toEqual({ locks: 18, lookups: 17 });
  });
  it('the static build\'s map+unmap runs (the row the others are measured against)', () => {
    expect(staticRate(0.02)).toBeGreaterThan(0);
  });
});

describe('tesarik-dynamic-cost: the quick form', () => {
  it('counts and measures the rows, runs the VM, and reaches the recorded verdict', async () => {
    const r = await quickForm(tesarikDynamicCost);
    const f = r.figures as DynamicCostFigures;
    expect(f.core.map((c) => c.pools)).toEqual([null, 0, 256]);
    expect(f.core.map((c) => [c.locks, c.lookups])).toEqual([[2, 1], [2, 1], [258, 257]]);
    expect(f.core[2]!.work_ratio).toBeCloseTo(515 / 3);
    expect(f.vm.map((v) => v.policy)).toEqual(['static', 'dynamic']);
  }, 180_000);
});
