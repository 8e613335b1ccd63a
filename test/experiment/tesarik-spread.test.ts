// Experiment 5: the rule on made-up spreads (10% is the edge; a median of 0 with a non-zero repeat is
// beyond any bound), then the quick form.
import { describe, expect, it } from 'vitest';
import { SPREAD_FIGURES, type TesarikSpreadFigures, spreadValue, tesarikSpread } from '../../src/experiment/tesarik-spread.js';
import { spreadOf } from '../../src/sweep/figures.js';
import { quickForm } from '../helpers/experiment.js';

function figures(values: Record<string, number[]>): TesarikSpreadFigures {
  return { runtime: '1s', loads: [{ label: 'l', runs: 2, not_ok: 0, figures: Object.fromEntries(SPREAD_FIGURES.map((n) => [n, spreadOf(values[n] ?? [5, 5])])) as TesarikSpreadFigures['loads'][0]['figures'] }] };
}

describe('tesarik-spread: the rule', () => {
  it('spreads: (max-min)/median; all zero is 0; a median of 0 with a non-zero repeat is unbounded', () => {
    expect(spreadValue(spreadOf([100, 110]))).toBeCloseTo(10 / 105);
    expect(spreadValue(spreadOf([0, 0, 0]))).toBe(0);
    expect(spreadValue(spreadOf([0, 0, 3]))).toBe(Number.POSITIVE_INFINITY);
  });
  it('reproduced when every figure is within 10%, partly when some are, refuted when none are', () => {
    expect(tesarikSpread.judge(figures({ iops: [100, 110] })).verdict).toBe('reproduced'); // 9.5%
    expect(tesarikSpread.judge(figures({ iops: [100, 112] })).verdict).toBe('partly'); // 11.3%
    const wild = Object.fromEntries(SPREAD_FIGURES.map((n) => [n, [0, 1, 9]]));
    expect(tesarikSpread.judge(figures(wild)).verdict).toBe('refuted');
  });
});

describe('tesarik-spread: the quick form', () => {
  it('repeats the run and reaches the recorded verdict', async () => {
    const r = await quickForm(tesarikSpread);
    const f = r.figures as TesarikSpreadFigures;
    expect(f.loads).toHaveLength(1);
    // randrw-4k's pool is far larger than its 64 slots in flight: no map failure in any repeat.
    expect(f.loads[0]!.figures.map_failures).toMatchObject({ max: 0, spread: 0 });
  }, 180_000);
});
