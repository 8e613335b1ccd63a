// Experiment 5: the rule on made-up spreads (10% is the edge; a median of 0 with a non-zero repeat is
// beyond any bound; only the figures the seed decides are read), then the quick form.
import { describe, expect, it } from 'vitest';
import { SEEDED, SPREAD_FIGURES, type TesarikSpreadFigures, spreadValue, tesarikSpread } from '../../src/experiment/tesarik-spread.js';
import { spreadOf } from '../../src/sweep/figures.js';
import { quickForm } from '../helpers/experiment.js';

function figures(values: Record<string, number[]>): TesarikSpreadFigures {
  return { runtime: '1s', loads: [{ label: 'l', decided: [...SEEDED], runs: 2, not_ok: 0, figures: Object.fromEntries(SPREAD_FIGURES.map((n) => [n, spreadOf(values[n] ?? [5, 5])])) as TesarikSpreadFigures['loads'][0]['figures'] }] };
}

describe('tesarik-spread: the rule', () => {
  it('spreads: (max-min)/median; all zero is 0; a median of 0 with a non-zero repeat is unbounded', () => {
    expect(spreadValue(spreadOf([100, 110]))).toBeCloseTo(10 / 105);
    expect(spreadValue(spreadOf([0, 0, 0]))).toBe(0);
    expect(spreadValue(spreadOf([0, 0, 3]))).toBe(Number.POSITIVE_INFINITY);
  });
  it('partly when the seeded figures are within 10%, however far the timed ones spread or how close they come', () => {
    expect(tesarikSpread.judge(figures({ hiwater: [100, 110] })).verdict).toBe('partly'); // 9.5%
    expect(tesarikSpread.judge(figures({ iops: [100, 190], clat_p99: [1, 9] })).verdict).toBe('partly');
    expect(tesarikSpread.judge(figures({})).verdict).toBe('partly'); // every timed figure within 10% too: still not "reproduced"
  });
  it('refuted when a figure the seed decides differs by more than 10%', () => {
    expect(tesarikSpread.judge(figures({ hiwater: [100, 112] })).verdict).toBe('refuted'); // 11.3%
    expect(tesarikSpread.judge(figures({ map_failures: [0, 0, 3] })).verdict).toBe('refuted');
  });
});

describe('tesarik-spread: the quick form', () => {
  it('repeats the run and reaches the recorded verdict', async () => {
    const r = await quickForm(tesarikSpread);
    const f = r.figures as TesarikSpreadFigures;
    expect(f.loads).toHaveLength(1);
    expect(f.loads[0]!.decided).toEqual(['map_failures', 'hiwater']);
    // randrw-4k's pool is far larger than its 128 slots in flight: no map failure in any repeat, and the high-water mark is that maximum.
    expect(f.loads[0]!.figures.map_failures).toMatchObject({ max: 0, spread: 0 });
    expect(f.loads[0]!.figures.hiwater).toMatchObject({ min: 128, max: 128 });
  }, 180_000);
});
