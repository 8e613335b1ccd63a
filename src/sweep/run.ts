// The one run driver under compare and size: a configuration becomes a child process running the VM's
// own command (dist/scripts/vm.js, --output-format json, its log to a private file), and the child's
// outcome becomes a result record: the configuration, the seed, the exit status, the report's JSON and
// a short timeline from the log, or "stalled"/"crashed" with the reason. A child process per run keeps
// each run's threads and memory apart: a crashed or stalled configuration costs its own row only.
// Repeats, spreads, shards and merges are arithmetic on these records (figures.ts, shard.ts).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyzeFile } from '../analyze/run.js';
import { IO_TLB_SIZE } from '../swiotlb/constants.js';
import { formatBytes } from '../util/units.js';
import { projectRoot } from '../util/worker-file.js';
import type { PolicyName } from '../vm/policy.js';
import type { RunReport } from '../vm/report.js';
import type { EventName } from '../log/events.js';

/** One run of the VM: everything that decides what it does. */
export interface RunConfig {
  /** The workload: an fio job file, or (with `trace`) '' and a kernel DMA trace replayed (npm run replay). */
  job: string;
  trace?: string;
  vcpus: number;
  mem: string;
  /** The pool: a size as --swiotlb takes it ("8M"), exactly nslabs slots (--exact-nslabs), or a kernel command line. */
  pool: { swiotlb: string } | { nslabs: number } | { cmdline: string };
  policy: PolicyName;
  /** The policy's knobs and any other VM flag, by flag name without "--" (e.g. high-throttle: "70%"). */
  knobs: Record<string, string>;
  seed: number;
  /** --runtime: a cap on each job's runtime; undefined keeps the job file's. */
  runtime?: string;
  /** Which repeat of its configuration this run is (0-based); not passed to the VM. */
  repeat: number;
}

export type RunStatus = 'ok' | 'stalled' | 'crashed' | 'input-error';

/** The overlaid timelines of the compare page: one point per sample record (at most TIMELINE_POINTS). */
export interface Timeline {
  t_s: number[];
  io_tlb_used: Array<number | null>;
  hiwater: Array<number | null>;
  nslabs: Array<number | null>;
  /** Map failures per second, from the samples' exact counters (the analyzer's chart series). */
  map_failures_per_s: Array<number | null>;
}

export interface RunRecord {
  /** Names the configuration without its repeat (the row of a table): policy, pool, knobs, seed. */
  key: string;
  config: RunConfig;
  seed: number;
  status: RunStatus;
  /** The child's exit status (null when it was killed by a signal). */
  exit: number | null;
  /** Why the run is not ok: the VM's one-line error, or the driver's (a timeout, a signal). */
  reason?: string;
  report?: RunReport;
  /** Stalls the log recorded (the throttle watchdog's; a no-progress stall ends the run and is its status). */
  stalls: number;
  timeline?: Timeline;
  /** Seconds since the run started (run time) of each logged event's first record, from the log (absent when it could not be read). */
  first_event_s?: Partial<Record<EventName, number>>;
  wall_ms: number;
}

/** The VM's command: the compiled script, as `npm run vm` runs it. */
export function vmScript(): string {
  return join(projectRoot(), 'dist', 'scripts', 'vm.js');
}

/** The command a configuration runs: the VM's, or for a trace the replay's (the same VM, the trace as its workload). */
export function runScript(c: RunConfig): string {
  return c.trace !== undefined ? join(projectRoot(), 'dist', 'scripts', 'replay.js') : vmScript();
}

/** A configuration's row: every field but the repeat, in a fixed order (so a merge groups shards' repeats). */
export function configKey(c: RunConfig): string {
  const pool = poolWords(c.pool);
  const knobs = Object.keys(c.knobs).sort().map((k) => `${k}=${c.knobs[k]}`);
  return [`policy=${c.policy}`, pool, `vcpus=${c.vcpus}`, `mem=${c.mem}`, c.trace !== undefined ? `trace=${c.trace}` : `job=${c.job}`, ...(c.runtime !== undefined ? [`runtime=${c.runtime}`] : []), ...knobs, `seed=${c.seed}`].join(' ');
}

/** A pool in a configuration's key: swiotlb=8M, nslabs=3072, or cmdline="swiotlb=4096,8". */
function poolWords(p: RunConfig['pool']): string {
  return 'swiotlb' in p ? `swiotlb=${p.swiotlb}` : 'nslabs' in p ? `nslabs=${p.nslabs}` : `cmdline="${p.cmdline}"`;
}

/** A pool for people: 8M, 3072 slots (6MiB), or the command line. */
export function poolLabel(p: RunConfig['pool']): string {
  return 'swiotlb' in p ? p.swiotlb : 'nslabs' in p ? `${p.nslabs} slots (${formatBytes(p.nslabs * IO_TLB_SIZE)})` : p.cmdline;
}

/** The VM flags of a configuration (the log file and output format are the driver's). */
export function vmArgs(c: RunConfig): string[] {
  const args = [...(c.trace !== undefined ? [c.trace] : ['--job', c.job]), '--vcpus', String(c.vcpus), '--mem', c.mem, '--policy', c.policy, '--seed', String(c.seed)];
  if ('swiotlb' in c.pool) args.push('--swiotlb', c.pool.swiotlb);
  else if ('nslabs' in c.pool) args.push('--exact-nslabs', String(c.pool.nslabs));
  else args.push('--cmdline', c.pool.cmdline);
  if (c.runtime !== undefined) args.push('--runtime', c.runtime);
  for (const k of Object.keys(c.knobs).sort()) args.push(`--${k}`, c.knobs[k]!);
  return args;
}

const TIMELINE_POINTS = 200;

export interface RunOptions {
  /** A child that has not ended this long after it started is killed and its run reported stalled (per run, or one for all). */
  timeoutMs: number | ((c: RunConfig) => number);
  /** Keep the run's log here instead of a temporary file (a test, or --keep-logs). */
  logFile?: string;
}

/**
 * Run one configuration in a child process. Never rejects for the run's own outcome: a VM that stalls,
 * crashes, is killed or prints nonsense gives a record saying so.
 */
export async function runConfig(c: RunConfig, opts: RunOptions): Promise<RunRecord> {
  const dir = opts.logFile === undefined ? mkdtempSync(join(tmpdir(), 'coco-sweep-')) : undefined;
  const logFile = opts.logFile ?? join(dir!, 'run.ndjson');
  const t0 = Date.now();
  const timeoutMs = typeof opts.timeoutMs === 'number' ? opts.timeoutMs : opts.timeoutMs(c);
  try {
    const out = await child(runScript(c), [...vmArgs(c), '--output-format', 'json', '--log-file', logFile, '--log-level', 'info'], timeoutMs);
    const base = { key: configKey(c), config: c, seed: c.seed, exit: out.exit, wall_ms: Date.now() - t0 };
    const line = out.stderr.trim().split('\n').filter((l) => l !== '').at(-1) ?? '';
    let log: { stalls: number; timeline: Timeline; first_event_s: Partial<Record<EventName, number>> } | undefined;
    try {
      log = await readLog(logFile);
    } catch {
      log = undefined; // a child killed before it opened its log
    }
    const stalls = log?.stalls ?? 0;
    if (out.timedOut) {
      return { ...base, status: 'stalled', reason: `no report within ${Math.round(timeoutMs / 1000)} s; the VM was killed`, stalls, ...(log ? { timeline: log.timeline, first_event_s: log.first_event_s } : {}) };
    }
    if (out.exit === 0) {
      try {
        const report = JSON.parse(out.stdout) as RunReport;
        return { ...base, status: 'ok', report, stalls, ...(log ? { timeline: log.timeline, first_event_s: log.first_event_s } : {}) };
      } catch {
        return { ...base, status: 'crashed', reason: `exit 0 but no JSON report on stdout (${out.stdout.length} bytes)`, stalls };
      }
    }
    const reason = line.replace(/^(vm|replay): (error: )?/, '') || (out.signal !== null ? `killed by ${out.signal}` : `exit ${out.exit} with no message`);
    if (out.exit === 2) return { ...base, status: 'input-error', reason, stalls };
    // The VM ends a stalled run with exit 1 and a line that says "stall" (no I/O completing, or the
    // throttle watchdog); any other failure is a crash of the run.
    const status: RunStatus = out.exit === 1 && /\bstall\b/.test(reason) ? 'stalled' : 'crashed';
    return { ...base, status, reason, stalls: Math.max(stalls, status === 'stalled' ? 1 : 0), ...(log ? { timeline: log.timeline, first_event_s: log.first_event_s } : {}) };
  } finally {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  }
}

interface ChildOutcome {
  exit: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

function child(script: string, args: string[], timeoutMs: number): Promise<ChildOutcome> {
  return new Promise((resolve) => {
    let p: ReturnType<typeof spawn>;
    try {
      p = spawn(process.execPath, ['--single-threaded-gc', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      // spawn throws for some failures (ENOMEM on a host out of memory) instead of emitting 'error': the run's own record, not the sweep's end.
      resolve({ exit: null, signal: null, stdout: '', stderr: `vm: error: ${e instanceof Error ? e.message : String(e)}`, timedOut: false });
      return;
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    p.stdout!.on('data', (b: Buffer) => out.push(b));
    p.stderr!.on('data', (b: Buffer) => err.push(b));
    // This child only: SIGINT is the VM's Ctrl-C (it stops, flushes its log, exits 130); SIGKILL 5 s later if it does not go.
    const timer = setTimeout(() => {
      timedOut = true;
      p.kill('SIGINT');
      setTimeout(() => p.kill('SIGKILL'), 5000).unref();
    }, timeoutMs);
    p.on('error', (e) => {
      clearTimeout(timer);
      resolve({ exit: null, signal: null, stdout: '', stderr: `vm: error: ${e.message}`, timedOut });
    });
    p.on('close', (exit, signal) => {
      clearTimeout(timer);
      resolve({ exit, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), timedOut });
    });
  });
}

/** The run's timeline and stall count, read from its log by the analyzer (the one log reader). */
async function readLog(file: string): Promise<{ stalls: number; timeline: Timeline; first_event_s: Partial<Record<EventName, number>> }> {
  const { analysis, chart } = await analyzeFile(file, { chartPoints: TIMELINE_POINTS });
  return {
    stalls: analysis.stalls.total,
    first_event_s: Object.fromEntries(Object.entries(analysis.input.first).map(([e, at]) => [e, at.t_ms / 1000])),
    timeline: { t_s: chart.x_s, io_tlb_used: chart.used_max, hiwater: chart.hiwater, nslabs: chart.nslabs, map_failures_per_s: chart.map_failures_per_s },
  };
}

/**
 * Run configurations K at a time, each in its own child; records come back in the configurations'
 * order. A run the VM refuses as bad input (exit 2) stops the sweep: no further run is started (the
 * others would be refused alike), and the records end at the runs made.
 */
export async function runConfigs(configs: readonly RunConfig[], parallel: number, opts: RunOptions, done?: (r: RunRecord, i: number) => void): Promise<RunRecord[]> {
  const out: (RunRecord | undefined)[] = new Array(configs.length);
  let next = 0;
  let refused = false;
  const lane = async (): Promise<void> => {
    while (next < configs.length && !refused) {
      const i = next++;
      const r = await runConfig(configs[i]!, opts);
      out[i] = r;
      if (r.status === 'input-error') refused = true;
      done?.(r, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(parallel, configs.length)) }, lane));
  return out.filter((r): r is RunRecord => r !== undefined);
}
