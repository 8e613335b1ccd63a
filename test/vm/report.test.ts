// The report's job list is fio's (stat.c __show_run_stats): one entry per clone, unless a clone sets
// group_reporting and follows one of the same reporting group, then it is summed into that entry.
import { describe, expect, it } from 'vitest';
import { planWorkload } from '../../src/vm/jobs.js';
import { reportingUnits } from '../../src/vm/report.js';
import { parseFioJobFile } from '../../src/workload/fio.js';

const MiB = 1024 ** 2;

/** The report's entries for a job file: [job name, clones summed] each. */
function entries(text: string): Array<[string, number]> {
  const jobs = parseFioJobFile(text, 't.fio').jobs;
  const plan = planWorkload({ jobs, vcpus: 4, runtimeCapMs: Infinity, sizeCapBytes: Infinity, defaultSizeBytes: MiB, seed: 1, maxRequestBytes: MiB });
  return reportingUnits(jobs, plan.instances).map((u) => [jobs[u.job]!.name, u.instances.length]);
}

describe('reporting units (group_reporting)', () => {
  it('reports each clone of numjobs= on its own by default, as fio does', () => {
    expect(entries('[a]\nnumjobs=3\n[b]\n')).toEqual([['a', 1], ['a', 1], ['a', 1], ['b', 1]]);
  });
  it('sums a job\'s clones with group_reporting', () => {
    expect(entries('[a]\nnumjobs=3\ngroup_reporting\n[b]\n')).toEqual([['a', 3], ['b', 1]]);
  });
  it('sums the consecutive jobs of one reporting group that set it, named after the first; a stonewall starts a new entry', () => {
    expect(entries('[global]\ngroup_reporting\n[a]\nnumjobs=2\n[b]\nnumjobs=2\n[c]\nstonewall\n')).toEqual([['a', 4], ['c', 1]]);
  });
  it('a clone without group_reporting is its own entry; one that sets it joins the entry before it in its group, whoever that is', () => {
    // fio starts a new thread_stat when a clone lacks group_reporting or changes group, so [c] joins b's last clone.
    expect(entries('[a]\nnumjobs=2\ngroup_reporting\n[b]\nnumjobs=2\n[c]\ngroup_reporting\n')).toEqual([['a', 2], ['b', 1], ['b', 2]]);
  });
});
