// Experiment 2: the rule on made-up figures (each variant exhausting the pool or not), then the quick form.
import { describe, expect, it } from 'vitest';
import { type MurphyOneCpuFigures, murphyOneCpu } from '../../src/experiment/murphy-one-cpu.js';
import { quickForm } from '../helpers/experiment.js';

function figures(storageOut: number, nicOut: number, runs = 2, notOk = 0): MurphyOneCpuFigures {
  const c = (variant: 'storage' | 'nic', out: number) => ({
    variant, policy: 'throttle' as const, runs, not_ok: notOk, runs_exhausted: out, map_failures: null, lost: null, hiwater: null, throttled: null, nslabs: 2048,
  });
  return { pool: '4M', runtime: '1s', cells: [c('storage', storageOut), c('nic', nicOut)] };
}

describe('murphy-one-cpu: the rule', () => {
  it('reproduced when every throttled run of both variants ran out of slots', () => {
    expect(murphyOneCpu.judge(figures(2, 2)).verdict).toBe('reproduced');
  });
  it('partly when only one variant did, or one run of a variant did not', () => {
    expect(murphyOneCpu.judge(figures(2, 0)).verdict).toBe('partly');
    expect(murphyOneCpu.judge(figures(1, 2)).verdict).toBe('partly');
  });
  it('refuted when neither did; a run that did not end ok does not count as exhausting', () => {
    expect(murphyOneCpu.judge(figures(0, 0)).verdict).toBe('refuted');
    expect(murphyOneCpu.judge(figures(1, 1, 2, 1)).verdict).toBe('refuted');
  });
});

describe('murphy-one-cpu: the quick form', () => {
  it('runs both variants on one vCPU under throttle and reaches the recorded verdict', async () => {
    const r = await quickForm(murphyOneCpu);
    const f = r.figures as MurphyOneCpuFigures;
    expect(f.cells.map((c) => `${c.variant}/${c.policy}`)).toEqual(['storage/throttle', 'nic/throttle']);
    // 4 MiB = 2048 slots; the NIC never maps with MAY_BLOCK, so nothing of it is throttled.
    expect(f.cells.every((c) => c.nslabs === 2048)).toBe(true);
    expect(f.cells.find((c) => c.variant === 'nic')!.throttled?.max).toBe(0);
  }, 180_000);
});
