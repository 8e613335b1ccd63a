// Shared pieces of the experiments' measurements: a run configuration from a few fields, repeats of
// it, and a figure's spread over the repeats (the sweep's own figures and spread, src/sweep/figures.ts).
import { FIGURES, type FigureSpec, type Spread, median, spreadOf } from '../sweep/figures.js';

export { median };
import { formatValue, spreadText } from '../sweep/compare.js';
import type { RunConfig, RunRecord } from '../sweep/run.js';
import type { RunReport } from '../vm/report.js';
import { join } from 'node:path';
import { projectRoot } from '../util/worker-file.js';

/** A run configuration: the given fields over a static pool, seed 1, no knobs. */
export function config(c: Pick<RunConfig, 'job' | 'vcpus' | 'mem' | 'pool'> & Partial<RunConfig>): RunConfig {
  return { policy: 'static', knobs: {}, seed: 1, repeat: 0, ...c };
}

/** `n` repeats of a configuration (same seed: what differs between them is the host). */
export function repeated(c: RunConfig, n: number): RunConfig[] {
  return Array.from({ length: n }, (_, i) => ({ ...c, repeat: i }));
}

/** A figure of the sweep's table by name. */
export function figure(name: string): FigureSpec {
  const f = FIGURES.find((s) => s.name === name);
  if (f === undefined) throw new Error(`no sweep figure ${name}`);
  return f;
}

/** The reports of the runs that ended ok. */
export function reports(records: readonly RunRecord[]): RunReport[] {
  return records.flatMap((r) => (r.status === 'ok' && r.report !== undefined ? [r.report] : []));
}

/** A value of every ok run's report, over the repeats. */
export function spreadBy(records: readonly RunRecord[], of: (r: RunReport) => number | null): Spread | null {
  return spreadOf(reports(records).map(of).filter((v): v is number => v !== null));
}

/** A sweep figure over the repeats. */
export function spreadFig(records: readonly RunRecord[], name: string): Spread | null {
  return spreadBy(records, figure(name).of);
}

/** A spread as a table cell: the median, ±(max-min)/median when the repeats differ; "-" when no run had it. */
export function cell(unit: string, s: Spread | null): string {
  return s === null ? '-' : `${formatValue(unit, s.median)}${spreadText(unit, s)}`;
}

/** A fraction as a percentage for text: 0.734 -> "73.4%". */
export function pct(x: number | null, digits = 1): string {
  return x === null ? '-' : `${(x * 100).toFixed(digits)}%`;
}

/** Outcomes of runs that did not end ok, one string each. */
export function notOk(records: readonly RunRecord[]): string[] {
  return records.filter((r) => r.status !== 'ok').map((r) => `${r.status}: ${r.reason ?? ''}`);
}

/** A job file shipped in jobs/, by its name (heavy.fio), as an absolute path: runs do not depend on the working directory. */
export function shippedJob(name: string): string {
  return join(projectRoot(), 'jobs', name);
}
