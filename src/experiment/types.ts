// What an experiment is (issue 15): a claim from the seed threads, quoted with its author and file,
// the setup that tests it, the figures measured (every VM run through src/sweep/run.ts, the one run
// driver), and a verdict computed from those figures by a rule stated in words. The rule is a pure
// function of the figures (judge), so a test can feed it synthetic figures and see it fail. A verdict
// should turn only on figures the emulator decides (counts, sizes, a seeded workload's outcome), not
// on a speed or a race the host decides, so that the quick and the full form reach it on any host;
// measured speeds are shown beside the counts, saying they do not decide (a rule that still uses one
// says so in its words).
//
// Adding an experiment: one module under src/experiment/ exporting an Experiment, and one line in
// registry.ts.
import type { RunConfig, RunRecord } from '../sweep/run.js';

export const VERDICTS = ['reproduced', 'partly', 'refuted'] as const;
export type VerdictWord = (typeof VERDICTS)[number];

export interface Verdict {
  verdict: VerdictWord;
  /** One sentence: why, with the figures that decide. */
  why: string;
}

export interface Claim {
  /** Who said it. */
  author: string;
  /** The seed file it is quoted from (under the seed threads), or where it was published. */
  source: string;
  /** The words, exactly as posted. */
  quote: string;
}

/** A table of figures for the text and Markdown reports: header cells (">" prefix: right-aligned) and rows. */
export interface Table {
  head: string[];
  rows: string[][];
}

/** One chart of the HTML page: bars (one group per x label, one bar per series) or lines over numeric x. */
export interface Chart {
  title: string;
  kind: 'bars' | 'lines';
  xLabel: string;
  yLabel: string;
  /** The x labels (bars) or values (lines). */
  x: Array<string | number>;
  series: { label: string; values: Array<number | null> }[];
}

/** What an experiment's code gets: its form, and the one way to run VMs. */
export interface ExperimentContext {
  quick: boolean;
  /** Repeats of each configuration (--repeat, else the experiment's own for the form). */
  repeat: number;
  /** Run configurations through the one run driver (src/sweep/run.ts runConfigs); records in the configurations' order. */
  run(configs: readonly RunConfig[]): Promise<RunRecord[]>;
  /** Write a generated file (a job file, a buddyinfo snapshot) for this experiment's runs; removed when it ends. */
  file(name: string, text: string): string;
  /** A line of progress (on a terminal only). */
  progress(msg: string): void;
}

export interface Experiment<F> {
  /** The command-line name, e.g. kelley-throttle. */
  name: string;
  /** Its number in issue 15's list. */
  number: number;
  claim: Claim;
  /** What the runs model. */
  setup: string;
  /** What the emulator cannot say about the claim. */
  cannot: string;
  /** The verdict rule, in words (judge implements exactly this). */
  rule: string;
  /** The two forms in words: what the full form runs and what the quick one cuts. */
  forms: { full: string; quick: string };
  repeats: { full: number; quick: number };
  /** Measure: the figures that decide, JSON-serialisable. */
  run(ctx: ExperimentContext): Promise<F>;
  /** The verdict from the figures alone. */
  judge(f: F): Verdict;
  table(f: F): Table;
  chart(f: F): Chart;
}

/** An experiment of any figures' type, as the registry holds them. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyExperiment = Experiment<any>;

/** One form of one experiment, measured and judged. */
export interface ExperimentResult {
  name: string;
  number: number;
  form: 'full' | 'quick';
  repeat: number;
  figures: unknown;
  verdict: Verdict;
  table: Table;
  chart: Chart;
  /** VM runs made, and those that did not end ok (status: reason). */
  runs: number;
  not_ok: string[];
  wall_ms: number;
}
