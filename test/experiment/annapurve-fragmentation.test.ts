// Experiment 6: the rule on made-up success rates (each part on each side of its bound), then the
// quick form, whose rates follow from the levels: with no free block above 1 MiB a 2 MiB attempt can
// never succeed and a 1 MiB one can (the snapshot frees 34 of them); with nothing above 512 KiB
// (severe) no attempt of either size can.
import { describe, expect, it } from 'vitest';
import { type FragmentationFigures, annapurveFragmentation } from '../../src/experiment/annapurve-fragmentation.js';
import { quickForm } from '../helpers/experiment.js';

function figures(rates: Record<string, [number | null, number | null]>): FragmentationFigures {
  const cells = Object.entries(rates).flatMap(([level, [r1, r2]]) => ([[1, r1], [2, r2]] as const).filter(([, r]) => r !== null).map(([chunk, rate]) => ({
    level, largest: '-', chunk_mib: chunk, runs: 1, not_ok: 0, attempts: 10, ok: Math.round((rate ?? 0) * 10), rate, map_failures_median: 0,
  })));
  return { runtime: '1s', cells };
}

describe('annapurve-fragmentation: the rule', () => {
  it('reproduced: growth fails when fragmented, and both chunk sizes fail alike everywhere', () => {
    expect(annapurveFragmentation.judge(figures({ none: [1, 1], moderate: [1, 0.85], severe: [0, 0] })).verdict).toBe('reproduced');
  });
  it('partly: a level where the rates differ by more than 20 points', () => {
    expect(annapurveFragmentation.judge(figures({ none: [1, 1], snap: [1, 0.79], severe: [0, 0] })).verdict).toBe('partly');
  });
  it('partly: growth at severe succeeding more than half the time, or none less than 90%', () => {
    expect(annapurveFragmentation.judge(figures({ none: [1, 1], severe: [0.6, 0.6] })).verdict).toBe('partly');
    expect(annapurveFragmentation.judge(figures({ none: [0.85, 0.85], severe: [0, 0] })).verdict).toBe('partly');
  });
  it('refuted when neither part holds', () => {
    expect(annapurveFragmentation.judge(figures({ none: [1, 0], severe: [1, 1] })).verdict).toBe('refuted');
  });
});

describe('annapurve-fragmentation: the quick form', () => {
  it('measures growth by chunk size and level and reaches the recorded verdict', async () => {
    const r = await quickForm(annapurveFragmentation);
    const f = r.figures as FragmentationFigures;
    const at = (level: string, chunk: number) => f.cells.find((c) => c.level === level && c.chunk_mib === chunk)!;
    expect(at('largest free 1 MiB (snapshot)', 2).ok).toBe(0);
    expect(at('largest free 1 MiB (snapshot)', 2).attempts).toBeGreaterThan(0);
    expect(at('largest free 1 MiB (snapshot)', 1).ok).toBeGreaterThan(0);
    expect(at('severe', 2).ok).toBe(0);
    expect(at('none', 1).rate).toBe(1);
  }, 180_000);
});
