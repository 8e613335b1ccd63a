// Assembly of the emulated CoCo VM: boot (size and place the swiotlb, print the kernel's lines), start
// the devices and the vCPUs, watch the run, and gather what happened.
import { MessageChannel, Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { InputError } from '../errors.js';
import { type DeviceConfig } from '../devices/device.js';
import { DEV_COMMANDS, DEV_STOP, DEV_CONTROL_INTS, QueuePair } from '../devices/queue.js';
import { DmaDevice } from '../dma/device.js';
import { LatencyHistogram } from '../report/histogram.js';
import { IO_TLB_SIZE, PAGE_SIZE } from '../swiotlb/constants.js';
import {
  AREA_ACQUIRED, AREA_CONTENDED, AREA_PARKED, AREA_USED, MEM_ENCRYPTION_WARNED, STATS_FIELDS, STAT_NAMES,
} from '../swiotlb/layout.js';
import { IoTlbMem } from '../swiotlb/mem.js';
import { mappedMessage, nslabsFromBytes, parseSwiotlbCmdline, planDefaultPool } from '../swiotlb/sizing.js';
import { nowMs } from '../util/clock.js';
import { workerFile } from '../util/worker-file.js';
import type { FioJob } from '../workload/fio.js';
import { MAX_SG } from '../devices/queue.js';
import { dmaMaxMappingSize } from '../dma/direct.js';
import { INST_FIELDS, type Plan, histogramOffset, histogramsBytes, planWorkload } from './jobs.js';
import type { VmOptions } from './options.js';
import { RUN_CONTROL_INTS, RUN_STOP, type VcpuEvent, type VcpuResult, type VcpuTask, instanceBufferBytes } from './vcpu.js';

/** Private memory starts at 4 GiB; the pool sits at the top of low memory, below the PCI hole. */
const GUEST_BASE = 0x1_0000_0000;
const LOW_MEM_TOP = 0xc000_0000;

export interface VmHooks {
  bootLine(msg: string): void;
  event(e: VcpuEvent): void;
  /** Called at the sample interval while the run goes on. */
  sample(s: VmSample): void;
}

export interface VmSample {
  t_ms: number;
  io_tlb_used: number;
  io_tlb_used_hiwater: number;
  area_used: number[];
  ios: number;
  iops: number;
  map_failures: number;
}

export interface VmBoot {
  mem: IoTlbMem;
  nslabs: number;
  nareas: number;
  poolStart: number;
  bootLines: string[];
}

/** Size and place the default pool as the kernel would, and create it. */
export function bootSwiotlb(opts: VmOptions): VmBoot {
  const bootParam = opts.swiotlbBytes !== undefined
    ? { nslabs: nslabsFromBytes(opts.swiotlbBytes), force: false, noforce: false }
    : parseSwiotlbCmdline(opts.cmdline);
  const plan = planDefaultPool({ cpus: opts.vcpus, memBytes: opts.memBytes, coco: true, bootParam });
  if (plan.disabled) {
    throw new InputError('EBADCMDLINE', 'swiotlb=noforce leaves a CoCo VM without bounce buffers, so no device could do DMA; drop noforce');
  }
  const bytes = plan.nslabs * IO_TLB_SIZE;
  const top = Math.floor(Math.min(opts.memBytes, LOW_MEM_TOP) / PAGE_SIZE) * PAGE_SIZE;
  const start = top - bytes;
  if (start < 0x10_0000) {
    throw new InputError('EBADSIZE', `a ${bytes >> 20} MiB swiotlb does not fit in the guest's low memory (${top >> 20} MiB); use a smaller pool or more --mem`);
  }
  const mem = IoTlbMem.create({ nslabs: plan.nslabs, nareas: plan.nareas, start, forceBounce: plan.forceBounce });
  const bootLines = [
    ...plan.messages,
    mappedMessage(start, plan.nslabs),
    'PCI-DMA: Using software bounce buffering for IO (SWIOTLB)',
    'Memory encryption is active and system is using DMA bounce buffers',
  ];
  // Printed at boot as the first driver maps; the core must not print it again.
  Atomics.store(mem.header, MEM_ENCRYPTION_WARNED, 1);
  return { mem, nslabs: plan.nslabs, nareas: plan.nareas, poolStart: start, bootLines };
}

/** The default workload: every vCPU busy with mixed random storage I/O, verified. */
export function defaultJobs(opts: VmOptions): FioJob[] {
  const bs = { kind: 'split' as const, entries: [
    { bytes: 4096, percent: 50 }, { bytes: 16384, percent: 20 }, { bytes: 65536, percent: 20 }, { bytes: 262144, percent: 10 },
  ] };
  return [{
    name: 'default', line: 0, rw: 'randrw', rwmixread: 70, bs: { read: bs, write: bs }, blocksizeUnaligned: false,
    iodepth: 8, numjobs: opts.vcpus, sizeBytes: 16 * 1024 * 1024, sizePercent: undefined, ioSizeBytes: undefined,
    runtimeMs: opts.runtimeMs, timeBased: true, rampTimeMs: 0,
    rateBytesPerSec: { read: undefined, write: undefined }, rateIops: { read: undefined, write: undefined },
    thinktimeUs: 0, startdelayMs: 0, startdelayMaxMs: 0, stonewall: false, ioengine: 'io_uring', engine: 'storage',
    direct: true, verify: 'crc32c', cpusAllowed: undefined, filename: undefined,
  }];
}

export interface VmRunResult {
  boot: VmBoot;
  plan: Plan;
  jobs: readonly FioJob[];
  wallMs: number;
  runMs: number;
  interrupted: boolean;
  instanceStats: Float64Array;
  histograms: SharedArrayBuffer;
  swiotlbStats: Float64Array;
  vcpuResults: VcpuResult[];
  deviceCommands: number;
}

/** Boot, run and tear down the VM. Rejects (after stopping every thread) if a worker fails. */
export async function runVm(opts: VmOptions, jobs: readonly FioJob[], hooks: VmHooks, signal: AbortSignal): Promise<VmRunResult> {
  const t0 = nowMs();
  const boot = bootSwiotlb(opts);
  for (const line of boot.bootLines) hooks.bootLine(line);
  const probe = new DmaDevice('nvme0', { minAlignMask: 0xfff });
  const plan = planWorkload({
    jobs, vcpus: opts.vcpus, runtimeCapMs: opts.runtimeMs, sizeCapBytes: opts.sizeCapBytes,
    defaultSizeBytes: 64 * 1024 * 1024, seed: opts.seed, maxRequestBytes: MAX_SG * dmaMaxMappingSize(boot.mem, probe),
  });
  if (plan.capacityBytes > 8 * 1024 ** 3) {
    throw new InputError('EBADJOB', `the jobs need ${plan.capacityBytes >> 20} MiB of emulated disk; the emulator holds at most 8 GiB (use --size to cap each job)`);
  }

  // Private memory: each vCPU's buffers, in one SAB that only vCPU threads receive.
  const perCpu = Array.from({ length: opts.vcpus }, () => 0);
  for (const inst of plan.instances) perCpu[inst.cpu]! += instanceBufferBytes(inst);
  const guestOffsets: number[] = [];
  let guestBytes = 0;
  for (const b of perCpu) {
    guestOffsets.push(guestBytes);
    guestBytes += Math.ceil(b / PAGE_SIZE) * PAGE_SIZE;
  }
  if (guestBytes > opts.memBytes) {
    throw new InputError('EBADJOB', `the jobs' I/O buffers need ${guestBytes >> 20} MiB, more than the guest's ${opts.memBytes >> 20} MiB; lower iodepth or bs, or raise --mem`);
  }
  const guest = new SharedArrayBuffer(Math.max(guestBytes, PAGE_SIZE));

  const depth = (cpu: number, engine: 'storage' | 'net') =>
    Math.max(1, plan.instances.filter((i) => i.cpu === cpu && i.engine === engine).reduce((s, i) => s + i.iodepth, 0));
  const nvmeQueues = perCpu.map((_, cpu) => QueuePair.create(depth(cpu, 'storage')).sab);
  const nicQueues = perCpu.map((_, cpu) => QueuePair.create(depth(cpu, 'net')).sab);
  const nvmeControl = new SharedArrayBuffer(DEV_CONTROL_INTS * 4);
  const nicControl = new SharedArrayBuffer(DEV_CONTROL_INTS * 4);
  const pool = boot.mem.defpool;
  const deviceConfigs: DeviceConfig[] = [
    { kind: 'nvme', name: 'nvme0', bounce: pool.shared.data, bounceStart: pool.start, queues: nvmeQueues, control: nvmeControl,
      latencyUs: opts.nvmeLatencyUs, bandwidthBytesPerSec: opts.nvmeBandwidth, capacityBytes: Math.max(plan.capacityBytes, 4096) },
    { kind: 'nic', name: 'eth0', bounce: pool.shared.data, bounceStart: pool.start, queues: nicQueues, control: nicControl,
      latencyUs: 5, bandwidthBytesPerSec: 1.25e9, capacityBytes: 0 },
  ];
  const instanceStatsSab = new SharedArrayBuffer(Math.max(1, plan.instances.length) * INST_FIELDS * 8);
  const histograms = new SharedArrayBuffer(Math.max(1, histogramsBytes(plan.instances.length)));
  const swiotlbStatsSab = new SharedArrayBuffer(opts.vcpus * STATS_FIELDS * 8);
  const runSab = new SharedArrayBuffer(RUN_CONTROL_INTS * 4);
  const run = new Int32Array(runSab);

  const devices = deviceConfigs.map((cfg) => new Worker(workerFile('device'), { workerData: cfg }));
  const deviceDone = devices.map((w, i) => new Promise<{ commands: number }>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', (e) => reject(new Error(`device ${deviceConfigs[i]!.name} failed: ${e.message}`)));
  }));
  const piscina = new Piscina({
    filename: workerFile('vcpu').href, minThreads: opts.vcpus, maxThreads: opts.vcpus, idleTimeout: 60_000,
    concurrentTasksPerWorker: 1, maxQueue: opts.vcpus,
  });
  const ports: MessageChannel[] = [];
  const stopAll = () => {
    Atomics.store(run, RUN_STOP, 1);
    for (const c of [nvmeControl, nicControl]) Atomics.store(new Int32Array(c), DEV_STOP, 1);
  };
  signal.addEventListener('abort', () => Atomics.store(run, RUN_STOP, 1), { once: true });

  const runStart = nowMs();
  const tasks = perCpu.map((_, cpu) => {
    const ch = new MessageChannel();
    ports.push(ch);
    ch.port1.on('message', (batch: VcpuEvent[]) => { for (const e of batch) hooks.event(e); });
    const task: VcpuTask = {
      cpu, mem: boot.mem.shared(), guest, guestBase: GUEST_BASE, guestOffset: guestOffsets[cpu]!, guestBytes: perCpu[cpu]!,
      nvmeQueue: nvmeQueues[cpu]!, nvmeControl, nicQueue: nicQueues[cpu]!, nicControl,
      instances: plan.instances.filter((i) => i.cpu === cpu), groupSizes: plan.groupSizes,
      instanceStats: instanceStatsSab, histograms, swiotlbStats: swiotlbStatsSab, run: runSab, logPort: ch.port2,
    };
    return piscina.run(task, { transferList: [ch.port2] }) as Promise<VcpuResult>;
  });

  // Watch: samples, and a watchdog that turns a silent stall into a report instead of a hang.
  const instanceStats = new Float64Array(instanceStatsSab);
  const swiotlbStats = new Float64Array(swiotlbStatsSab);
  const nvmeCtl = new Int32Array(nvmeControl);
  const nicCtl = new Int32Array(nicControl);
  let lastIos = 0;
  let lastT = runStart;
  let lastProgressAt = runStart;
  let lastCommands = 0;
  let stalled: string | null = null;
  const ticker = setInterval(() => {
    const t = nowMs();
    const ios = totalIos(instanceStats, plan.instances.length);
    const commands = Atomics.load(nvmeCtl, DEV_COMMANDS) + Atomics.load(nicCtl, DEV_COMMANDS);
    if (commands !== lastCommands || ios !== lastIos) lastProgressAt = t;
    lastCommands = commands;
    const area_used: number[] = [];
    for (let a = 0; a < pool.nareas; a++) area_used.push(pool.areas[pool.areaBase(a) + AREA_USED]!);
    const d = boot.mem.debugfs();
    hooks.sample({
      t_ms: Math.round(t - runStart), io_tlb_used: d.io_tlb_used, io_tlb_used_hiwater: d.io_tlb_used_hiwater, area_used,
      ios, iops: Math.round(((ios - lastIos) * 1000) / Math.max(1, t - lastT)), map_failures: boot.mem.mapFailures(),
    });
    lastIos = ios;
    lastT = t;
    if (t - lastProgressAt > opts.stallMs && stalled === null) {
      stalled = `no I/O completed for ${Math.round((t - lastProgressAt) / 1000)} s with io_tlb_used ${d.io_tlb_used} of ${boot.nslabs} slots`;
      stopAll();
    }
  }, opts.sampleIntervalMs);

  let vcpuResults: VcpuResult[];
  try {
    vcpuResults = await Promise.all(tasks);
  } catch (e) {
    stopAll();
    clearInterval(ticker);
    await Promise.allSettled(tasks);
    await piscina.destroy();
    await Promise.all(devices.map((w) => w.terminate()));
    for (const c of ports) c.port1.close();
    throw e;
  }
  const runMs = nowMs() - runStart;
  clearInterval(ticker);
  stopAll();
  const devResults = await Promise.all(deviceDone);
  await piscina.destroy();
  // Let the last log batches arrive before the ports close.
  await new Promise((r) => setImmediate(r));
  for (const c of ports) c.port1.close();
  if (stalled !== null) throw new Error(`stall: ${stalled}`);
  return {
    boot, plan, jobs, wallMs: nowMs() - t0, runMs, interrupted: signal.aborted, instanceStats, histograms, swiotlbStats,
    vcpuResults, deviceCommands: devResults.reduce((s, r) => s + r.commands, 0),
  };
}

function totalIos(stats: Float64Array, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += stats[i * INST_FIELDS]! + stats[i * INST_FIELDS + 2]!;
  return s;
}

/** Sum every vCPU's swiotlb statistics block, by the statistics' names. */
export function sumSwiotlbStats(stats: Float64Array, vcpus: number): Record<(typeof STAT_NAMES)[number], number> {
  const out = {} as Record<(typeof STAT_NAMES)[number], number>;
  STAT_NAMES.forEach((name, k) => {
    let s = 0;
    for (let c = 0; c < vcpus; c++) s += stats[c * STATS_FIELDS + k]!;
    out[name] = s;
  });
  return out;
}

/** Per-area lock counters of the default pool. */
export function areaContention(mem: IoTlbMem): { area: number; acquired: number; contended: number; parked: number }[] {
  const pool = mem.defpool;
  const out = [];
  for (let a = 0; a < pool.nareas; a++) {
    const b = pool.areaBase(a);
    out.push({ area: a, acquired: pool.areas[b + AREA_ACQUIRED]!, contended: pool.areas[b + AREA_CONTENDED]!, parked: pool.areas[b + AREA_PARKED]! });
  }
  return out;
}

/** A merged histogram over several instances' histograms of one direction. */
export function mergedHistogram(sab: SharedArrayBuffer, ids: number[], dir: 'read' | 'write'): LatencyHistogram {
  const out = LatencyHistogram.create();
  for (const id of ids) LatencyHistogram.merge(out, new LatencyHistogram(sab, histogramOffset(id, dir)));
  return out;
}
