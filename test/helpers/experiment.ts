// The experiments' quick forms in the test suite: run one (its VM runs through the sweep's driver, as
// `npm run experiment -- NAME --quick` does) and compare its verdict with the one EXPERIMENTS.md
// records for the quick form (and the full form, when the two agreed there). An experiment not yet in
// EXPERIMENTS.md is only checked for a well-formed verdict.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { recordedVerdicts } from '../../src/experiment/report.js';
import { runExperiment } from '../../src/experiment/runner.js';
import { type AnyExperiment, type ExperimentResult, VERDICTS } from '../../src/experiment/types.js';
import { projectRoot } from '../../src/util/worker-file.js';

export function recorded(name: string): { full?: string; quick?: string } | undefined {
  const file = join(projectRoot(), 'EXPERIMENTS.md');
  if (!existsSync(file)) return undefined;
  return recordedVerdicts(readFileSync(file, 'utf8'))[name];
}

export async function quickForm(e: AnyExperiment): Promise<ExperimentResult> {
  const r = await runExperiment(e, { quick: true, parallel: 1 });
  expect(VERDICTS).toContain(r.verdict.verdict);
  expect(r.verdict.why.length).toBeGreaterThan(20);
  expect(r.table.rows.length).toBeGreaterThan(0);
  expect(r.chart.series.length).toBeGreaterThan(0);
  // The verdict is the rule's on these figures, not stored apart from them.
  expect(e.judge(r.figures)).toEqual(r.verdict);
  const rec = recorded(e.name);
  if (rec?.quick !== undefined) expect(r.verdict.verdict, `quick verdict against EXPERIMENTS.md (full: ${rec.full ?? '-'}): ${r.verdict.why}`).toBe(rec.quick);
  return r;
}
