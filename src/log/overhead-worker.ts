// Worker side of the logging-overhead benchmark (src/log/overhead.ts): the loops that time
// WorkerLogger.emit.
import type { LogChannel } from './logger.js';
import { attachWorkerLogger } from './worker-logger.js';

export type OverheadKind = 'emit' | 'burst';

export interface OverheadJob {
  channel: LogChannel;
  kind: OverheadKind;
  /** map_failure (warn: written at the default level) or throttle_begin (debug: filtered out). */
  event: 'map_failure' | 'throttle_begin';
  vcpu: number;
  /** emit: rounds of `batches` batches of `batchSize` emits; the ring is drained between batches, so no wait is timed. */
  rounds: number;
  batches: number;
  batchSize: number;
  /** burst: back-to-back emits with no pause (ring back-pressure included). */
  records: number;
}

export interface OverheadOutcome {
  /** Mean ns per emit of each round. */
  nsPerEmitRounds?: number[];
  recordsPerS?: number;
}

const NSLABS = 32768;

export async function runOverheadJob(job: OverheadJob): Promise<OverheadOutcome> {
  const log = await attachWorkerLogger(job.channel, { vcpu: job.vcpu });
  // The fields object is built at the call site, as the core will build it: that is part of the cost.
  const emitOne = (i: number): void => {
    if (job.event === 'map_failure') {
      log.emit('map_failure', { device: 'nvme0', vcpu: job.vcpu, size: 4096 + (i & 63) * 2048, dir: 'DMA_TO_DEVICE', total: NSLABS, used: NSLABS - (i & 127) });
    } else {
      log.emit('throttle_begin', { vcpu: job.vcpu, device: 'nvme0', size: 65536, used: 30000 + (i & 127), high_throttle: 22937, low_throttle: 21299, reason: 'high' });
    }
  };
  let out: OverheadOutcome;
  if (job.kind === 'emit') {
    const rounds: number[] = [];
    for (let r = 0; r < job.rounds; r++) {
      let ns = 0;
      for (let b = 0; b < job.batches; b++) {
        const t0 = process.hrtime.bigint();
        for (let i = 0; i < job.batchSize; i++) emitOne(b * job.batchSize + i);
        ns += Number(process.hrtime.bigint() - t0);
        await log.flush();
      }
      rounds.push(ns / (job.batches * job.batchSize));
    }
    out = { nsPerEmitRounds: rounds };
  } else {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < job.records; i++) emitOne(i);
    const ns = Number(process.hrtime.bigint() - t0);
    out = { recordsPerS: job.records / (ns / 1e9) };
  }
  await log.flush();
  log.close();
  return out;
}
