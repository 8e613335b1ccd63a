// `npm run experiment`: one experiment by name (its full form, or --quick), --all (every experiment,
// full and quick forms, written to EXPERIMENTS.md and an HTML page), --list (names and claims).
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { InputError } from '../errors.js';
import { type FlagSpec, parseFlags, parseOnOff } from '../cli/flags.js';
import { defaultParallel } from '../sweep/compare.js';
import { quote } from '../util/quote.js';
import { parseIntInRange } from '../util/units.js';
import { EXPERIMENTS, experimentByName } from './registry.js';
import { type AllResults, type ExperimentEntry, claimLine, formatResult, recordedVerdicts, renderExperimentsHtml, renderMarkdown } from './report.js';
import { runExperiment } from './runner.js';
import type { AnyExperiment } from './types.js';

export const EXPERIMENT_FLAGS: readonly FlagSpec[] = [
  { name: 'list', kind: 'boolean', default: 'off', help: 'print every experiment\'s name and claim, run nothing' },
  { name: 'all', kind: 'boolean', default: 'off', help: 'run every experiment (full form, then quick form) and write --markdown and --html' },
  { name: 'update', kind: 'boolean', default: 'off', help: 'with NAME...: run the named experiments (full form, then quick form) and rewrite only their sections of --markdown, keeping the others as recorded' },
  { name: 'quick', kind: 'boolean', default: 'off', help: 'the short form (fewer repeats, shorter runs): what the test suite runs; with --all, quick forms only' },
  { name: 'repeat', kind: 'string', form: 'N', default: 'the experiment\'s own for the form', help: 'runs of each configuration, 1..100' },
  { name: 'parallel', kind: 'string', form: 'N', env: 'COCO_SWEEP_PARALLEL', help: 'configurations run at once, each in its own process, 1..64' },
  { name: 'markdown', kind: 'string', form: 'FILE', default: 'EXPERIMENTS.md with --all or --update (none with --all --quick)', help: 'write the results as Markdown' },
  { name: 'html', kind: 'string', form: 'FILE', default: 'experiments.html with --all (none with --all --quick)', help: 'write a self-contained HTML page, one chart per experiment (--all only)' },
  { name: 'output-format', kind: 'string', form: 'normal|json', env: 'COCO_OUTPUT_FORMAT', help: 'text, or one JSON document of the results' },
];

const ABOUT = 'npm run experiment -- NAME [--quick] [--repeat N] | --all | --update NAME... | --list: the seed threads\' claims, reproduced or refuted (see --list)';

export interface ExperimentOutcome {
  text: string;
  status: number;
}

/** Split NAME arguments (words not a flag nor a string flag's value) from the flags. */
function splitNames(argv: readonly string[]): { names: string[]; flags: string[] } {
  const names: string[] = [];
  const flags: string[] = [];
  const stringFlags = new Set(EXPERIMENT_FLAGS.filter((s) => s.kind === 'string').map((s) => `--${s.name}`));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith('-')) {
      flags.push(a);
      if (stringFlags.has(a) && i + 1 < argv.length) flags.push(argv[++i]!);
      else if (!a.includes('=') && ['on', 'off', 'true', 'false', '1', '0', 'yes', 'no'].includes(argv[i + 1]?.toLowerCase() ?? '')) flags.push(argv[++i]!);
    } else names.push(a);
  }
  return { names, flags };
}

const names = (): string => EXPERIMENTS.map((e) => e.name).join(', ');

/** The EXPERIMENTS.md an --update rewrites: it must exist and carry the recorded verdicts. */
function readPrevious(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new InputError('EBADFLAG', `--update rewrites sections of an existing ${quote(file)}, which cannot be read; run --all first, or give --markdown FILE`);
  }
  if (Object.keys(recordedVerdicts(text)).length === 0) throw new InputError('EBADFLAG', `--update: ${quote(file)} has no recorded verdicts (not written by npm run experiment); run --all first`);
  return text;
}

export async function experimentMain(argv: readonly string[]): Promise<ExperimentOutcome> {
  const { names: given, flags } = splitNames(argv);
  const f = parseFlags(flags, EXPERIMENT_FLAGS, 'experiment', ABOUT);
  const on = (n: string) => (f.has(n) ? parseOnOff(f.get(n)!, `--${n}`) : false);
  const list = on('list');
  const all = on('all');
  const quick = on('quick');
  const { value: fmt, what: fmtWhat } = f.setting('output-format');
  if (fmt !== 'normal' && fmt !== 'json') throw new InputError('EBADFLAG', `${fmtWhat}: ${quote(fmt)} is not valid; expected normal or json`);
  const repeat = f.has('repeat') ? parseIntInRange(f.get('repeat')!, '--repeat', 1, 100) : undefined;
  const parallel = f.has('parallel') ? parseIntInRange(f.get('parallel')!, '--parallel', 1, 64) : defaultParallel();
  if (list) {
    if (given.length > 0 || all) throw new InputError('EBADFLAG', '--list runs nothing: give it alone (or NAME to run one, --all for every one)');
    if (fmt === 'json') return { text: JSON.stringify(EXPERIMENTS.map((e) => ({ number: e.number, name: e.name, claim: e.claim }))) + '\n', status: 0 };
    return { text: EXPERIMENTS.map((e) => `${String(e.number).padStart(2)}. ${e.name}\n    ${claimLine(e)}`).join('\n') + '\n', status: 0 };
  }
  const update = on('update');
  if (all && update) throw new InputError('EBADFLAG', '--all rewrites every section and --update the named ones: give one of them');
  if (all && given.length > 0) throw new InputError('EBADFLAG', `--all runs every experiment: drop ${given.map((n) => quote(n)).join(', ')}, or drop --all`);
  if (!all && given.length === 0) throw new InputError('EBADFLAG', `name an experiment (one of ${names()}), or give --all or --list${update ? '; --update takes the names to rerun' : ''}`);
  if (given.length > 1 && !update) throw new InputError('EBADFLAG', `one experiment at a time: got ${given.map((n) => quote(n)).join(', ')}; --all runs every one, --update NAME... reruns the named ones into EXPERIMENTS.md`);
  if (update && quick) throw new InputError('EBADFLAG', '--update records both forms: drop --quick');
  if (!all && !update && (f.has('markdown') || f.has('html'))) throw new InputError('EBADFLAG', '--markdown and --html go with --all (--markdown also with --update)');
  if (update && f.has('html')) throw new InputError('EBADFLAG', '--html goes with --all: an update has no charts of the experiments it keeps');
  const chosen: AnyExperiment[] = all ? [...EXPERIMENTS] : given.map(experimentByName);
  if (new Set(chosen).size !== chosen.length) throw new InputError('EBADFLAG', `--update: an experiment named twice in ${given.map((n) => quote(n)).join(', ')}`);
  const mdUpdate = update ? (f.get('markdown') ?? 'EXPERIMENTS.md') : undefined;
  // Read before anything runs, so a missing file is bad input, not the end of a long run.
  const previous = mdUpdate === undefined ? undefined : { md: readPrevious(mdUpdate), order: EXPERIMENTS };
  const t0 = Date.now();
  const started = new Date().toISOString();
  const loadAtStart = loadavg()[0]!;
  const entries: ExperimentEntry[] = [];
  const md = all ? (f.get('markdown') ?? (quick ? undefined : 'EXPERIMENTS.md')) : mdUpdate;
  const html = all ? (f.get('html') ?? (quick ? undefined : 'experiments.html')) : undefined;
  const results: AllResults = {
    started, wall_ms: 0, host: { cores: availableParallelism(), loadavg: loadAtStart }, entries,
    ...(update ? { command: `--update ${chosen.map((e) => e.name).join(' ')}${repeat !== undefined ? ` --repeat ${repeat}` : ''}`, previous } : {}),
  };
  const write = (): string[] => {
    results.wall_ms = Date.now() - t0;
    if (md !== undefined) writeFileSync(md, renderMarkdown(results));
    if (html !== undefined) writeFileSync(html, renderExperimentsHtml(results));
    return [md, html].filter((x): x is string => x !== undefined);
  };
  for (const e of chosen) {
    const en: ExperimentEntry = { experiment: e };
    if (!quick) en.full = await runExperiment(e, { quick: false, ...(repeat !== undefined ? { repeat } : {}), parallel });
    if (quick || all || update) en.quick = await runExperiment(e, { quick: true, ...(repeat !== undefined && quick ? { repeat } : {}), parallel });
    entries.push(en);
    if ((all || update) && process.stderr.isTTY === true) {
      process.stderr.write(`experiment ${e.name}: full ${en.full?.verdict.verdict ?? '-'}, quick ${en.quick?.verdict.verdict ?? '-'}\n`);
    }
    // Written after each experiment, so a run that dies keeps what it measured (the file says which ran).
    if (all || update) write();
  }
  const written = all || update ? write() : [];
  if (fmt === 'json') {
    const doc = { started, wall_ms: results.wall_ms, results: entries.flatMap((en) => [en.full, en.quick].filter((r) => r !== undefined)), written };
    return { text: JSON.stringify(doc) + '\n', status: 0 };
  }
  const text = entries.flatMap((en) => [en.full, en.quick].filter((r) => r !== undefined).map((r) => formatResult(en.experiment, r))).join('\n');
  const tail = all || update ? `\n${entries.length} experiments in ${((Date.now() - t0) / 60000).toFixed(1)} min${written.length > 0 ? `; written: ${written.join(', ')}` : ''}\n` : '';
  return { text: text + tail, status: 0 };
}
