// What logging costs a worker thread: WorkerLogger.emit timed with logging off (no ring: the call
// returns at once), filtered (a debug event at the default info level: one level check) and on (a
// warn event that pino formats in the worker and the ring carries to the main thread). The cost of
// logging in a run is then (events per second) x (ns per emit); a vCPU under pool exhaustion emits
// a few thousand map_failure records per second. scripts/bench-log.ts prints it; `npm run bench`
// can call it once the core exists.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runWorkers } from '../util/threads.js';
import { createRunLogger, type RunLoggerStats } from './logger.js';
import type { OverheadJob, OverheadOutcome } from './overhead-worker.js';

export type OverheadMode = 'off' | 'filtered' | 'on';

export interface OverheadOptions {
  /** Worker threads emitting at once (default 1). */
  workers?: number;
  /** Emits per round per worker (default 50,000), in rounds (default 5). */
  emits?: number;
  rounds?: number;
  /** Back-to-back records per worker in the burst test (default 200,000). */
  burst?: number;
}

export interface OverheadRow {
  mode: OverheadMode;
  /** Median over rounds of the mean cost of one emit in the worker (ring drained between batches). */
  nsPerEmit: number;
  /** Fastest and slowest round. */
  nsPerEmitMin: number;
  nsPerEmitMax: number;
  /** Sustained records/s per worker emitting back to back (ring back-pressure included). */
  burstRecordsPerS: number;
  /** Logger counters after the burst: waits for ring room, records dropped. */
  burstStats: RunLoggerStats;
}

export interface OverheadReport {
  workers: number;
  rows: OverheadRow[];
}

/** Share of one thread's time spent logging at `eventsPerS` events per second, in percent. */
export function loggingCpuPct(nsPerEmit: number, eventsPerS: number): number {
  return (nsPerEmit * eventsPerS) / 1e7;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export async function measureLoggingOverhead(opts: OverheadOptions = {}): Promise<OverheadReport> {
  const workers = opts.workers ?? 1;
  const emits = opts.emits ?? 50_000;
  const rounds = opts.rounds ?? 5;
  const burst = opts.burst ?? 200_000;
  const batchSize = 500; // ~120 KB of records: fits the default 256 KiB ring, so no waits are timed
  const dir = mkdtempSync(join(tmpdir(), 'coco-bench-log-'));
  const rows: OverheadRow[] = [];
  try {
    for (const mode of ['off', 'filtered', 'on'] as const) {
      const event = mode === 'filtered' ? 'throttle_begin' : 'map_failure';
      const one = async (kind: OverheadJob['kind']): Promise<{ out: OverheadOutcome[]; stats: RunLoggerStats }> => {
        const log = mode === 'off'
          ? createRunLogger({ level: 'info' })
          : createRunLogger({ level: 'info', file: join(dir, `${mode}-${kind}.ndjson`), exitHandlers: false });
        const jobs = Array.from({ length: workers }, (_, v): OverheadJob => ({
          channel: log.workerChannel(`vcpu${v}`), kind, event, vcpu: v,
          rounds, batches: Math.ceil(emits / batchSize), batchSize, records: burst,
        }));
        const out = await runWorkers<OverheadOutcome>('log-bench', jobs);
        await log.flush();
        const stats = log.stats();
        await log.close();
        return { out, stats };
      };
      const e = await one('emit');
      const b = await one('burst');
      const all = e.out.flatMap((o) => o.nsPerEmitRounds!);
      rows.push({
        mode,
        nsPerEmit: median(all),
        nsPerEmitMin: Math.min(...all),
        nsPerEmitMax: Math.max(...all),
        burstRecordsPerS: b.out.reduce((a, o) => a + o.recordsPerS!, 0) / b.out.length,
        burstStats: b.stats,
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { workers, rows };
}
