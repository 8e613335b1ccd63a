// Runs one form of an experiment: a context whose every VM run goes through the sweep's run driver
// (runAll: src/sweep/run.ts runConfigs, each run a child process, a run refused as bad input ends the
// experiment with that message), generated files in a private directory, then the verdict.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runAll } from '../sweep/compare.js';
import type { RunConfig, RunRecord } from '../sweep/run.js';
import { notOk } from './measure.js';
import type { AnyExperiment, ExperimentContext, ExperimentResult } from './types.js';

export interface RunExperimentOptions {
  quick: boolean;
  /** Repeats of each configuration; undefined: the experiment's own for the form. */
  repeat?: number;
  /** Configurations run at once (compare's --parallel; each VM already uses every core). */
  parallel: number;
}

export async function runExperiment(e: AnyExperiment, opts: RunExperimentOptions): Promise<ExperimentResult> {
  const t0 = Date.now();
  const dir = mkdtempSync(join(tmpdir(), `coco-experiment-${e.name}-`));
  const records: RunRecord[] = [];
  const repeat = opts.repeat ?? (opts.quick ? e.repeats.quick : e.repeats.full);
  const tty = process.stderr.isTTY === true;
  const ctx: ExperimentContext = {
    quick: opts.quick,
    repeat,
    async run(configs: readonly RunConfig[]) {
      const out = await runAll(configs, opts.parallel);
      records.push(...out);
      return out;
    },
    file(name, text) {
      const p = join(dir, name);
      writeFileSync(p, text);
      return p;
    },
    progress(msg) {
      if (tty) process.stderr.write(`${e.name}: ${msg}\n`);
    },
  };
  try {
    const figures = await e.run(ctx);
    return {
      name: e.name, number: e.number, form: opts.quick ? 'quick' : 'full', repeat, figures, verdict: e.judge(figures),
      table: e.table(figures), chart: e.chart(figures), runs: records.length, not_ok: notOk(records), wall_ms: Date.now() - t0,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
