// pct mode replays exactly: two runs of one seed take the same schedule (the same sequence of
// thread, point and datum, hashed) and do the same operations; another seed takes another.
import { afterAll, describe, expect, it } from 'vitest';
import { createRunLogger } from '../../src/log/logger.js';
import { mutantByName } from '../../src/swiotlb/mutants.js';
import { trialConfig } from '../../src/stress/config.js';
import { runMutants } from '../../src/stress/run.js';
import { StressWorkerPool, runTrial } from '../../src/stress/trial.js';

const pool = new StressWorkerPool();
afterAll(() => pool.close());
const opts = { watchdogMs: 10_000, deadline: Infinity, maxTrialMs: 120_000 };

function smallPct(seed: number) {
  const c = trialConfig(seed, 'pct', { maxVcpus: 6, parkTimeoutMs: 5000, scale: 1 });
  c.opsPerThread = 300;
  c.maxMappingBytes = Math.min(c.maxMappingBytes, 16384);
  c.pct.steps = c.vcpus * c.opsPerThread * 9;
  c.pct.depth = 6;
  return c;
}

describe('pct mode', () => {
  it('replays a trial exactly from its seed', async () => {
    const cfg = smallPct(1234);
    const a = await runTrial(cfg, pool, opts);
    const b = await runTrial(smallPct(1234), pool, opts);
    expect(a.failures).toEqual([]);
    expect(b.failures).toEqual([]);
    expect(a.pct!.steps).toBeGreaterThan(cfg.vcpus * cfg.opsPerThread);
    expect(a.pct!.switches).toBeGreaterThan(0);
    expect({ trace: b.pct!.trace, steps: b.pct!.steps, ops: b.ops, maps: b.maps, mapFailures: b.mapFailures })
      .toEqual({ trace: a.pct!.trace, steps: a.pct!.steps, ops: a.ops, maps: a.maps, mapFailures: a.mapFailures });
    const other = await runTrial(smallPct(4321), pool, opts);
    expect(other.pct!.trace).not.toBe(a.pct!.trace);
  });
});

describe('pct mode with throttling', () => {
  it('replays exactly, throttle_sem waits included', async () => {
    const cfg = () => {
      const c = smallPct(777);
      c.throttle = { high: 2, low: 1 }; // nearly every MAY_BLOCK map throttles
      c.mayBlockShare = 0.9;
      c.vcpus = 4;
      c.pct.steps = c.vcpus * c.opsPerThread * 9;
      return c;
    };
    const a = await runTrial(cfg(), pool, opts);
    const b = await runTrial(cfg(), pool, opts);
    expect(a.failures).toEqual([]);
    expect(a.throttledMaps).toBeGreaterThan(0);
    expect(a.throttleWaits).toBeGreaterThan(0);
    expect({ trace: b.pct!.trace, steps: b.pct!.steps, ops: b.ops, waits: b.throttleWaits })
      .toEqual({ trace: a.pct!.trace, steps: a.pct!.steps, ops: a.ops, waits: a.throttleWaits });
  });
});

describe('pct mode with a mutant', () => {
  it('replays the interleaving that puts two threads in one critical section, and the lock shadow names it', async () => {
    // A trial of `npm run stress -- --mutants --mode pct` (seed 42): deterministic under pct.
    const cfg = () => trialConfig(1870204299, 'pct', { maxVcpus: 64, parkTimeoutMs: 5000, scale: 1 }, mutantByName('area-lock-no-exclude'));
    const a = await runTrial(cfg(), pool, opts);
    const b = await runTrial(cfg(), pool, opts);
    expect(a.failures[0]).toMatch(/^cpu \d+: took area 0's lock while cpu \d+ holds it \(two threads in one critical section\)$/);
    expect(b.failures[0]).toBe(a.failures[0]);
  });
});

describe('the accounting and area-shadow mutants', () => {
  it('are caught in both modes within a 20 s budget each, by the check named for them', async () => {
    const limits = { maxVcpus: 8, parkTimeoutMs: 5000, scale: 1 };
    const only = ['total-used-early', 'index-after-unlock', 'used-after-unlock'].map((n) => mutantByName(n)!);
    const log = createRunLogger({ file: undefined, level: 'silent' });
    for (const mode of ['chaos', 'pct'] as const) {
      const rows = await runMutants({ seed: 42, limits, defaults: limits, watchdogMs: 5000, maxTrialMs: 20_000, budgetMs: 20_000, only, mode, log });
      expect(rows.map((r) => [r.mutant, r.mode, r.caught])).toEqual(only.map((m) => [m.name, mode, true]));
      const [total, index, used] = rows.map((r) => r.check!);
      expect(total).toMatch(/total_used \d+[ ,].*(below|less the changes not yet applied).*: total_used fell before the slots were freed, or an update was lost$/);
      expect(index).toMatch(/took area \d+'s lock and found area\.used (\d+), area\.index \d+; its last unlock left \1, \d+ \(written outside the lock\)$/);
      expect(used).toMatch(/took area \d+'s lock and found area\.used \d+, area\.index (\d+); its last unlock left \d+, \1 \(written outside the lock\)$/);
    }
    await log.close();
  }, 150_000);
});
