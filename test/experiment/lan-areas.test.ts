// Experiment 10: the rule on made-up figures (each part on each side of its bound), the job text, then
// the quick form: with one area per vCPU each vCPU maps in its own area first, so contention can only
// fall; the report has one area entry per area booted.
import { describe, expect, it } from 'vitest';
import { type LanAreasFigures, lanAreas, netJob } from '../../src/experiment/lan-areas.js';
import { spreadOf } from '../../src/sweep/figures.js';
import { parseFioJobFile } from '../../src/workload/fio.js';
import { quickForm } from '../helpers/experiment.js';

function figures(share1: number, shareN: number, bw1: number, bwN: number): LanAreasFigures {
  const c = (nareas: number, share: number, bw: number) => ({ nareas, runs: 1, not_ok: 0, bw: spreadOf([bw]), contended_share: spreadOf([share]), contended: null, parked: null });
  return { vcpus: 4, nslabs: 4096, runtime: '1s', cells: [c(1, share1, bw1), c(4, shareN, bwN)] };
}

describe('lan-areas: the rule', () => {
  it('reproduced: contention halves and throughput rises 1.35x on a lock that was a bottleneck', () => {
    expect(lanAreas.judge(figures(0.2, 0.01, 100, 135)).verdict).toBe('reproduced');
  });
  it('partly: contention falls but throughput does not rise enough, or the lock was no bottleneck', () => {
    expect(lanAreas.judge(figures(0.2, 0.01, 100, 134)).verdict).toBe('partly');
    expect(lanAreas.judge(figures(0.049, 0, 100, 200)).verdict).toBe('partly');
  });
  it('refuted: contention does not halve and throughput does not rise', () => {
    expect(lanAreas.judge(figures(0.2, 0.11, 100, 100)).verdict).toBe('refuted');
    expect(lanAreas.judge(figures(0, 0, 100, 100)).verdict).toBe('refuted');
  });
});

describe('lan-areas: the quick form', () => {
  it('the job is two NIC sections of vCPUs/2 clones each', () => {
    const jobs = parseFioJobFile(netJob(4), 'net-areas.fio');
    expect(jobs.jobs.map((j) => [j.name, j.numjobs, j.rw])).toEqual([['receiver', 2, 'read'], ['sender', 2, 'write']]);
  });
  it('boots one area and four, and reaches the recorded verdict', async () => {
    const r = await quickForm(lanAreas);
    const f = r.figures as LanAreasFigures;
    expect(f.cells.map((c) => c.nareas)).toEqual([1, 4]);
    expect(f.cells[1]!.contended_share!.median).toBeLessThanOrEqual(f.cells[0]!.contended_share!.median);
  }, 180_000);
});
