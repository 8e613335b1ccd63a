// Experiment 4: the rule on made-up cells (75% and 25% are the edges), then the quick form, whose
// answers follow from the jobs: randrw-4k keeps 4 clones x iodepth 16 x 4 KiB = 64 slots in flight
// and net two 1500-byte packets' worth, both far below the smallest pool 8 areas can have
// (8 x 128 = 1024 slots), so one probe each, and 1 GiB - 2 MiB of the 16 GiB guest's default unused.
import { describe, expect, it } from 'vitest';
import { type GenerousDefaultFigures, kelleyGenerousDefault } from '../../src/experiment/kelley-generous-default.js';
import { quickForm } from '../helpers/experiment.js';

const GiB = 524288; // slots
function figures(smallest: Array<number | null>): GenerousDefaultFigures {
  return { mem: '16G', runtime: '300ms', cells: smallest.map((s, i) => ({ job: `jobs/j${i}.fio`, vcpus: 8, default_nslabs: GiB, smallest_nslabs: s, probes: 1, why: null })) };
}

describe('kelley-generous-default: the rule', () => {
  it('a cell is wasteful when the default is at least twice the smallest pool', () => {
    expect(kelleyGenerousDefault.judge(figures([GiB / 2, GiB / 2, GiB / 2, GiB / 2])).verdict).toBe('reproduced');
    expect(kelleyGenerousDefault.judge(figures([GiB, GiB, GiB, GiB])).verdict).toBe('refuted');
  });
  it('reproduced from 75% of the cells, refuted up to 25%, partly between; a cell no pool served is not wasteful', () => {
    expect(kelleyGenerousDefault.judge(figures([1024, 1024, 1024, null])).verdict).toBe('reproduced');
    expect(kelleyGenerousDefault.judge(figures([1024, 1024, null, null])).verdict).toBe('partly');
    expect(kelleyGenerousDefault.judge(figures([1024, null, null, null])).verdict).toBe('refuted');
  });
});

describe('kelley-generous-default: the quick form', () => {
  it('finds one segment per area enough for both jobs, against a 1 GiB default', async () => {
    const r = await quickForm(kelleyGenerousDefault);
    const f = r.figures as GenerousDefaultFigures;
    expect(f.cells).toHaveLength(2);
    for (const c of f.cells) {
      expect(c.default_nslabs).toBe(GiB); // 6% of 16 GiB = 983 MiB, rounded up to 1 GiB
      expect(c.smallest_nslabs).toBe(1024);
      expect(c.probes).toBe(1);
    }
  }, 180_000);
});
