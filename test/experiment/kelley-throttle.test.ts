// Experiment 1: the verdict rule on figures made up to sit on each side of each part, then the quick form.
import { describe, expect, it } from 'vitest';
import { type KelleyThrottleFigures, kelleyThrottle } from '../../src/experiment/kelley-throttle.js';
import type { Spread } from '../../src/sweep/figures.js';
import { quickForm } from '../helpers/experiment.js';

const s = (median: number, min = median, max = median): Spread => ({ n: 3, median, min, max, spread: median === 0 ? (max === min ? 0 : null) : (max - min) / median });

/** 2048 slots, high_throttle 1433 (70%): "near" is up to 1433 + 204.8 = 1637 slots. */
function figures(over: { staticFailRuns?: number; thrFailRuns?: number; thrIoRuns?: number; thrNotOk?: number; thrHiwaterMax?: number } = {}): KelleyThrottleFigures {
  const p = { runs: 3, not_ok: 0, io_errors: s(0), iops: s(100), nslabs: 2048, high_throttle: 1433 };
  return {
    job: 'jobs/heavy.fio', vcpus: 4, pool: '4M', runtime: '1s',
    static: { ...p, policy: 'static', runs_with_failures: over.staticFailRuns ?? 3, runs_with_io_errors: 3, map_failures: s(300), hiwater: s(2047) },
    throttle: {
      ...p, policy: 'throttle', not_ok: over.thrNotOk ?? 0, runs_with_failures: over.thrFailRuns ?? 0, runs_with_io_errors: over.thrIoRuns ?? 0,
      map_failures: s(0), hiwater: s(1500, 1400, over.thrHiwaterMax ?? 1600),
    },
  };
}

describe('kelley-throttle: the rule', () => {
  it('reproduced: static runs out, throttle has no errors and stays within high_throttle + 10% of nslabs', () => {
    expect(kelleyThrottle.judge(figures()).verdict).toBe('reproduced');
    expect(kelleyThrottle.judge(figures({ thrHiwaterMax: 1637 })).verdict).toBe('reproduced');
  });
  it('partly: a throttled high-water mark above the limit (1638 > 1637.8), or a static run that did not run out', () => {
    expect(kelleyThrottle.judge(figures({ thrHiwaterMax: 1638 })).verdict).toBe('partly');
    expect(kelleyThrottle.judge(figures({ staticFailRuns: 2 })).verdict).toBe('partly');
  });
  it('refuted: a throttled run with an I/O error, a map failure or a stall', () => {
    expect(kelleyThrottle.judge(figures({ thrIoRuns: 1 })).verdict).toBe('refuted');
    expect(kelleyThrottle.judge(figures({ thrFailRuns: 1 })).verdict).toBe('refuted');
    expect(kelleyThrottle.judge(figures({ thrNotOk: 1 })).verdict).toBe('refuted');
  });
});

describe('kelley-throttle: the quick form', () => {
  it('runs static and throttle and reaches the recorded verdict', async () => {
    const r = await quickForm(kelleyThrottle);
    const f = r.figures as KelleyThrottleFigures;
    expect(f.static.runs).toBe(kelleyThrottle.repeats.quick);
    expect(f.throttle.runs).toBe(kelleyThrottle.repeats.quick);
    // The throttle policy's threshold is the RFC's 70% of the pool.
    expect(f.throttle.high_throttle).toBe(Math.floor(f.throttle.nslabs * 0.7));
  }, 180_000);
});
