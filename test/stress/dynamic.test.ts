// The stress harness with dynamic swiotlb on: trials draw it from their seed; with it on, the growth
// worker thread adds pools while the vCPUs map and unmap, transient pools come and go and the atomic
// pool runs dry (the trials must reach all three, or they test nothing of it), and every invariant it
// brings holds. Each dynamic mutant is caught within a bounded number of trials by the check named
// for it, and the same trials pass without the mutant. Outcomes only, never timings.
import { afterAll, describe, expect, it } from 'vitest';
import { type TrialConfig, maxMappingSize, trialConfig, trialSeed } from '../../src/stress/config.js';
import { StressWorkerPool, type TrialOutcome, runTrial } from '../../src/stress/trial.js';
import { MUTANTS, mutantByName } from '../../src/swiotlb/mutants.js';

const pool = new StressWorkerPool();
afterAll(() => pool.close());
const limits = { maxVcpus: 4, parkTimeoutMs: 5000, scale: 0.2 };
const opts = { watchdogMs: 5000, deadline: Infinity, maxTrialMs: 60_000 };

/** The first `k` seeds of run seed 42 whose trial (in `mode`) has dynamic swiotlb on. */
function dynamicSeeds(mode: 'chaos' | 'pct', k: number): TrialConfig[] {
  const out: TrialConfig[] = [];
  for (let i = 0; out.length < k; i++) {
    const cfg = trialConfig(trialSeed(42, i), mode, limits);
    if (cfg.dynamic !== null) out.push(cfg);
  }
  return out;
}

describe('dynamic swiotlb in stress trials', () => {
  it('is drawn on and off from the seed, and printed in the configuration; mutants that break it get it, the others do not', () => {
    const cfgs = Array.from({ length: 200 }, (_, i) => trialConfig(trialSeed(42, i), 'mixed', { maxVcpus: 64, parkTimeoutMs: 5000, scale: 1 }));
    const on = cfgs.filter((c) => c.dynamic !== null).length;
    expect(on).toBeGreaterThan(60);
    expect(on).toBeLessThan(140);
    for (const c of cfgs.filter((x) => x.dynamic !== null)) {
      // One segment per area, whole-segment mappings, at least 8 live: the pool fills.
      expect(c.nslabs).toBe(c.nareas * 128);
      expect(c.maxMappingBytes).toBe(maxMappingSize(c.minAlignMask));
      // At least 8 live, unless the trial's private-memory budget (96 MiB over all threads) allows fewer.
      const perLive = (c.sgShare > 0 ? c.sgMaxEntries : 1) * c.maxMappingBytes + 4096 + 32;
      expect(c.maxLive).toBeGreaterThanOrEqual(Math.max(1, Math.min(8, Math.floor((96 * 2 ** 20) / (c.vcpus * perLive)))));
      expect(c.dynamic!.devices).toBeLessThanOrEqual(8);
    }
    expect(trialConfig(trialSeed(42, 0), 'mixed', limits)).toEqual(trialConfig(trialSeed(42, 0), 'mixed', limits));
    for (const m of MUTANTS) expect(trialConfig(1, 'mixed', limits, m).dynamic !== null).toBe(m.requiresDynamic === true);
  });

  it('clean trials in both modes reach growth, transient pools and an exhausted atomic pool, every check holds, and pct replays exactly', async () => {
    const outcomes: TrialOutcome[] = [];
    for (const cfg of [...dynamicSeeds('chaos', 1), ...dynamicSeeds('pct', 1)]) outcomes.push(await runTrial(cfg, pool, opts));
    for (const o of outcomes) expect(o.failures).toEqual([]);
    // The growth worker is a pct thread too: the same seed gives the same schedule, growth and transient pools included.
    const again = await runTrial(dynamicSeeds('pct', 1)[0]!, pool, opts);
    expect(again.pct!.trace).toBe(outcomes[1]!.pct!.trace);
    expect(again.dynamic).toEqual(outcomes[1]!.dynamic);
    const sum = (f: (d: NonNullable<TrialOutcome['dynamic']>) => number) => outcomes.reduce((a, o) => a + f(o.dynamic!), 0);
    expect(sum((d) => d.poolsAdded)).toBeGreaterThan(0);
    expect(sum((d) => d.transientCreated)).toBeGreaterThan(0);
    expect(sum((d) => d.atomicExhaustions)).toBeGreaterThan(0);
    expect(sum((d) => d.nslabsChecks)).toBeGreaterThan(0);
    expect(outcomes[1]!.dynamic!.quiescentChecks).toBeGreaterThan(0); // pct: the live-mapping sums were checked
  }, 240_000);

  const expected: Record<string, RegExp> = {
    'pool-half-pages': /also lies in the \w+ pool|overlap \(a mapping lies wholly in one pool\)/,
    'transient-used-leak': /total_used \d+ .*(above|with every thread between operations|changes not yet applied)|total_used \d+, sum of area\.used \d+ at quiescence/,
    'nslabs-counts-transient': /mem->nslabs \d+, but the \d+ pools/,
    'transient-free-before-copy': /went back to the atomic pool before its mapping's copy-back/,
    'transient-double-free': /a second time \(a transient pool is freed exactly once\)|freed exactly once/,
    'publish-before-init': /is published but its metadata is not initialised/,
  };

  it('each dynamic mutant is caught within 4 trials by its check, and the same trials pass without it', async () => {
    const caught: Record<string, boolean> = {};
    const otherwise: string[] = []; // trials that failed, but not (yet) by the mutant's own check
    for (const m of MUTANTS.filter((x) => x.requiresDynamic === true)) {
      caught[m.name] = false;
      for (let i = 0; i < 4 && !caught[m.name]; i++) {
        const cfg = trialConfig(trialSeed((42 ^ Math.imul(m.id, 0x01000193)) >>> 0, i), 'mixed', limits, m);
        const o = await runTrial(cfg, pool, opts);
        if (o.failures.length === 0) continue;
        if (!o.failures.some((f) => expected[m.name]!.test(f))) {
          otherwise.push(`${m.name}: ${o.failures.slice(0, 3).join(' | ')}`);
          continue;
        }
        caught[m.name] = true;
        const clean = await runTrial({ ...cfg, mutant: null }, pool, opts);
        expect(clean.failures, `${m.name}'s trial without the mutant`).toEqual([]);
      }
    }
    expect(caught, otherwise.join('\n')).toEqual(Object.fromEntries(Object.keys(expected).map((k) => [k, true])));
    expect(['publish-before-init', 'transient-double-free'].map((n) => mutantByName(n)!.hint.mode)).toEqual(['pct', 'pct']); // deterministic catches
  }, 400_000);
});
