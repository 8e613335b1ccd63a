// npm run stress: options (.env.example's COCO_STRESS_* defaults, the environment, then flags),
// the output (a failure block per failed trial, then a summary table; or one JSON document) and the
// exit status (0 only when no check failed; with --mutants, 0 only when every mutant was caught).
import { quote } from '../util/quote.js';
import { type FlagSpec, parseFlags } from '../cli/flags.js';
import { configValue, envOrigin } from '../config.js';
import { InputError } from '../errors.js';
import { createRunLogger, parseLogLevel } from '../log/logger.js';
import { MUTANTS, type MutantSpec, mutantByName } from '../swiotlb/mutants.js';
import { parseDuration, parseIntInRange } from '../util/units.js';
import { MAX_VCPUS, MIN_VCPUS, type StressModeOption, type TrialLimits } from './config.js';
import { type FailureReport, type MutantRow, type StressSummary, runMutants, runStress } from './run.js';
import { LOST_WAKEUP_GRACE_MS } from './trial.js';
import { table } from '../util/table.js';

export const STRESS_FLAGS: readonly FlagSpec[] = [
  { name: 'seconds', kind: 'string', form: 'DURATION', env: 'COCO_STRESS_SECONDS', help: 'length of the run, e.g. 60 or 2m (bare numbers are seconds)' },
  { name: 'seed', kind: 'string', form: 'N', env: 'COCO_STRESS_SEED', help: 'seed of the run: trial i has a seed derived from it' },
  { name: 'mode', kind: 'string', form: 'chaos|pct|mixed', env: 'COCO_STRESS_MODE', help: 'chaos, pct or mixed (each trial draws one)' },
  { name: 'replay', kind: 'string', form: 'SEED', default: 'none', help: 'run the one trial of this seed (as printed by a failure)' },
  { name: 'mutant', kind: 'string', form: 'NAME', default: 'none (the real core)', help: `run with this deliberately broken core: ${MUTANTS.map((m) => m.name).join(', ')}` },
  { name: 'mutants', kind: 'boolean', default: 'off', help: 'run every mutant until caught; print whether and how fast' },
  { name: 'max-vcpus', kind: 'string', form: 'N', env: 'COCO_STRESS_MAX_VCPUS', help: `most vCPU threads a trial draws, ${MIN_VCPUS}..${MAX_VCPUS}` },
  { name: 'scale', kind: 'string', form: 'X', env: 'COCO_STRESS_SCALE', help: 'multiplier of the operations per trial, e.g. 0.5' },
  { name: 'watchdog', kind: 'string', form: 'DURATION', env: 'COCO_STRESS_WATCHDOG', help: 'no thread progressing this long (one thread: 6x as long) fails the trial, e.g. 5s' },
  { name: 'park-timeout', kind: 'string', form: 'DURATION', env: 'COCO_STRESS_PARK_TIMEOUT', help: 'area-lock park timeout in trials, e.g. 5s' },
  { name: 'mutant-budget', kind: 'string', form: 'DURATION', env: 'COCO_STRESS_MUTANT_BUDGET', help: 'time allowed to catch each mutant, e.g. 60s' },
  { name: 'output-format', kind: 'string', form: 'normal|json', env: 'COCO_OUTPUT_FORMAT', help: 'normal or json' },
  { name: 'log-file', kind: 'string', form: 'FILE', env: 'COCO_LOG_FILE', help: 'NDJSON log: one stress_trial record per trial, stress_failure per failure' },
  { name: 'log-level', kind: 'string', form: 'LEVEL', env: 'COCO_LOG_LEVEL', help: 'trace, debug, info, warn, error, fatal, silent' },
];

export interface StressCliOptions {
  seconds: number;
  seed: number;
  mode: StressModeOption;
  replay: number | undefined;
  mutant: MutantSpec | undefined;
  mutants: boolean;
  /** --mode given as a flag (with --mutants it overrides each mutant's own mode). */
  modeFlag: boolean;
  limits: TrialLimits;
  defaults: TrialLimits;
  watchdogMs: number;
  mutantBudgetMs: number;
  outputFormat: 'normal' | 'json';
  logFile: string | undefined;
  logFileWhat: string;
  logLevel: string;
}

export function parseStressOptions(argv: readonly string[]): StressCliOptions {
  const f = parseFlags(argv, STRESS_FLAGS, 'stress');
  // A flag's value, or its variable's (flag > environment > .env > .env.example: ParsedFlags.setting).
  const get = (flag: string, _env: string): [string, string] => {
    const s = f.setting(flag);
    return [s.value, s.what];
  };
  const envOnly = (env: string): [string, string] => [configValue(env), envOrigin(env)];
  const seconds = (() => {
    const [v, what] = get('seconds', 'COCO_STRESS_SECONDS');
    const ms = parseDuration(v, what);
    if (!(ms > 0)) throw new InputError('EBADDURATION', `${what}: ${quote(v)} must be longer than 0; expected e.g. 60 or 2m`);
    return ms / 1000;
  })();
  const [seed, seedWhat] = get('seed', 'COCO_STRESS_SEED');
  const [mode, modeWhat] = get('mode', 'COCO_STRESS_MODE');
  if (mode !== 'chaos' && mode !== 'pct' && mode !== 'mixed') {
    throw new InputError('EBADFLAG', `${modeWhat}: ${quote(mode)} is not valid; expected chaos, pct or mixed`);
  }
  const parseLimits = (src: (flag: string, env: string) => [string, string]): TrialLimits => {
    const [maxV, maxVWhat] = src('max-vcpus', 'COCO_STRESS_MAX_VCPUS');
    const [scale, scaleWhat] = src('scale', 'COCO_STRESS_SCALE');
    const [park, parkWhat] = src('park-timeout', 'COCO_STRESS_PARK_TIMEOUT');
    const s = Number(scale);
    if (!(s > 0 && s <= 100)) throw new InputError('EBADFLAG', `${scaleWhat}: ${quote(scale)} is not valid; expected a number above 0 and at most 100, e.g. 0.5`);
    const parkMs = parseDuration(park, parkWhat);
    if (!(parkMs >= 2 * LOST_WAKEUP_GRACE_MS) || parkMs > 2 ** 31 - 1) {
      throw new InputError('EBADDURATION', `${parkWhat}: ${quote(park)} is not valid; expected at least ${2 * LOST_WAKEUP_GRACE_MS / 1000}s (twice the lost-wakeup grace), e.g. 5s`);
    }
    return { maxVcpus: parseIntInRange(maxV, maxVWhat, MIN_VCPUS, MAX_VCPUS), scale: s, parkTimeoutMs: Math.round(parkMs) };
  };
  const limits = parseLimits(get);
  const defaults = parseLimits((_flag, env) => envOnly(env));
  const [watchdog, wdWhat] = get('watchdog', 'COCO_STRESS_WATCHDOG');
  const watchdogMs = parseDuration(watchdog, wdWhat);
  if (!(watchdogMs >= 500)) throw new InputError('EBADDURATION', `${wdWhat}: ${quote(watchdog)} is too short; expected at least 500ms, e.g. 5s`);
  const [budget, budgetWhat] = get('mutant-budget', 'COCO_STRESS_MUTANT_BUDGET');
  const mutantBudgetMs = parseDuration(budget, budgetWhat);
  if (!(mutantBudgetMs > 0)) throw new InputError('EBADDURATION', `${budgetWhat}: ${quote(budget)} must be longer than 0; expected e.g. 60s`);
  const [fmt, fmtWhat] = get('output-format', 'COCO_OUTPUT_FORMAT');
  if (fmt !== 'normal' && fmt !== 'json') throw new InputError('EBADFLAG', `${fmtWhat}: ${quote(fmt)} is not valid; expected normal or json`);
  const [logFile, logFileWhat] = get('log-file', 'COCO_LOG_FILE');
  const [level, levelWhat] = get('log-level', 'COCO_LOG_LEVEL');
  parseLogLevel(level, levelWhat);
  let mutant: MutantSpec | undefined;
  if (f.has('mutant')) {
    const name = f.get('mutant')!;
    mutant = mutantByName(name);
    if (mutant === undefined) throw new InputError('EBADFLAG', `--mutant: ${quote(name)} is not a mutant; expected one of ${MUTANTS.map((m) => m.name).join(', ')}`);
  }
  const mutants = f.has('mutants') && f.get('mutants') !== 'off';
  const replay = f.has('replay') ? parseIntInRange(f.get('replay')!, '--replay', 1, 2 ** 32 - 1) : undefined;
  if (mutants && replay !== undefined) throw new InputError('EBADFLAG', '--mutants and --replay do not go together; replay a mutant\'s failure with --replay <seed> --mutant <name>');
  return {
    seconds,
    seed: parseIntInRange(seed, seedWhat, 0, 2 ** 32 - 1),
    mode,
    replay,
    mutant,
    mutants,
    modeFlag: f.has('mode'),
    limits,
    defaults,
    watchdogMs,
    mutantBudgetMs,
    outputFormat: fmt,
    logFile: logFile === '' ? undefined : logFile,
    logFileWhat,
    logLevel: level,
  };
}

export interface StressIo {
  stdout(s: string): void;
  stderr(s: string): void;
}

/** The whole command. Returns the exit status. */
export async function runStressCli(argv: readonly string[], io: StressIo): Promise<number> {
  const o = parseStressOptions(argv);
  const log = createRunLogger({ file: o.logFile, fileWhat: o.logFileWhat, level: o.logFile !== undefined ? o.logLevel : 'silent' });
  try {
    const maxTrialMs = Math.max(20_000, 4 * o.watchdogMs);
    if (o.mutants) {
      const only = o.mutant !== undefined ? [o.mutant] : undefined;
      if (o.outputFormat === 'normal') {
        io.stdout(`stress --mutants: each mutant gets up to ${o.mutantBudgetMs / 1000} s (seed ${o.seed})\n`);
      }
      const rows = await runMutants({
        seed: o.seed, limits: o.limits, defaults: o.defaults, watchdogMs: o.watchdogMs, maxTrialMs, budgetMs: o.mutantBudgetMs,
        only, log, mode: o.modeFlag && o.mode !== 'mixed' ? o.mode : undefined,
        onMutant: (r) => {
          if (o.outputFormat === 'normal') io.stdout(`  ${r.mutant}: ${r.caught ? `caught in ${r.seconds.toFixed(1)} s` : `NOT caught in ${r.seconds.toFixed(1)} s`}\n`);
        },
      });
      const allCaught = rows.every((r) => r.caught);
      if (o.outputFormat === 'json') io.stdout(`${JSON.stringify({ seed: o.seed, budget_s: o.mutantBudgetMs / 1000, all_caught: allCaught, mutants: rows })}\n`);
      else io.stdout(formatMutantTable(rows));
      return allCaught ? 0 : 1;
    }
    const summary = await runStress({
      seconds: o.seconds, seed: o.seed, mode: o.mode, limits: o.limits, defaults: o.defaults, watchdogMs: o.watchdogMs,
      maxTrialMs, mutant: o.mutant, replay: o.replay, log,
      onTrial: (_t, _i, f) => {
        if (f !== null && o.outputFormat === 'normal') io.stdout(formatFailure(f));
      },
    });
    if (o.outputFormat === 'json') io.stdout(`${JSON.stringify(summary)}\n`);
    else io.stdout(formatSummary(summary));
    return summary.failures === 0 ? 0 : 1;
  } finally {
    await log.close();
  }
}

export function formatFailure(f: FailureReport): string {
  const lines = [
    `FAIL trial ${f.trial}: seed ${f.seed}, mode ${f.mode}${f.mutant !== null ? `, mutant ${f.mutant}` : ''}`,
    ...f.failures.map((x) => `  ${x}`),
    `  config: ${f.config}`,
    `  replay: ${f.replay}`,
    '',
  ];
  return `${lines.join('\n')}\n`;
}

const num = (n: number) => n.toLocaleString('en-US');

export function formatSummary(s: StressSummary): string {
  const rows: string[][] = [];
  for (const mode of ['chaos', 'pct'] as const) {
    const m = s.by_mode[mode];
    if (m.trials === 0) continue;
    rows.push([mode, num(m.trials), num(m.operations), num(m.ops_per_s), num(m.interleavings_perturbed), num(s.failed.filter((f) => f.mode === mode).length)]);
  }
  rows.push(['total', num(s.trials), num(s.operations), num(s.ops_per_s), num(s.interleavings_perturbed), num(s.failures)]);
  const head = `stress: seed ${s.seed}, mode ${s.mode}${s.mutant !== null ? `, mutant ${s.mutant}` : ''}, ${s.seconds} s`;
  const t = table(['mode', '>trials', '>operations', '>ops/s', '>interleavings perturbed', '>failures'], rows, '').join('\n');
  const verdict = s.failures === 0 ? 'no check failed' : `${s.failures} failed trial${s.failures === 1 ? '' : 's'}; replay each with the command printed above`;
  const d = s.dynamic;
  const dyn = d.trials === 0 ? 'dynamic swiotlb: in no trial' : [
    `dynamic swiotlb: ${num(d.trials)} of ${num(s.trials)} trials; ${num(d.pools_added)} pools added (in ${num(d.trials_grown)} trials; ${num(d.grow_failed)} growths failed),`,
    `  ${num(d.transient_created)} transient pools (in ${num(d.trials_transient)} trials; ${num(d.transient_failed)} could not be made), atomic pool exhausted ${num(d.atomic_exhaustions)} times (in ${num(d.trials_exhausted)} trials);`,
    `  nslabs checked at ${num(d.nslabs_checks)} moments, live-mapping sums at ${num(d.quiescent_checks)} (pct)`,
  ].join('\n');
  return `${head}\n${t}\n${dyn}\n${verdict}\n`;
}

export function formatMutantTable(rows: readonly MutantRow[]): string {
  const t = table(
    ['mutant', 'caught', '>time (s)', '>trials', 'mode', '>seed', 'caught by'],
    rows.map((r) => [
      r.mutant, r.caught ? 'yes' : 'NO', r.seconds.toFixed(1), num(r.trials), r.mode, r.seed === null ? '-' : String(r.seed),
      r.check === null ? '-' : r.check.length > 100 ? `${r.check.slice(0, 97)}...` : r.check,
    ]),
    '',
  ).join('\n');
  const caught = rows.filter((r) => r.caught).length;
  return `${t}\n${caught} of ${rows.length} mutants caught\n`;
}
