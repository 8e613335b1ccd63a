// Experiment 8: the rule on made-up slowdowns (25% is the edge of "a bit"), the static row's own
// figure, then the quick form, whose 256-pool row must be slower than the static build: every map
// searches 256 full pools first and every unmap walks the list past them.
import { describe, expect, it } from 'vitest';
import { staticRate } from '../../src/bench/dynamic-bench.js';
import { type DynamicCostFigures, tesarikDynamicCost } from '../../src/experiment/tesarik-dynamic-cost.js';
import { quickForm } from '../helpers/experiment.js';

function figures(s0: number, sMost: number): DynamicCostFigures {
  return {
    rounds: 3, window_s: 0.1, vm: [],
    core: [{ pools: null, pairs_per_s: null, slowdown: 1 }, { pools: 0, pairs_per_s: null, slowdown: s0 }, { pools: 256, pairs_per_s: null, slowdown: sMost }],
  };
}

describe('tesarik-dynamic-cost: the rule', () => {
  it('reproduced when both the empty and the most-pools slowdowns are at most 25%', () => {
    expect(tesarikDynamicCost.judge(figures(1.05, 1.25)).verdict).toBe('reproduced');
  });
  it('partly when only the empty build is within 25%', () => {
    expect(tesarikDynamicCost.judge(figures(0.9, 1.26)).verdict).toBe('partly');
  });
  it('refuted when even the empty dynamic build is more than 25% slower', () => {
    expect(tesarikDynamicCost.judge(figures(1.3, 1.3)).verdict).toBe('refuted');
  });
});

describe('tesarik-dynamic-cost: the quick form', () => {
  it('the static build\'s map+unmap runs (the row the others are measured against)', () => {
    expect(staticRate(0.02)).toBeGreaterThan(0);
  });
  it('measures the rows and the VM runs and reaches the recorded verdict', async () => {
    const r = await quickForm(tesarikDynamicCost);
    const f = r.figures as DynamicCostFigures;
    expect(f.core.map((c) => c.pools)).toEqual([null, 0, 256]);
    expect(f.core.find((c) => c.pools === 256)!.slowdown).toBeGreaterThan(1);
    expect(f.vm.map((v) => v.policy)).toEqual(['static', 'dynamic']);
  }, 180_000);
});
