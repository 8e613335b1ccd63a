// Trial configurations follow from their seed (so a failure replays), stay within the limits the
// issue sets, and take a mutant's overrides.
import { describe, expect, it } from 'vitest';
import { IO_TLB_SEGSIZE } from '../../src/swiotlb/constants.js';
import {
  P_AREA_LOCK_PARK, P_AREA_LOCK_UNPARK, P_HIWATER_UPDATE, P_SLOTS_FREED, P_THROTTLE_ACQUIRED, P_THROTTLE_CHECKED,
  P_THROTTLE_COUNT, P_THROTTLE_GRANTED, P_THROTTLE_QUEUED, P_THROTTLE_WAIT,
} from '../../src/swiotlb/instrument.js';
import { mutantByName } from '../../src/swiotlb/mutants.js';
import { configLine, maxMappingSize, trialConfig, trialSeed } from '../../src/stress/config.js';
import { replayCommand } from '../../src/stress/run.js';

const limits = { maxVcpus: 64, parkTimeoutMs: 5000, scale: 1 };

describe('trial configurations', () => {
  it('are a function of the seed', () => {
    expect(trialConfig(12345, 'mixed', limits)).toEqual(trialConfig(12345, 'mixed', limits));
    expect(trialConfig(12345, 'mixed', limits)).not.toEqual(trialConfig(12346, 'mixed', limits));
  });

  it('draw the same trial whatever the mode, so a mixed trial replays with --mode <its mode>', () => {
    for (let i = 0; i < 20; i++) {
      const seed = trialSeed(42, i);
      const mixed = trialConfig(seed, 'mixed', limits);
      expect(trialConfig(seed, mixed.mode, limits)).toEqual(mixed);
    }
  });

  it('stay within the ranges: 2..64 vCPUs, power-of-two areas of whole segments, 1 byte..max mapping size', () => {
    const modes = new Set<string>();
    let big = 0;
    let throttled = 0;
    let lowAboveHigh = 0;
    for (let i = 0; i < 500; i++) {
      const c = trialConfig(trialSeed(7, i), 'mixed', limits);
      modes.add(c.mode);
      expect(c.vcpus).toBeGreaterThanOrEqual(2);
      expect(c.vcpus).toBeLessThanOrEqual(64);
      if (c.vcpus > 32) big++;
      expect(Math.log2(c.nareas) % 1).toBe(0);
      expect(c.nslabs % (c.nareas * IO_TLB_SEGSIZE)).toBe(0);
      expect(c.maxMappingBytes).toBeGreaterThanOrEqual(1);
      expect(c.maxMappingBytes).toBeLessThanOrEqual(maxMappingSize(c.minAlignMask));
      expect(Math.log2(c.minAlignMask + 1) % 1).toBe(0);
      if (c.mode === 'pct') expect(c.lockSpins).toBeGreaterThanOrEqual(1);
      expect(c.opsPerThread).toBeGreaterThanOrEqual(100);
      if (c.throttle !== null) {
        throttled++;
        expect(c.throttle.high).toBeLessThan(c.nslabs);
        if (c.throttle.low > c.throttle.high) lowAboveHigh++;
      }
      expect(c.mayBlockShare).toBeGreaterThan(0);
      expect(c.mayBlockShare).toBeLessThanOrEqual(1);
    }
    expect(throttled).toBeGreaterThan(100); // about half the trials
    expect(throttled).toBeLessThan(400);
    expect(lowAboveHigh).toBeGreaterThan(0); // the RFC does not stop low_throttle above high_throttle
    expect([...modes].sort()).toEqual(['chaos', 'pct']);
    expect(big).toBeGreaterThan(0);
    expect(trialConfig(3, 'mixed', { ...limits, maxVcpus: 4 }).vcpus).toBeLessThanOrEqual(4);
  });

  it('perturb, in chaos, every point but the parks: [RFC] the throttle points too', () => {
    const perturbed = new Set<number>();
    for (let i = 0; i < 200; i++) {
      trialConfig(trialSeed(11, i), 'chaos', limits).perturb.rates.forEach((r, p) => {
        if (r > 0) perturbed.add(p);
      });
    }
    for (const p of [P_THROTTLE_CHECKED, P_SLOTS_FREED, P_THROTTLE_ACQUIRED, P_THROTTLE_QUEUED, P_THROTTLE_GRANTED, P_THROTTLE_COUNT]) {
      expect(perturbed.has(p)).toBe(true);
    }
    for (const p of [P_AREA_LOCK_PARK, P_AREA_LOCK_UNPARK, P_THROTTLE_WAIT]) expect(perturbed.has(p)).toBe(false);
  });

  it('take a mutant\'s overrides; an explicit mode wins over the mutant\'s own', () => {
    const m = mutantByName('hiwater-no-cas')!;
    const c = trialConfig(99, 'mixed', limits, m);
    expect(c.mutant).toBe('hiwater-no-cas');
    expect(c.mode).toBe(m.hint.mode);
    expect(c.vcpus).toBe(m.hint.vcpus);
    expect(c.perturb.rates[P_HIWATER_UPDATE]).toBe(m.hint.perturbRate);
    expect(c.perturb.rates.filter((r) => r > 0)).toHaveLength(1);
    expect(trialConfig(99, 'pct', limits, m).mode).toBe('pct');
    const sg = trialConfig(99, 'mixed', limits, mutantByName('sg-unmap-order'));
    expect(sg.throttle).toEqual({ high: Math.floor(sg.nslabs * 0.1), low: Math.floor(sg.nslabs * 0.05) });
    expect(sg.sgShare).toBe(0.8);
    expect(sg.mayBlockShare).toBe(0.8);
  });

  it('print as one JSON line and replay with a command naming everything that shaped them', () => {
    const c = trialConfig(5, 'chaos', limits, mutantByName('merge-short'));
    expect(JSON.parse(configLine(c))).toMatchObject({ seed: 5, mode: 'chaos', mutant: 'merge-short' });
    expect(replayCommand(c, limits, limits)).toBe('npm run stress -- --replay 5 --mode chaos --mutant merge-short');
    expect(replayCommand(c, { ...limits, maxVcpus: 8, scale: 0.5 }, limits)).toBe('npm run stress -- --replay 5 --mode chaos --mutant merge-short --max-vcpus 8 --scale 0.5');
  });
});
