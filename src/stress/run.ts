// npm run stress: trials until the time is up (or one trial, to replay a seed), and the mutant run.
import type { RunLogger } from '../log/logger.js';
import { MUTANTS, type MutantSpec } from '../swiotlb/mutants.js';
import {
  type StressMode, type StressModeOption, type TrialConfig, type TrialLimits, configLine, trialConfig, trialSeed,
} from './config.js';
import { StressWorkerPool, type TrialOutcome, runTrial } from './trial.js';

export interface StressOptions {
  /** Length of the run; trials still running at the end are told to stop and are still checked. */
  seconds: number;
  seed: number;
  mode: StressModeOption;
  limits: TrialLimits;
  watchdogMs: number;
  /** Longest single trial (it is told to stop after this). */
  maxTrialMs: number;
  /** Run every trial with this mutant (replaying a mutant's failure). */
  mutant?: MutantSpec;
  /** Run exactly one trial, of this seed. */
  replay?: number;
  /** The default limits, to leave them out of replay commands. */
  defaults: TrialLimits;
  log: RunLogger;
  /** Called after each trial (progress and failure printing). */
  onTrial?: (o: TrialOutcome, trial: number, failure: FailureReport | null) => void;
}

export interface FailureReport {
  trial: number;
  seed: number;
  mode: StressMode;
  mutant: string | null;
  /** Every broken check (the first is the headline). */
  failures: string[];
  /** The configuration, one JSON line. */
  config: string;
  /** The command that replays the trial. */
  replay: string;
}

export interface ModeTotals {
  trials: number;
  operations: number;
  /** Seconds spent in trials of this mode. */
  seconds: number;
  ops_per_s: number;
  interleavings_perturbed: number;
}

export interface StressSummary {
  seed: number;
  mode: StressModeOption;
  mutant: string | null;
  seconds: number;
  trials: number;
  operations: number;
  ops_per_s: number;
  /** chaos: perturbations inserted at instrumentation points; pct: turns the scheduler moved between threads. */
  interleavings_perturbed: number;
  failures: number;
  by_mode: Record<StressMode, ModeTotals>;
  /** Trials with dynamic swiotlb on, and what they reached (a run that never grows tested nothing of it). */
  dynamic: DynamicTotals;
  failed: FailureReport[];
}

export interface DynamicTotals {
  trials: number;
  pools_added: number;
  grow_failed: number;
  transient_created: number;
  transient_failed: number;
  atomic_exhaustions: number;
  /** Trials that reached each: growth, a transient pool, an exhausted atomic pool. */
  trials_grown: number;
  trials_transient: number;
  trials_exhausted: number;
  /** Moments the live-mapping sums (pct) and mem->nslabs were checked. */
  quiescent_checks: number;
  nslabs_checks: number;
}

export function emptyDynamicTotals(): DynamicTotals {
  return {
    trials: 0, pools_added: 0, grow_failed: 0, transient_created: 0, transient_failed: 0, atomic_exhaustions: 0, trials_grown: 0,
    trials_transient: 0, trials_exhausted: 0, quiescent_checks: 0, nslabs_checks: 0,
  };
}

/** Add a trial's dynamic outcome to the run's totals. */
export function addDynamic(t: DynamicTotals, o: TrialOutcome): void {
  const d = o.dynamic;
  if (d === null) return;
  t.trials++;
  t.pools_added += d.poolsAdded;
  t.grow_failed += d.growFailed;
  t.transient_created += d.transientCreated;
  t.transient_failed += d.transientFailed;
  t.atomic_exhaustions += d.atomicExhaustions;
  if (d.poolsAdded > 0) t.trials_grown++;
  if (d.transientCreated > 0) t.trials_transient++;
  if (d.atomicExhaustions > 0) t.trials_exhausted++;
  t.quiescent_checks += d.quiescentChecks;
  t.nslabs_checks += d.nslabsChecks;
}

/** The command that replays trial `cfg` (flags that change the configuration included). */
export function replayCommand(cfg: TrialConfig, limits: TrialLimits, defaults: TrialLimits): string {
  const parts = ['npm run stress --', `--replay ${cfg.seed}`, `--mode ${cfg.mode}`];
  if (cfg.mutant !== null) parts.push(`--mutant ${cfg.mutant}`);
  if (limits.maxVcpus !== defaults.maxVcpus) parts.push(`--max-vcpus ${limits.maxVcpus}`);
  if (limits.scale !== defaults.scale) parts.push(`--scale ${limits.scale}`);
  if (limits.parkTimeoutMs !== defaults.parkTimeoutMs) parts.push(`--park-timeout ${limits.parkTimeoutMs}ms`);
  return parts.join(' ');
}

function failureReport(o: TrialOutcome, trial: number, limits: TrialLimits, defaults: TrialLimits): FailureReport {
  return {
    trial, seed: o.config.seed, mode: o.config.mode, mutant: o.config.mutant, failures: o.failures,
    config: configLine(o.config), replay: replayCommand(o.config, limits, defaults),
  };
}

function logTrial(log: RunLogger, o: TrialOutcome, trial: number, f: FailureReport | null): void {
  const c = o.config;
  log.emit('stress_trial', {
    trial, seed: c.seed, mode: c.mode, ...(c.mutant !== null ? { mutant: c.mutant } : {}), vcpus: c.vcpus, nslabs: c.nslabs,
    nareas: c.nareas, ops: o.ops, maps: o.maps, map_failures: o.mapFailures, perturbations: o.perturbations,
    duration_ms: Math.round(o.durationMs), ok: o.failures.length === 0, failures: o.failures.length,
    ...(o.pct !== null ? { pct_steps: o.pct.steps, pct_trace: o.pct.trace } : {}),
    throttle: c.throttle !== null, ...(c.throttle !== null ? { throttled_maps: o.throttledMaps, throttle_waits: o.throttleWaits } : {}),
    dynamic: c.dynamic !== null,
    ...(o.dynamic !== null ? {
      pools_added: o.dynamic.poolsAdded, grow_failed: o.dynamic.growFailed, transient_created: o.dynamic.transientCreated,
      transient_failed: o.dynamic.transientFailed, atomic_exhaustions: o.dynamic.atomicExhaustions,
    } : {}),
  });
  if (f !== null) {
    log.emit('stress_failure', {
      trial, seed: f.seed, mode: f.mode, ...(f.mutant !== null ? { mutant: f.mutant } : {}), check: f.failures[0] ?? '',
      failures: f.failures, config: JSON.parse(f.config) as Record<string, unknown>, replay: f.replay,
    });
  }
}

const emptyTotals = (): ModeTotals => ({ trials: 0, operations: 0, seconds: 0, ops_per_s: 0, interleavings_perturbed: 0 });

export async function runStress(opts: StressOptions): Promise<StressSummary> {
  const pool = new StressWorkerPool();
  const byMode: Record<StressMode, ModeTotals> = { chaos: emptyTotals(), pct: emptyTotals() };
  const failed: FailureReport[] = [];
  const dynamic = emptyDynamicTotals();
  const start = performance.now();
  const deadline = opts.replay !== undefined ? Infinity : start + opts.seconds * 1000;
  let trials = 0;
  try {
    for (let i = 0; ; i++) {
      if (opts.replay === undefined && performance.now() >= deadline) break;
      const seed = opts.replay ?? trialSeed(opts.seed, i);
      const cfg = trialConfig(seed, opts.mode, opts.limits, opts.mutant);
      const o = await runTrial(cfg, pool, { watchdogMs: opts.watchdogMs, deadline, maxTrialMs: opts.maxTrialMs });
      trials++;
      const m = byMode[cfg.mode];
      m.trials++;
      m.operations += o.ops;
      m.seconds += o.durationMs / 1000;
      m.interleavings_perturbed += o.perturbations;
      addDynamic(dynamic, o);
      const f = o.failures.length > 0 ? failureReport(o, i, opts.limits, opts.defaults) : null;
      if (f !== null) failed.push(f);
      logTrial(opts.log, o, i, f);
      opts.onTrial?.(o, i, f);
      if (opts.replay !== undefined) break;
    }
  } finally {
    await pool.close();
  }
  const seconds = (performance.now() - start) / 1000;
  for (const m of Object.values(byMode)) m.ops_per_s = m.seconds > 0 ? Math.round(m.operations / m.seconds) : 0;
  const operations = byMode.chaos.operations + byMode.pct.operations;
  return {
    seed: opts.seed, mode: opts.mode, mutant: opts.mutant?.name ?? null, seconds: Number(seconds.toFixed(1)), trials,
    operations, ops_per_s: seconds > 0 ? Math.round(operations / seconds) : 0,
    interleavings_perturbed: byMode.chaos.interleavings_perturbed + byMode.pct.interleavings_perturbed,
    failures: failed.length, by_mode: byMode, dynamic, failed,
  };
}

export interface MutantOptions {
  seed: number;
  limits: TrialLimits;
  defaults: TrialLimits;
  watchdogMs: number;
  maxTrialMs: number;
  /** Time allowed to catch each mutant. */
  budgetMs: number;
  /** Only these mutants (default: every one that the core supports). */
  only?: readonly MutantSpec[];
  /** Run every mutant in this mode instead of the one its hint names. */
  mode?: StressMode;
  log: RunLogger;
  onMutant?: (row: MutantRow) => void;
}

export interface MutantRow {
  mutant: string;
  description: string;
  caught: boolean;
  /** Seconds from the mutant's first trial to the failure that caught it (or the budget). */
  seconds: number;
  trials: number;
  operations: number;
  /** The catching trial. */
  seed: number | null;
  mode: StressMode;
  check: string | null;
  replay: string | null;
}

/** Each mutant in turn: trials of its configuration until a check fails or the budget is spent. */
export async function runMutants(opts: MutantOptions): Promise<MutantRow[]> {
  const pool = new StressWorkerPool();
  const rows: MutantRow[] = [];
  let trialNo = 0;
  try {
    for (const m of opts.only ?? MUTANTS) {
      const start = performance.now();
      const end = start + opts.budgetMs;
      const row: MutantRow = {
        mutant: m.name, description: m.description, caught: false, seconds: 0, trials: 0, operations: 0, seed: null,
        mode: opts.mode ?? m.hint.mode, check: null, replay: null,
      };
      const spec: MutantSpec = opts.mode === undefined ? m : { ...m, hint: { ...m.hint, mode: opts.mode } };
      for (let i = 0; performance.now() < end; i++) {
        const seed = trialSeed((opts.seed ^ Math.imul(m.id, 0x01000193)) >>> 0, i);
        const cfg = trialConfig(seed, spec.hint.mode, opts.limits, spec);
        const o = await runTrial(cfg, pool, { watchdogMs: opts.watchdogMs, deadline: end, maxTrialMs: opts.maxTrialMs });
        row.trials++;
        row.operations += o.ops;
        const f = o.failures.length > 0 ? failureReport(o, trialNo, opts.limits, opts.defaults) : null;
        logTrial(opts.log, o, trialNo++, f);
        if (f !== null) {
          row.caught = true;
          row.seed = seed;
          row.check = f.failures[0]!;
          row.replay = f.replay;
          break;
        }
      }
      row.seconds = Number(((performance.now() - start) / 1000).toFixed(2));
      rows.push(row);
      opts.onMutant?.(row);
    }
  } finally {
    await pool.close();
  }
  return rows;
}
