// A run log that contains every event in the catalogue, produced through the real logging API: the
// main-thread RunLogger and WorkerLoggers in real worker threads (workers/log-emitter.ts), on a short
// real-time timeline (samples every STEP_MS), shaped like a run that fills the pool, throttles,
// fails maps, stalls and drains again. Until the VM exists this stands in for "a test run".
import { Worker } from 'node:worker_threads';
import { createRunLogger, type LogChannel } from '../../src/log/logger.js';
import { EVENT_NAMES, bootText, tunablePath, type EventFields, type EventName } from '../../src/log/events.js';
import type { AnyEvent, EmitterJob, EmitterMessage } from '../../src/log/emitter.js';
import type { WorkerLogBinding } from '../../src/log/worker-logger.js';
import { workerFile } from '../../src/util/worker-file.js';

export const FIXTURE = Object.freeze({
  nslabs: 32768,
  nareas: 4,
  high: 22937, // floor(32768 * 70 / 100), RFC §15.3
  low: 21299, // floor(32768 * 65 / 100)
  lowAfter: 20000, // low_throttle after the tunable change at step 30
  steps: 40,
  stepMs: 25,
  burst: 1000, // records a worker pushes through a 4 KiB ring with no wait: most are dropped
});

export interface FixtureResult {
  file: string;
  /** Records of each event that reached the log, as counted by the generator. */
  emitted: Record<EventName, number>;
  /** The samples as emitted (for tests that work out expected values themselves). */
  samples: EventFields['sample'][];
  /** The exact counts the run had (the samples' counters and the run_summary's totals): far more than the printed records. */
  counts: { map_failures: number; io_errors: number; packets_dropped: number };
  /** Of these, counted after the last sample (only the run_summary has them). */
  afterLastSample: { map_failures: number; io_errors: number; packets_dropped: number };
  /** Worker records dropped (the burst channel). */
  dropped: number;
}

class Emitter {
  private readonly worker: Worker;
  private readonly ready: Promise<void>;
  private done: Promise<void> | undefined;
  readonly errors: unknown[] = [];

  constructor(channel: LogChannel, bind: WorkerLogBinding, events: AnyEvent[] = [], stay = true) {
    const job: EmitterJob = { channel, bind, events, stay };
    this.worker = new Worker(workerFile('log-emitter'), { workerData: job });
    this.worker.on('error', (e) => this.errors.push(e));
    this.ready = new Promise((resolve) => this.worker.once('message', () => resolve()));
  }

  async send(events: AnyEvent[]): Promise<void> {
    await this.ready;
    this.worker.postMessage({ events } satisfies EmitterMessage);
  }

  /** Last batch, then flush, close and end. */
  async finish(): Promise<void> {
    await this.ready;
    this.done ??= new Promise<void>((resolve, reject) => {
      this.worker.on('message', (m: { finished?: boolean }) => {
        if (m.finished === true) resolve();
      });
      this.worker.once('error', reject);
      this.worker.postMessage({ finish: true } satisfies EmitterMessage);
    });
    await this.done;
    await this.worker.terminate();
  }

  /** For one-shot workers: wait until the worker exits. */
  exited(): Promise<void> {
    return new Promise((resolve) => this.worker.once('exit', () => resolve()));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Used slots at step k: fill to full by step 20, stay full to 26, drain by 1600 a step. */
export function fixtureUsed(k: number): number {
  const { nslabs } = FIXTURE;
  if (k <= 20) return Math.round((nslabs * k) / 20);
  if (k <= 26) return nslabs;
  return nslabs - (k - 26) * 1600;
}

export async function writeFixtureLog(file: string): Promise<FixtureResult> {
  const F = FIXTURE;
  const emitted = Object.fromEntries(EVENT_NAMES.map((e) => [e, 0])) as Record<EventName, number>;
  const log = createRunLogger({ file, level: 'debug', exitHandlers: false, drainIntervalMs: 10, ringBytes: 64 * 1024, fullWaitMs: 1000 });
  const emit = <E extends EventName>(event: E, fields: EventFields[E]): void => {
    log.emit(event, fields);
    emitted[event]++;
  };
  const count = (events: AnyEvent[]): AnyEvent[] => {
    for (const e of events) emitted[e.event]++;
    return events;
  };

  emit('run_config', {
    config: {
      vcpus: 3, mem_bytes: 16 * 2 ** 30, swiotlb_bytes: F.nslabs * 2048, nslabs: F.nslabs, nareas: F.nareas,
      cmdline: `swiotlb=${F.nslabs},${F.nareas},force`, runtime_ms: F.steps * F.stepMs, seed: 1,
      sample_interval_ms: F.stepMs, log_level: 'debug',
      throttle: { enabled: true, high_throttle: F.high, low_throttle: F.low },
      devices: [{ name: 'nvme0', kind: 'nvme', iodepth: 32 }, { name: 'eth0', kind: 'nic' }],
    },
  });
  const base = 0x8000_0000;
  for (const text of [bootText.pciDma(), bootText.areaNum(F.nareas), bootText.mapped(base, F.nslabs), bootText.memEncryption()]) {
    emit('boot_line', { text });
  }
  emit('pool_created', { pool: 0, start: base, nslabs: F.nslabs, nareas: F.nareas, kind: 'default' });

  emit('run_start', { boot_ms: 12, vcpus: 3 });

  const vcpu0 = new Emitter(log.workerChannel('vcpu0'), { vcpu: 0 });
  const vcpu1 = new Emitter(log.workerChannel('vcpu1'), { vcpu: 1 });
  const nvme0 = new Emitter(log.workerChannel('nvme0'), { device: 'nvme0' });

  const samples: EventFields['sample'][] = [];
  const start = performance.now();
  let hiwater = 0;
  let nslabs: number = F.nslabs;
  /** io_tlb_transient_nslabs: the transient pool made at step 22 is never freed. */
  let transient = 0;
  let low: number = F.low;
  let burst: Emitter | undefined;
  // What happened, as a run's exact counters would count it: each full step fails many more maps
  // than the ratelimit prints.
  const counts = { map_failures: 0, io_errors: 0, packets_dropped: 0 };
  for (let k = 1; k <= F.steps; k++) {
    await sleep(F.stepMs);
    const used = fixtureUsed(k);
    hiwater = Math.max(hiwater, used);
    const perArea = Math.floor(used / F.nareas);
    const sample: EventFields['sample'] = {
      t_ms: Math.round(performance.now() - start),
      io_tlb_used: used,
      io_tlb_used_hiwater: hiwater,
      nslabs,
      io_tlb_transient_nslabs: transient,
      area_used: [perArea + (used % F.nareas), perArea, perArea, perArea],
      throttle_queue_len: used > low ? k % 5 : 0,
      iops: 1000 + 50 * k,
      high_throttle: F.high,
      low_throttle: low,
      throttle_held: used > low,
      map_ok: 100 * k,
      ...counts,
    };
    emit('sample', sample);
    samples.push(sample);

    if (used > low) {
      const reason = used > F.high ? 'high' : 'low';
      const t = { device: 'nvme0', size: 65536, used, high_throttle: F.high, low_throttle: low, reason } as const;
      await vcpu0.send(count([
        { event: 'throttle_begin', fields: { vcpu: 0, ...t, queue_len: k % 5 } },
        { event: 'throttle_end', fields: { vcpu: 0, ...t, wait_us: 100 * k } },
      ]));
      await vcpu1.send(count([
        { event: 'throttle_begin', fields: { vcpu: 1, ...t } },
        { event: 'throttle_end', fields: { vcpu: 1, ...t, wait_us: 37 * k * k } },
      ]));
    }
    if (used === F.nslabs) {
      const full = { total: nslabs, used };
      await vcpu0.send(count([1, 2, 3].map(() => ({ event: 'map_failure', fields: { device: 'nvme0', vcpu: 0, size: 65536, dir: 'DMA_TO_DEVICE', ...full } }))));
      await vcpu1.send(count([
        { event: 'map_failure', fields: { device: 'eth0', vcpu: 1, size: 1514, dir: 'DMA_FROM_DEVICE', ...full } },
        { event: 'map_failure', fields: { device: 'eth0', vcpu: 1, size: 1514, dir: 'DMA_TO_DEVICE', ...full } },
        { event: 'packet_dropped', fields: { device: 'eth0', vcpu: 1, size: 1514, dir: 'tx', reason: 'swiotlb buffer is full' } },
      ]));
      await nvme0.send(count([
        { event: 'io_error', fields: { device: 'nvme0', vcpu: 0, op: 'write', offset: 4096 * k, size: 65536, reason: 'swiotlb buffer is full', phys_seg: 16 } },
      ]));
      counts.map_failures += 57;
      counts.io_errors += 19;
      counts.packets_dropped += 5;
    }
    if (k === 15) {
      await vcpu0.send(count([
        { event: 'swiotlb_warn', fields: { text: 'Alloc alignment may prevent fulfilling requests with max mapping_size', device: 'nvme0', vcpu: 0 } },
        { event: 'double_unmap', fields: { device: 'nvme0', vcpu: 0, tlb_addr: base + 4096, size: 4096 } },
        { event: 'bounce_overflow', fields: { device: 'nvme0', vcpu: 0, alloc_size: 2048, mapping_size: 4096 } },
      ]));
    }
    if (k === 22) {
      emit('pool_created', { pool: 1, start: 0x1_0000_0000, nslabs: 64, nareas: 1, kind: 'transient', device: 'nvme0' });
      transient = 64;
      // Guest memory: the transient pool's atomic-pool allocation left the pool low (expanded), and a later one found no room.
      emit('atomic_pool_expanded', { pool: 'GFP_KERNEL', bytes: 2 * 1024 * 1024, phys: 0x1_0040_0000, size: 4 * 1024 * 1024 });
      emit('atomic_pool_exhausted', { device: 'eth0', size: 262144 });
      await vcpu0.send(count([
        { event: 'transient_created', fields: { device: 'eth0', vcpu: 0, start: 0x1_0010_0000, nslabs: 2 } },
        { event: 'transient_freed', fields: { device: 'eth0', vcpu: 0, start: 0x1_0010_0000, nslabs: 2 } },
      ]));
      // A burst through a tiny ring that may not wait: the logger must count and report the drops.
      const events: AnyEvent[] = [];
      for (let i = 0; i < F.burst; i++) {
        events.push({ event: 'map_failure', fields: { device: 'nvme0', vcpu: 2, size: 4096, dir: 'DMA_BIDIRECTIONAL', total: nslabs, used } });
      }
      burst = new Emitter(log.workerChannel('vcpu2', { ringBytes: 4096, fullWaitMs: 0 }), { vcpu: 2 }, events, false);
      await burst.exited();
      counts.map_failures += F.burst;
    }
    if (k === 24) {
      emit('stall', {
        holder: { vcpu: 0, device: 'nvme0', size: 65536 },
        waiters: [{ vcpu: 1, device: 'nvme0', size: 65536, waited_ms: 120 }, { vcpu: 2, device: 'nvme0', size: 4096, waited_ms: 80 }],
        parked_ms: 120, kind: 'timeout',
      });
    }
    if (k === 25) {
      emit('stall', { holder: { vcpu: 0, device: 'nvme0', size: 65536 }, waiters: [{ vcpu: 0, device: 'nvme0', size: 8192, waited_ms: 250 }], parked_ms: 250, kind: 'self_deadlock' });
    }
    if (k === 28) {
      await vcpu1.send(count([{ event: 'worker_error', fields: { thread: 'vcpu1', fatal: false, error: { name: 'InvariantError', message: 'area.used out of range', code: 'EINVARIANT' } } }]));
      nslabs += 2048;
      emit('pool_created', { pool: 2, start: 0x1_4000_0000, nslabs: 2048, nareas: 1, kind: 'dynamic' });
      emit('growth_failed', { reason: 'no free block of order 8 below 4 GiB' });
    }
    if (k === 30) {
      emit('tunable_changed', { name: tunablePath('low_throttle'), old: low, new: F.lowAfter });
      low = F.lowAfter;
    }
  }
  await Promise.all([vcpu0.finish(), vcpu1.finish(), nvme0.finish()]);
  // Failures after the last sample: only the run_summary counts them.
  const afterLastSample = { map_failures: 7, io_errors: 3, packets_dropped: 0 };
  for (const k of ['map_failures', 'io_errors', 'packets_dropped'] as const) counts[k] += afterLastSample[k];
  // The stress harness's records (npm run stress) share the catalogue.
  emit('stress_trial', { trial: 0, seed: 42, mode: 'pct', vcpus: 4, nslabs: 512, nareas: 2, ops: 1000, perturbations: 12, duration_ms: 80, ok: false, failures: 1, pct_steps: 9000, pct_trace: 123456 });
  emit('stress_failure', {
    trial: 0, seed: 42, mode: 'pct', mutant: 'hiwater-no-cas', check: 'cpu 1: used_hiwater fell from 12 to 10 with no reset in between',
    failures: ['cpu 1: used_hiwater fell from 12 to 10 with no reset in between'], config: { seed: 42, vcpus: 4 },
    replay: 'npm run stress -- --replay 42 --mode pct --mutant hiwater-no-cas',
  });
  emit('worker_error', { thread: 'nvme1', device: 'nvme1', fatal: true, error: { name: 'Error', message: 'device thread exited' } });
  emit('run_summary', {
    summary: {
      status: 'ok', runtime_ms: Math.round(performance.now() - start),
      jobs: [{ name: 'randwrite', device: 'nvme0', rw: 'randwrite', bs_bytes: 65536, iodepth: 32, ios: 4000, iops: 4000, bw_bytes_per_s: 4000 * 65536, errors: counts.io_errors, errors_total: counts.io_errors, packets_dropped: counts.packets_dropped, lat_us: { min: 20, mean: 250, p50: 200, p99: 1800, max: 5000 } }],
      swiotlb: { nslabs, used_hiwater: hiwater, map_ok: 4000, map_failures: counts.map_failures },
    },
  });
  const stats = log.stats();
  await log.close();
  const dropped = stats.dropped;
  emitted.map_failure += F.burst - dropped;
  // log_overflow records are written by the logger itself, one per drain that found drops.
  return { file, emitted, samples, dropped, counts, afterLastSample };
}
