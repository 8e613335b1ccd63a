// Experiment 10: the rule on made-up counts (the split ends the sharing, or does not; the VM's figures
// never decide), the counted run (exact: one thread, the same on any host), the job text, then the
// quick form: with one area per vCPU each vCPU maps in its own area while it has room, and an unmap
// takes the lock of the slot's area, so no lock is ever taken by two vCPUs.
import { describe, expect, it } from 'vitest';
import { type LanAreasFigures, type Sharing, countSharing, lanAreas, netJob } from '../../src/experiment/lan-areas.js';
import { spreadOf } from '../../src/sweep/figures.js';
import { parseFioJobFile } from '../../src/workload/fio.js';
import { quickForm } from '../helpers/experiment.js';

function figures(one: Partial<Sharing>, per: Partial<Sharing>, bw1 = 100, bwN = 100): LanAreasFigures {
  const s = (nareas: number, o: Partial<Sharing>): Sharing => ({ nareas, locks_taken: nareas, max_vcpus_per_lock: nareas === 1 ? 4 : 1, acquisitions: 2048, handoffs: nareas === 1 ? 2047 : 0, ...o });
  const c = (nareas: number, bw: number) => ({ nareas, runs: 1, not_ok: 0, bw: spreadOf([bw]), contended_share: spreadOf([0.01]), contended: null, parked: null });
  return { vcpus: 4, nslabs: 4096, sharing: [s(1, one), s(4, per)], runtime: '1s', cells: [c(1, bw1), c(4, bwN)] };
}

describe('lan-areas: the rule', () => {
  it('partly when the split ends the sharing (the gain is not decided here), whatever the VM measured', () => {
    expect(lanAreas.judge(figures({}, {})).verdict).toBe('partly');
    expect(lanAreas.judge(figures({}, {}, 100, 200)).verdict).toBe('partly');
    expect(lanAreas.judge(figures({}, {}, 100, 50)).verdict).toBe('partly');
  });
  it('refuted when a per-vCPU area is still shared or changes hands, or the single lock was never shared', () => {
    expect(lanAreas.judge(figures({}, { max_vcpus_per_lock: 2 })).verdict).toBe('refuted');
    expect(lanAreas.judge(figures({}, { handoffs: 1 })).verdict).toBe('refuted');
    expect(lanAreas.judge(figures({ max_vcpus_per_lock: 1, handoffs: 0 }, {})).verdict).toBe('refuted');
  });
});

describe('lan-areas: the counted run', () => {
  it('one area: one lock, all four vCPUs, every acquisition but the first after another vCPU; four areas: one vCPU each, no handoff', () => {
    expect(countSharing(4, 4096, 1)).toEqual({ nareas: 1, locks_taken: 1, max_vcpus_per_lock: 4, acquisitions: 2048, handoffs: 2047 });
    expect(countSharing(4, 4096, 4)).toEqual({ nareas: 4, locks_taken: 4, max_vcpus_per_lock: 1, acquisitions: 2048, handoffs: 0 });
  });
});

describe('lan-areas: the quick form', () => {
  it('the job is two NIC sections of vCPUs/2 clones each', () => {
    const jobs = parseFioJobFile(netJob(4), 'net-areas.fio');
    expect(jobs.jobs.map((j) => [j.name, j.numjobs, j.rw])).toEqual([['receiver', 2, 'read'], ['sender', 2, 'write']]);
  });
  it('counts both pools, boots one area and four in the VM, and reaches the recorded verdict', async () => {
    const r = await quickForm(lanAreas);
    const f = r.figures as LanAreasFigures;
    expect(f.sharing.map((c) => c.nareas)).toEqual([1, 4]);
    expect(f.cells.map((c) => c.nareas)).toEqual([1, 4]);
    expect(f.cells[1]!.contended_share!.median).toBeLessThanOrEqual(f.cells[0]!.contended_share!.median);
  }, 180_000);
});
