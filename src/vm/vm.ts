// Assembly of the emulated CoCo VM: boot (size and place the swiotlb, print the kernel's lines), start
// the devices and the vCPUs, watch the run, and gather what happened.
import { MessageChannel, Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RunLogger } from '../log/index.js';
import { Piscina } from 'piscina';
import { InputError } from '../errors.js';
import { type DeviceConfig, type DeviceResult, stopDevice } from '../devices/device.js';
import { DEV_COMMANDS, DEV_CONTROL_INTS, DEV_PASSES, QueuePair } from '../devices/queue.js';
import { DmaDevice } from '../dma/device.js';
import { LatencyHistogram } from '../report/histogram.js';
import { IO_TLB_SEGSIZE, IO_TLB_SIZE, PAGE_SIZE, alignUp, roundupPowOfTwo } from '../swiotlb/constants.js';
import { GUEST_BASE } from '../memory/guest.js';
import { type GuestMemoryBoot, bootGuestMemory, startGuestMemoryThreads } from '../memory/boot.js';
import type { AtomicPoolStats } from '../memory/atomic-pool.js';
import type { ChurnStats } from '../memory/churn.js';
import { LOW_RESERVED_BYTES, PHYS_4G, ZONE_DMA32, type ZoneFree } from '../memory/phys.js';
import {
  AREA_ACQUIRED, AREA_CONTENDED, AREA_PARKED, MEM_ENCRYPTION_WARNED, STATS_STRIDE, STAT_NAMES,
} from '../swiotlb/layout.js';
import { IoTlbMem } from '../swiotlb/mem.js';
import { type RestrictedMem, createRestrictedMem, reserveRestrictedPools, restrictedText } from '../swiotlb/restricted.js';
import { type BounceWindowShared, X86_COCO_PHYS_LIMIT } from '../swiotlb/dynamic.js';
import type { GrowthWorkerTask } from '../swiotlb/dyn-worker.js';
import { THROTTLE_HIGH_PERCENT, THROTTLE_LOW_PERCENT, ThrottleStats, type ThrottleSnapshot } from '../swiotlb/throttle.js';
import { type ThrottleThreshold, thresholdSlots } from './options.js';
import { type PoolPlan, defaultSizeWarning, nslabsFromBytes, parseSwiotlbCmdline, planDefaultPool } from '../swiotlb/sizing.js';
import { bootText } from '../log/events.js';
import { nowMs, setTimeScale, wallMs } from '../util/clock.js';
import { formatBytes } from '../util/units.js';
import { CmaArea } from '../memory/cma.js';
import { workerFile } from '../util/worker-file.js';
import { type FioJob, parseFioJobFile } from '../workload/fio.js';
import { MAX_SG } from '../devices/queue.js';
import { dmaMaxMappingSize } from '../dma/direct.js';
import { createWriteIologs, scanJobIologs } from './iolog-replay.js';
import { IologSink } from './iolog-write.js';
import { type HistogramKind, INST_FIELDS, type Plan, histogramOffset, histogramsBytes, planWorkload } from './jobs.js';
import type { VmOptions } from './options.js';
import type { PolicyName } from './policy.js';
import { ControlPlane } from './control.js';
import type { ReplayVcpuTask } from '../trace/replay-vcpu.js';
import { DmaTraceFile } from '../trace/writer.js';
import { parseNvmePollQueues, polledQueueStates, polledQueuesText } from './polling.js';
import { type RunPhase, plannedIsExact, plannedRunMs, ratePerSec, workloadCounters, workloadPhase } from './run-state.js';
import { NVME_MIN_ALIGN_MASK, RUN_CONTROL_INTS, RUN_GO, RUN_READY, RUN_STOP, type VcpuResult, type VcpuTask, instanceBufferBytes } from './vcpu.js';

/** How long threads get to finish after the run is stopped before they are terminated. */
const TEARDOWN_MS = 5000;



export interface VmHooks {
  /** The run log: runVm writes boot lines, the pool, samples, tunable changes and worker errors. */
  log: RunLogger;
  /** A kernel boot line, for the console. */
  bootLine(msg: string): void;
  /** The emulator's own warning about the boot (why the pool's size differs from the one asked for). */
  warning?(msg: string): void;
  /** Called at the sample interval while the run goes on (the progress display). */
  sample(s: VmSample): void;
  /** npm run replay: the vCPUs replay a kernel trace instead of the jobs (src/trace/replay.ts). */
  replay?: VmReplayHook;
  /** The run left boot (running, at the start barrier) or its I/O ended (teardown: the vCPUs stop, the threads are stopped). */
  phase?(p: { phase: 'running' | 'teardown'; plannedMs: number; plannedExact: boolean }): void;
}

/** A replayed trace as the run's workload: the private bytes each vCPU needs, and each vCPU's task. */
export interface VmReplayHook {
  bufferBytes: number;
  task(cpu: number, guestOffset: number): ReplayVcpuTask;
}

/**
 * One sample of the run, taken at one instant: the counters are cumulative (since the start
 * barrier), the rates are over the interval since the previous sample's counters. The log's sample
 * record carries all of it (and the throttle state); add a counter here and it is logged.
 */
export interface VmSample {
  /** Milliseconds since the start barrier (the run's clock). */
  t_ms: number;
  phase: RunPhase;
  io_tlb_used: number;
  io_tlb_used_hiwater: number;
  /** io_tlb_nslabs. */
  nslabs: number;
  /** area->used of each area of the default pool, and its high-water mark (AREA_USED_HIWATER). */
  area_used: number[];
  area_used_hiwater: number[];
  /** I/Os completed, and the bytes they moved (after each job's ramp, as the report counts them). */
  ios: number;
  bytes: number;
  /** ios and bytes per second over the interval since the previous sample. */
  iops: number;
  bw_bytes_per_s: number;
  /** Failed maps (all causes, the default allocator's and every restricted pool's), storage requests failed, packets dropped: the exact counts the ratelimited records sample. */
  map_failures: number;
  io_errors: number;
  packets_dropped: number;
}

export interface VmBoot {
  mem: IoTlbMem;
  nslabs: number;
  nareas: number;
  poolStart: number;
  bootLines: string[];
  /** Guest physical memory, the decrypted arena and the atomic pools (src/memory/boot.ts). */
  guest: GuestMemoryBoot;
  /** The emulator's own warnings about the boot (not kernel lines): why a size differs from the one asked for. */
  warnings: string[];
  /** Restricted DMA pools (--restricted-pool): each device's own io_tlb_mem (swiotlb/restricted.ts). */
  restricted: RestrictedMem[];
  /** The allocator's policy (policy.ts). */
  policy: PolicyName;
  /** [proposal] --policy cma: the CMA area dynamic pools grow into (memory/cma.ts), else null. */
  cma: CmaArea | null;
}

/** Size and place the default pool as the kernel would, and create it. */
export function bootSwiotlb(opts: VmOptions, jobs: readonly FioJob[] = []): VmBoot {
  // --swiotlb gives the slot count; the command line's areas and force still apply.
  const cmdline = parseSwiotlbCmdline(opts.cmdline);
  const bootParam = opts.swiotlbBytes !== undefined ? { ...cmdline, nslabs: nslabsFromBytes(opts.swiotlbBytes) } : cmdline;
  const sizing = { cpus: opts.vcpus, memBytes: opts.memBytes, coco: true, bootParam };
  const plan = opts.exactNslabs !== undefined ? exactPool(opts.exactNslabs, opts.vcpus) : planDefaultPool(sizing);
  const warning = opts.exactNslabs !== undefined ? undefined : defaultSizeWarning(sizing, plan, opts.swiotlbBytes !== undefined ? '--swiotlb' : 'swiotlb=');
  if (plan.disabled) {
    throw new InputError('EBADCMDLINE', 'swiotlb=noforce leaves a CoCo VM without bounce buffers, so no device could do DMA; drop noforce');
  }
  const bytes = plan.nslabs * IO_TLB_SIZE;
  // Guest memory boots around the pool: swiotlb_memblock_alloc takes it with memblock_alloc_low(bytes,
  // PAGE_SIZE), top-down below 4 GiB (ARCH_LOW_ADDRESS_LIMIT), before the buddy allocator serves.
  // Reserved-memory nodes (restricted DMA pools) are placed by memblock before swiotlb_init.
  const guest = bootGuestMemory(opts, (phys) => {
    // [proposal] --policy cma: the CMA area, reserved as dma_contiguous_reserve does, before swiotlb's pool.
    const cma = opts.policy === 'cma' ? CmaArea.reserve(phys, opts.cmaBytes, PHYS_4G) : null;
    const rmem = reserveRestrictedPools(phys, opts.restrictedPools);
    try {
      return { start: phys.memblockAllocLow(bytes, PAGE_SIZE, PHYS_4G), rmem, cma };
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
      throw new InputError('EBADSIZE', `a ${bytes >> 20} MiB swiotlb does not fit in the guest's low memory (${(phys.zoneRange(ZONE_DMA32).end - LOW_RESERVED_BYTES) >> 20} MiB of RAM below 4 GiB); use a smaller pool or more --mem`);
    }
  });
  const start = guest.reserved.start;
  const rmem = guest.reserved.rmem;
  const cma = guest.reserved.cma;
  // [proposal] hybrid waits on the throttling RFC's semaphore and thresholds (hybrid.ts).
  const hybrid = opts.policy === 'hybrid';
  const throttle = opts.throttle || hybrid
    ? {
        enabled: true,
        ...(opts.highThrottle !== undefined ? { highThrottle: thresholdSlots(opts.highThrottle, plan.nslabs) } : {}),
        ...(opts.lowThrottle !== undefined ? { lowThrottle: thresholdSlots(opts.lowThrottle, plan.nslabs) } : {}),
      }
    : { enabled: false };
  // Dynamic swiotlb: pools added later take their pages from the buddy allocator below phys_limit,
  // their bytes from the decrypted arena, and transient pools from the atomic pool.
  const mem = IoTlbMem.create({
    nslabs: plan.nslabs, nareas: plan.nareas, start, forceBounce: plan.forceBounce, memEncrypt: true, throttle,
    canGrow: opts.swiotlbDynamic, lockSpins: opts.lockSpins, parkTimeoutMs: opts.lockParkTimeoutMs,
    ...(opts.swiotlbDynamic ? {
      dynamic: {
        headroomBytes: guest.arena.capacityBytes, defaultNslabs: plan.nslabs, physLimit: X86_COCO_PHYS_LIMIT,
        maxTransient: maxTransientPools(jobs), arena: guest.arena.shared.data, growLimitSlabs: growLimitSlabs(opts, plan.nslabs),
        ...(cma !== null ? { reservedSlabs: cma.pages * (PAGE_SIZE / IO_TLB_SIZE) } : {}),
      },
    } : {}),
    ...(hybrid ? {
      hybrid: {
        timeoutMs: opts.hybridTimeoutMs, nslabs: plan.nslabs, decryptLatencyNsPerMiB: guest.decryptLatencyNsPerMiB,
        highPercent: thresholdPercent(opts.highThrottle, THROTTLE_HIGH_PERCENT), lowPercent: thresholdPercent(opts.lowThrottle, THROTTLE_LOW_PERCENT),
      },
    } : {}),
  }, opts.swiotlbDynamic ? { memory: { phys: guest.phys, arena: guest.arena, atomicPool: guest.atomicPool } } : {});
  // Each restricted device's probe: rmem_swiotlb_device_init (never can_grow), then the assignment line.
  const restricted = rmem.regions.map((region) => createRestrictedMem(region, { cpus: opts.vcpus, lockSpins: opts.lockSpins, parkTimeoutMs: opts.lockParkTimeoutMs }));
  const bootLines = [
    ...rmem.bootLines, ...plan.messages, bootText.mapped(start, plan.nslabs), bootText.pciDma(), bootText.memEncryption(), ...guest.bootLines, ...guest.notes,
    ...restricted.map((r) => restrictedText.assigned(r.device, r.name)),
  ];
  // The core prints the last line at the first bounce; the VM prints it with the boot lines, as the
  // first driver maps during boot, so the core must not print it again.
  Atomics.store(mem.header, MEM_ENCRYPTION_WARNED, 1);
  return { mem, nslabs: plan.nslabs, nareas: plan.nareas, poolStart: start, bootLines, guest, warnings: warning !== undefined ? [warning] : [], restricted, policy: opts.policy, cma };
}

/** [proposal] --grow-limit in slots (grow-limit.ts): it counts the default pool, so it cannot be smaller. */
function growLimitSlabs(opts: VmOptions, nslabs: number): number {
  if (opts.growLimitBytes === undefined) return 0;
  if (opts.growLimitBytes < nslabs * IO_TLB_SIZE) {
    throw new InputError('EBADSIZE', `--grow-limit: ${formatBytes(opts.growLimitBytes)} is below the default pool's ${formatBytes(nslabs * IO_TLB_SIZE)}, which it counts; expected at least ${formatBytes(nslabs * IO_TLB_SIZE)}`);
  }
  return opts.growLimitBytes / IO_TLB_SIZE;
}

/** [proposal] Hybrid thresholds follow io_tlb_nslabs as a percentage; a slot count stays fixed (null). */
function thresholdPercent(t: ThrottleThreshold | undefined, dflt: number): number | null {
  if (t === undefined) return dflt;
  return 'percent' in t ? t.percent : null;
}

/** Start the growth worker thread; stop() sets the teardown word and waits for it (terminated after TEARDOWN_MS). */
function startGrowthWorker(boot: VmBoot, log: RunLogger, onError: (e: unknown) => void): { stop(): Promise<void> } {
  const task: GrowthWorkerTask = {
    mem: boot.mem.shared(), phys: boot.guest.phys.shared, arena: boot.guest.arena.shared, atomicPool: boot.guest.atomicPool.shared,
    decryptLatencyNsPerMiB: boot.guest.decryptLatencyNsPerMiB, parkMs: GROWTH_WORKER_PARK_MS, log: log.workerChannel('kworker/swiotlb_dyn'),
    ...(boot.cma !== null ? { cma: boot.cma.shared } : {}),
  };
  const w = new Worker(workerFile('swiotlb-dyn'), { workerData: task });
  const done = new Promise<void>((resolve) => {
    w.once('message', () => resolve());
    w.once('error', (e) => {
      onError(e);
      resolve();
    });
    w.once('exit', () => resolve());
  });
  return {
    async stop() {
      boot.mem.dyn!.stop();
      await Promise.race([done, sleep(TEARDOWN_MS, null, { ref: false })]);
      await w.terminate();
    },
  };
}

/** The growth worker's longest park: how often it runs the grace-period reclaim of transient pools when idle. */
const GROWTH_WORKER_PARK_MS = 5;

/**
 * Transient pools that can exist at once: at most one per mapping in flight, and a job clone has at
 * most iodepth requests in flight, each of at most MAX_SG data entries and one metadata buffer; twice
 * that covers the ones in their grace period, and 256 the thread that maps alone (tests, tools).
 */
export function maxTransientPools(jobs: readonly FioJob[]): number {
  return 256 + 2 * jobs.reduce((s, j) => s + j.iodepth * j.numjobs * (MAX_SG + 1), 0);
}

/**
 * [emulator] --exact-nslabs: the kernel's areas (the vCPUs rounded up to a power of two)
 * over exactly nslabs slots, without round_up_default_nslabs. Every area gets the same whole number of
 * segments, so no slot lies beyond nareas * area_nslabs, unsearched.
 */
export function exactPool(nslabs: number, cpus: number): PoolPlan {
  const nareas = roundupPowOfTwo(cpus);
  const step = IO_TLB_SEGSIZE * nareas;
  if (nslabs % step !== 0) {
    throw new InputError('EBADSIZE', `--exact-nslabs: ${nslabs} slots is not a whole number of segments per area; expected a multiple of ${step} (128 slots x ${nareas} areas)`);
  }
  return { nslabs, nareas, forceBounce: true, disabled: false, messages: [bootText.areaNum(nareas)] };
}

/** The default workload: every vCPU busy with mixed random storage I/O, verified (a fio job, like any other). */
export function defaultJobs(opts: VmOptions): readonly FioJob[] {
  const text = [
    '[default]', 'ioengine=io_uring', 'direct=1', 'rw=randrw', 'rwmixread=70', 'bssplit=4k/50:16k/20:64k/20:256k/10',
    'iodepth=8', `numjobs=${opts.vcpus}`, 'group_reporting', 'size=16M', 'time_based', `runtime=${opts.runtimeMs}ms`, 'verify=crc32c',
  ].join('\n');
  return parseFioJobFile(text, 'the default workload').jobs;
}

export interface VmRunResult {
  boot: VmBoot;
  plan: Plan;
  jobs: readonly FioJob[];
  wallMs: number;
  /** From the start of boot until every vCPU waits at the start barrier. */
  bootMs: number;
  runMs: number;
  interrupted: boolean;
  instanceStats: Float64Array;
  histograms: SharedArrayBuffer;
  swiotlbStats: Float64Array;
  /** [RFC] Per-vCPU throttle statistics (waits, wait-time and overshoot histograms). */
  throttleStats: ThrottleStats[];
  vcpuResults: VcpuResult[];
  deviceCommands: number;
  /** Passes of the device loops (each one clock read): the devices' host cost, per command served. */
  devicePasses: number;
  /** Each device thread's own figures (empty when a device did not report: it failed or did not stop). */
  deviceThreads: (DeviceResult & { name: string })[];
  /** --time-scale K: runMs and every reported time are emulated (wall / K); bootMs and wallMs are wall time. */
  timeScale: number;
  /** The process's CPU time (every thread, user + system) from the start of boot to the end, of it in boot, and its peak RSS. */
  cpuMs: number;
  cpuBootMs: number;
  maxRssBytes: number;
  /** Names of the tunables --tune changed during the run. */
  tuned: string[];
  /** nvme.poll_queues from the command line (polling.ts). */
  nvmePollQueues: number;
  /** --trace-file: the file, the lines written and the lines lost (a vCPU's trace ring stayed full). */
  dmaTrace: { file: string; events: number; lost: number } | null;
  /** Guest memory at the end: free blocks per zone and order, the atomic pools' statistics. */
  guestEnd: { free: ZoneFree[]; atomicPool: AtomicPoolStats; churn: ChurnStats | null };
}

/** Boot, run and tear down the VM. Rejects (after stopping every thread, log written) if a worker fails. */
export async function runVm(opts: VmOptions, jobs: readonly FioJob[], hooks: VmHooks, signal: AbortSignal): Promise<VmRunResult> {
  // The run's clock (--time-scale K): this thread's reads of it (samples, the throttle snapshot's
  // waits) must match the vCPUs' and the devices'. Boot and the watchdogs are wall time.
  setTimeScale(opts.timeScale);
  const k = opts.timeScale;
  const t0 = wallMs();
  const cpu0 = process.cpuUsage();
  const log = hooks.log;
  const boot = bootSwiotlb(opts, jobs);
  const pool = boot.mem.defpool;
  const probe = new DmaDevice('nvme0', { minAlignMask: NVME_MIN_ALIGN_MASK });
  const nvmePollQueues = parseNvmePollQueues(opts.cmdline);
  const plan = planWorkload({
    jobs, vcpus: opts.vcpus, runtimeCapMs: opts.runtimeMs, sizeCapBytes: opts.sizeCapBytes,
    defaultSizeBytes: 64 * 1024 * 1024, seed: opts.seed, maxRequestBytes: MAX_SG * dmaMaxMappingSize(boot.mem, probe), nvmePollQueues,
    iologs: scanJobIologs(jobs),
  });
  if (plan.capacityBytes > 8 * 1024 ** 3) {
    throw new InputError('EBADJOB', `the jobs need ${plan.capacityBytes >> 20} MiB of emulated disk; the emulator holds at most 8 GiB (use --size to cap each job)`);
  }

  // Private memory: each vCPU's buffers, in one SAB that only vCPU threads receive.
  const perCpu = Array.from({ length: opts.vcpus }, () => 0);
  for (const inst of plan.instances) perCpu[inst.cpu]! += instanceBufferBytes(inst);
  if (hooks.replay !== undefined) for (let c = 0; c < perCpu.length; c++) perCpu[c]! += hooks.replay.bufferBytes;
  const guestOffsets: number[] = [];
  let guestBytes = 0;
  for (const b of perCpu) {
    guestOffsets.push(guestBytes);
    guestBytes += alignUp(b, PAGE_SIZE);
  }
  if (guestBytes > opts.memBytes) {
    throw new InputError('EBADJOB', `the jobs' I/O buffers need ${guestBytes >> 20} MiB, more than the guest's ${opts.memBytes >> 20} MiB; lower iodepth or bs, or raise --mem`);
  }
  const guest = new SharedArrayBuffer(Math.max(guestBytes, PAGE_SIZE));

  const depth = (cpu: number, engine: 'storage' | 'net', polled = false) =>
    Math.max(1, plan.instances.filter((i) => i.cpu === cpu && i.engine === engine && i.polled === polled).reduce((s, i) => s + i.iodepth, 0));
  const nvmeQueues = perCpu.map((_, cpu) => QueuePair.create(depth(cpu, 'storage')).sab);
  const nicQueues = perCpu.map((_, cpu) => QueuePair.create(depth(cpu, 'net')).sab);
  // NVMe poll queues (polling.ts): one per vCPU that runs a polled job; nvme0 serves them after its
  // interrupt-driven queues.
  const pollQueues = perCpu.map((_, cpu) => (plan.instances.some((i) => i.cpu === cpu && i.polled) ? QueuePair.create(depth(cpu, 'storage', true)) : null));
  const pollQueueSabs = pollQueues.flatMap((q) => (q !== null ? [q.sab] : []));
  const nvmeControl = new SharedArrayBuffer(DEV_CONTROL_INTS * 4);
  const nicControl = new SharedArrayBuffer(DEV_CONTROL_INTS * 4);
  // The main thread's handle writes tunables; its warnings (low_throttle > high_throttle) go to the log.
  boot.mem.events = (e) => {
    if (e.event === 'swiotlb_warn') log.emit('swiotlb_warn', { text: e.msg });
  };
  const control = new ControlPlane(boot.mem, log);
  // --trace-file: timestamps count from the start of boot, on the run's clock.
  const dmaTrace = opts.traceFile !== undefined ? new DmaTraceFile(opts.traceFile, opts.vcpus, t0 / k) : null;
  const deviceChannels = [new MessageChannel(), new MessageChannel()];
  const fault = opts.injectFault;
  const faultAt = (thread: string) => (fault !== undefined && fault.thread === thread ? fault.atMs : undefined);
  const memShared = boot.mem.shared();
  const bounceWindow: BounceWindowShared = {
    data: pool.shared.data, start: pool.start, ...(memShared.dyn !== undefined ? { header: memShared.header, dyn: memShared.dyn } : {}),
  };
  // A device with a restricted DMA pool reaches that region only (the default pool is not shared with it).
  const windowOf = (device: string): BounceWindowShared => {
    const r = boot.restricted.find((x) => x.device === device);
    return r === undefined ? bounceWindow : { data: r.mem.defpool.shared.data, start: r.mem.defpool.start };
  };
  const deviceConfigs: DeviceConfig[] = [
    { kind: 'nvme', name: 'nvme0', bounce: windowOf('nvme0'), queues: [...nvmeQueues, ...pollQueueSabs], control: nvmeControl,
      latencyUs: opts.nvmeLatencyUs, bandwidthBytesPerSec: opts.nvmeBandwidth, capacityBytes: Math.max(plan.capacityBytes, 4096),
      controlPort: deviceChannels[0]!.port2, faultAtMs: faultAt('nvme0'), timeScale: k },
    { kind: 'nic', name: 'eth0', bounce: windowOf('eth0'), queues: nicQueues, control: nicControl,
      latencyUs: 5, bandwidthBytesPerSec: 1.25e9, capacityBytes: 0, controlPort: deviceChannels[1]!.port2, faultAtMs: faultAt('eth0'), timeScale: k },
  ];
  const instanceStatsSab = new SharedArrayBuffer(Math.max(1, plan.instances.length) * INST_FIELDS * 8);
  const histograms = new SharedArrayBuffer(Math.max(1, histogramsBytes(plan.instances.length)));
  const swiotlbStatsSab = new SharedArrayBuffer(opts.vcpus * STATS_STRIDE * 8);
  const throttleStatsSab = new SharedArrayBuffer(opts.vcpus * ThrottleStats.bytesNeeded());
  const runSab = new SharedArrayBuffer(RUN_CONTROL_INTS * 4);
  const run = new Int32Array(runSab);
  const quietSab = new SharedArrayBuffer(opts.vcpus * 8);
  const quiet = new Float64Array(quietSab);

  // A failed thread ends the run: the first failure is logged and kept, every thread is stopped.
  let failure: Error | null = null;
  let deviceDead = false;
  // Stopping is two steps: the vCPUs first (they stop submitting and reap what is in flight), then,
  // once they are done or TEARDOWN_MS has passed, the devices.
  let stopRequested: () => void = () => {};
  const stopped = new Promise<void>((resolve) => {
    stopRequested = resolve;
  });
  const stopVcpus = () => {
    Atomics.store(run, RUN_STOP, 1);
    Atomics.notify(run, RUN_GO);
    stopRequested();
  };
  const stopDevices = () => {
    for (const c of [nvmeControl, nicControl]) stopDevice(new Int32Array(c));
  };
  const fail = (thread: string, e: unknown, who: { vcpu?: number; device?: string }) => {
    const err = e instanceof Error ? e : new Error(String(e));
    log.emit('worker_error', { thread, ...who, fatal: true, error: { name: err.name, message: err.message, ...(err.stack !== undefined ? { stack: err.stack } : {}) } });
    if (failure === null) failure = thread === 'main' ? err : new Error(`${thread} failed: ${err.message}`);
    // A dead device completes nothing more: do not wait for the vCPUs to reap it.
    if (who.device !== undefined) deviceDead = true;
    stopVcpus();
  };
  signal.addEventListener('abort', () => stopVcpus(), { once: true });

  // Every tunable exists once the devices are registered: check the scheduled changes before any
  // thread starts, so that a bad --tune is a one-line input error, not a failed run.
  deviceConfigs.forEach((cfg, i) => control.addDevice(cfg.name, deviceChannels[i]!.port1, new Int32Array(cfg.control)));
  let tuneSteps: { atMs: number; name: string; value: number }[];
  try {
    tuneSteps = opts.tune.map((step) => ({ atMs: step.atMs, ...control.parseAssignment(step.text, '--tune') }));
  } catch (e) {
    control.close();
    throw e;
  }
  // write_iolog: each file is created with its header once every input check has passed; the
  // vCPUs post their records to the sink, which writes the lines (src/vm/iolog-write.ts).
  let iologSink: IologSink;
  try {
    createWriteIologs(plan.instances);
    iologSink = new IologSink(plan.instances);
  } catch (e) {
    control.close();
    throw e;
  }
  for (const line of boot.bootLines) {
    hooks.bootLine(line);
    log.emit('boot_line', { text: line });
  }
  for (const w of boot.warnings) hooks.warning?.(w);
  log.emit('pool_created', { pool: 0, start: pool.start, nslabs: pool.nslabs, nareas: pool.nareas, kind: 'default' });
  for (const r of boot.restricted) {
    const p = r.mem.defpool;
    log.emit('pool_created', { pool: 0, start: p.start, nslabs: p.nslabs, nareas: p.nareas, kind: 'restricted', device: r.device });
  }
  const devices = deviceConfigs.map((cfg) => new Worker(workerFile('device'), { workerData: cfg, transferList: [cfg.controlPort!] }));
  // The atomic pools' expansion work runs on a kworker thread of its own for the whole run.
  const guestThreads = startGuestMemoryThreads(boot.guest, log.workerChannel('kworker/atomic_pool'), opts.churn && { ...opts.churn, seed: opts.seed, ...(boot.cma !== null ? { cma: boot.cma.shared } : {}) });
  void guestThreads.failed.then((e) => fail('kworker/atomic_pool', e, {}));
  // Dynamic swiotlb: the growth worker (the kworker of mem->dyn_alloc), parked until a search fails.
  const grower = boot.mem.dyn !== null && boot.mem.canGrow ? startGrowthWorker(boot, log, (e) => fail('kworker/swiotlb_dyn', e, {})) : null;
  const deviceDone = devices.map((w, i) => new Promise<DeviceResult | null>((resolve) => {
    const name = deviceConfigs[i]!.name;
    w.once('message', resolve);
    w.once('error', (e) => {
      fail(name, e, { device: name });
      resolve(null);
    });
  }));
  dmaTrace?.start();
  const piscina = new Piscina({
    filename: fileURLToPath(workerFile('vcpu')), minThreads: opts.vcpus, maxThreads: opts.vcpus, idleTimeout: 60_000,
    concurrentTasksPerWorker: 1, maxQueue: opts.vcpus,
  });
  const tasks = perCpu.map((_, cpu) => {
    const ch = new MessageChannel();
    control.addVcpu(cpu, ch.port1);
    const iologCh = iologSink.active ? new MessageChannel() : undefined;
    if (iologCh !== undefined) iologSink.attach(iologCh.port1);
    const task: VcpuTask = {
      cpu, mem: boot.mem.shared(), guest, guestBase: GUEST_BASE, guestOffset: guestOffsets[cpu]!, guestMemory: boot.guest.shared,
      nvmeQueue: nvmeQueues[cpu]!, nvmePollQueue: pollQueues[cpu]?.sab ?? null, nvmeControl, nicQueue: nicQueues[cpu]!, nicControl,
      instances: plan.instances.filter((i) => i.cpu === cpu), groupSizes: plan.groupSizes,
      instanceStats: instanceStatsSab, histograms, swiotlbStats: swiotlbStatsSab, throttleStats: throttleStatsSab, run: runSab, quiet: quietSab,
      log: log.workerChannel(`vcpu${cpu}`), control: ch.port2, faultAtMs: faultAt(`vcpu${cpu}`), timeScale: k,
      ...(hooks.replay !== undefined ? { replay: hooks.replay.task(cpu, guestOffsets[cpu]!) } : {}),
      restricted: boot.restricted.map((r) => r.shared),
      ...(iologCh !== undefined ? { iolog: iologCh.port2 } : {}),
      ...(dmaTrace !== null ? { dmaTrace: dmaTrace.channel(cpu) } : {}),
    };
    return (piscina.run(task, { transferList: iologCh !== undefined ? [ch.port2, iologCh.port2] : [ch.port2] }) as Promise<VcpuResult>).catch((e: unknown) => {
      fail(`vcpu${cpu}`, e, { vcpu: cpu });
      return null;
    });
  });

  // Boot ends when every vCPU is up and waiting at the start barrier.
  while (Atomics.load(run, RUN_READY) < opts.vcpus && failure === null && !signal.aborted) {
    await Atomics.waitAsync(run, RUN_READY, Atomics.load(run, RUN_READY), 50).value;
  }
  // The run's clock starts here, at the start barrier: samples, tunables, the progress line and the
  // analyzer's times all count from runStart (the run_start record's time).
  const cpuBoot = process.cpuUsage(cpu0);
  const bootMs = wallMs() - t0;
  const runStart = nowMs();
  Atomics.store(run, RUN_GO, 1);
  Atomics.notify(run, RUN_GO);
  log.emit('run_start', { boot_ms: Math.round(bootMs), vcpus: opts.vcpus, time_scale: k });
  const plannedMs = plannedRunMs(plan.instances);
  const plannedExact = plannedIsExact(plan.instances);
  hooks.phase?.({ phase: 'running', plannedMs, plannedExact });

  // Scheduled tunable changes (--tune), then samples and the watchdog.
  const tuneTimers = tuneSteps.map((step) => setTimeout(() => {
    control.set(step.name, step.value).catch((e: unknown) => fail('main', e, {}));
  }, step.atMs * k));
  const instanceStats = new Float64Array(instanceStatsSab);
  const swiotlbStats = new Float64Array(swiotlbStatsSab);
  const nvmeCtl = new Int32Array(nvmeControl);
  const nicCtl = new Int32Array(nicControl);
  let last = { t: runStart, ios: 0, bytes: 0 };
  let lastProgressAt = wallMs(); // the stall watchdog: wall time
  let lastCommands = 0;
  // [RFC] The throttle watchdog: a waiter parked longer than --throttle-stall-timeout while the holder
  // has held the semaphore at least as long is a stall. It is logged with who holds and who waits,
  // every wait is aborted (so no thread hangs), and the run ends with exit 1.
  const checkThrottleStall = (thr: ThrottleSnapshot): void => {
    if (failure !== null || thr.waiters.length === 0 || thr.holder === null) return;
    const parked = Math.max(...thr.waiters.map((w) => w.waited_ms));
    // The waits are on the run's clock, the timeout is wall time.
    if (parked * k < opts.throttleStallMs || thr.holder.held_ms * k < opts.throttleStallMs) return;
    const h = thr.holder;
    const self = thr.waiters.some((w) => w.vcpu === h.vcpu);
    // Read before the abort below lets the parked vCPUs poll again.
    const polled = polledQueueStates(pollQueues, new Set(thr.waiters.map((w) => w.vcpu)));
    log.emit('stall', {
      kind: self ? 'self_deadlock' : 'timeout', parked_ms: Math.round(parked),
      holder: { vcpu: h.vcpu, device: h.device, size: h.size },
      waiters: thr.waiters.map((w) => ({ vcpu: w.vcpu, device: w.device, size: w.size, waited_ms: Math.round(w.waited_ms) })),
      ...(polled.length > 0 ? { polled_queues: polled } : {}),
    });
    boot.mem.throttleAbort();
    const who = thr.waiters.map((w) => `vcpu${w.vcpu} (${w.device}, ${w.size} bytes, ${Math.round(w.waited_ms)} ms)`).join(', ');
    fail('main', new Error(`swiotlb throttle stall${self ? ' (self-deadlock: the holder\'s own vCPU waits for it)' : ''}: throttle_sem held ${Math.round(h.held_ms)} ms by vcpu${h.vcpu} (${h.device}, ${h.size}-byte ${h.kind}); waiting: ${who}${polledQueuesText(polled)}`), {});
  };
  // One sample: every counter read at one instant from shared memory, so a rate is the change of a
  // counter over the time between two readings, whatever the vCPUs were doing.
  const takeSample = (): void => {
    const t = nowMs();
    const c = workloadCounters(instanceStats, plan.instances.length);
    // Every allocator's failures: the default one's and each restricted pool's (its own header word).
    const map_failures = boot.mem.mapFailures() + boot.restricted.reduce((a, r) => a + r.mem.mapFailures(), 0);
    const occ = pool.areaOccupancy();
    const d = boot.mem.debugfs();
    const sample: VmSample = {
      t_ms: Math.round((t - runStart) * 10) / 10, phase: workloadPhase(instanceStats, plan.instances, t),
      io_tlb_used: d.io_tlb_used, io_tlb_used_hiwater: d.io_tlb_used_hiwater, nslabs: d.io_tlb_nslabs,
      area_used: occ.used, area_used_hiwater: occ.used_hiwater,
      ios: c.ios, bytes: c.bytes,
      iops: Math.round(ratePerSec(last.ios, c.ios, t - last.t)), bw_bytes_per_s: Math.round(ratePerSec(last.bytes, c.bytes, t - last.t)),
      map_failures, io_errors: c.io_errors, packets_dropped: c.packets_dropped,
    };
    last = { t, ios: c.ios, bytes: c.bytes };
    const thr = boot.mem.throttleSnapshot();
    log.emit('sample', {
      ...sample, throttle_queue_len: thr.queue_len, high_throttle: thr.high_throttle,
      low_throttle: thr.low_throttle, high_throttle_count: thr.high_throttle_count, low_throttle_count: thr.low_throttle_count,
      throttle_held: thr.held, io_tlb_transient_nslabs: d.io_tlb_transient_nslabs,
      ...(boot.restricted.length > 0 ? { restricted: boot.restricted.map(restrictedSample) } : {}),
    });
    checkThrottleStall(thr);
    hooks.sample(sample);
  };
  const ticker = setInterval(() => {
    try {
      takeSample();
    } catch (e) {
      fail('main', e, {});
    }
  }, opts.sampleIntervalMs * k);
  // The stall watchdog: wall time, on its own cadence, since with --time-scale K the samples come
  // every K x the sample interval, which may be longer than the stall timeout.
  let progressIos = 0;
  const checkProgress = (): void => {
    const t = nowMs();
    const wall = wallMs();
    const ios = workloadCounters(instanceStats, plan.instances.length).ios;
    const commands = Atomics.load(nvmeCtl, DEV_COMMANDS) + Atomics.load(nicCtl, DEV_COMMANDS);
    // A stall is time without a completion while I/O is expected: time in which every vCPU waits in a
    // startdelay, thinktime or rate limit with nothing in flight (or has finished) is not one. The
    // vCPUs' quiet times are on the run's clock (nowMs, as t); the watchdog counts wall time.
    let expected = false;
    for (let v = 0; v < opts.vcpus && !expected; v++) expected = !(quiet[v]! > t);
    if (commands !== lastCommands || ios !== progressIos || !expected) lastProgressAt = wall;
    lastCommands = commands;
    progressIos = ios;
    if (wall - lastProgressAt > opts.stallMs && failure === null) {
      const d = boot.mem.debugfs();
      const parkedVcpus = new Set(boot.mem.throttleSnapshot().waiters.map((w) => w.vcpu));
      fail('main', new Error(`stall: no I/O completed for ${Math.round((wall - lastProgressAt) / 1000)} s with io_tlb_used ${d.io_tlb_used} of ${boot.nslabs} slots${polledQueuesText(polledQueueStates(pollQueues, parkedVcpus))}`), {});
    }
  };
  const watchdog = setInterval(() => {
    try {
      checkProgress();
    } catch (e) {
      fail('main', e, {});
    }
  }, Math.max(10, Math.min(opts.sampleIntervalMs, opts.stallMs / 4)));

  // After a failure or a stop request the vCPUs get TEARDOWN_MS to finish; a thread that does not
  // (it waits on a dead device, or it crashed) is terminated with the pool, never waited for.
  const settled = Promise.all(tasks);
  await Promise.race([settled, stopped]);
  clearInterval(ticker);
  clearInterval(watchdog);
  hooks.phase?.({ phase: 'teardown', plannedMs, plannedExact });
  const vcpuResults = await Promise.race([settled, sleep(deviceDead ? 0 : TEARDOWN_MS, null, { ref: false })]);
  const runMs = nowMs() - runStart;
  for (const t of tuneTimers) clearTimeout(t);
  stopDevices();
  if (grower !== null) await grower.stop();
  const devResults = await Promise.race([Promise.all(deviceDone), sleep(TEARDOWN_MS, null, { ref: false })]);
  // Read once the device loops have ended, as their command counts are: passes per command is one run's.
  const devicePasses = Atomics.load(nvmeCtl, DEV_PASSES) + Atomics.load(nicCtl, DEV_PASSES);
  control.close();
  // Every clone's last records are posted before its vCPU returns; a failed vCPU sends no close (its lines so far are kept).
  const vcpuLost = vcpuResults === null || vcpuResults.some((v) => v === null);
  await Promise.race([iologSink.done, sleep(vcpuLost ? 0 : TEARDOWN_MS, null, { ref: false })]);
  iologSink.close();
  const [, guestStats] = await Promise.all([Promise.all([piscina.destroy(), ...devices.map((w) => w.terminate())]), guestThreads.stop()]);
  const dmaTraceResult = dmaTrace?.close() ?? null;
  // What the shared counters hold is a report, whole or not: a failed run still returns it, marked
  // partial, inside the error (the counters of a thread that died are the ones it had written).
  const result: VmRunResult = {
    boot, plan, jobs, wallMs: wallMs() - t0, bootMs, runMs, interrupted: signal.aborted, instanceStats, histograms, swiotlbStats,
    throttleStats: ThrottleStats.blocks(throttleStatsSab, opts.vcpus),
    vcpuResults: (vcpuResults ?? []).filter((r): r is VcpuResult => r !== null),
    deviceCommands: devResults !== null
      ? devResults.reduce((s, r) => s + (r?.commands ?? 0), 0)
      : Atomics.load(nvmeCtl, DEV_COMMANDS) + Atomics.load(nicCtl, DEV_COMMANDS),
    devicePasses, timeScale: k,
    deviceThreads: (devResults ?? []).flatMap((d, i) => (d === null ? [] : [{ name: deviceConfigs[i]!.name, ...d }])),
    cpuMs: cpuMillis(process.cpuUsage(cpu0)), cpuBootMs: cpuMillis(cpuBoot),
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    tuned: tuneSteps.map((s) => s.name),
    dmaTrace: dmaTraceResult,
    nvmePollQueues,
    guestEnd: { free: boot.guest.phys.freeBlocks(), atomicPool: guestStats.atomicPool, churn: guestStats.churn },
  };
  if (failure !== null) throw new VmRunFailed(failure, result);
  if (vcpuResults === null || devResults === null) {
    throw new VmRunFailed(new Error(`the VM did not stop within ${TEARDOWN_MS} ms of the end of the run`), result);
  }
  return result;
}

/** A restricted pool's figures in a sample record: its own debugfs files and failures. */
function restrictedSample(r: RestrictedMem): { device: string; io_tlb_nslabs: number; io_tlb_used: number; io_tlb_used_hiwater: number; map_failures: number } {
  const d = r.mem.debugfs();
  return { device: r.device, io_tlb_nslabs: d.io_tlb_nslabs, io_tlb_used: d.io_tlb_used, io_tlb_used_hiwater: d.io_tlb_used_hiwater, map_failures: r.mem.mapFailures() };
}

/** A run that ended with a failure (a thread crashed, a stall): the reason, and what was counted until then. */
export class VmRunFailed extends Error {
  constructor(readonly reason: Error, readonly partial: VmRunResult) {
    super(reason.message);
    this.name = 'VmRunFailed';
  }
}

function cpuMillis(u: NodeJS.CpuUsage): number {
  return (u.user + u.system) / 1000;
}

/** Sum every vCPU's swiotlb statistics block, by the statistics' names. */
export function sumSwiotlbStats(stats: Float64Array, vcpus: number): Record<(typeof STAT_NAMES)[number], number> {
  const out = {} as Record<(typeof STAT_NAMES)[number], number>;
  STAT_NAMES.forEach((name, k) => {
    let s = 0;
    for (let c = 0; c < vcpus; c++) s += stats[c * STATS_STRIDE + k]!;
    out[name] = s;
  });
  return out;
}

/** Per-area figures of the default pool: the lock counters, and the high-water mark of area->used. */
export function areaContention(mem: IoTlbMem): { area: number; acquired: number; contended: number; parked: number; used_hiwater: number }[] {
  const pool = mem.defpool;
  const hiwater = pool.areaOccupancy().used_hiwater;
  const out = [];
  for (let a = 0; a < pool.nareas; a++) {
    const b = pool.areaBase(a);
    out.push({ area: a, acquired: pool.areas[b + AREA_ACQUIRED]!, contended: pool.areas[b + AREA_CONTENDED]!, parked: pool.areas[b + AREA_PARKED]!, used_hiwater: hiwater[a]! });
  }
  return out;
}

/** A merged histogram over several instances' histograms of one direction. */
export function mergedHistogram(sab: SharedArrayBuffer, ids: number[], kind: HistogramKind): LatencyHistogram {
  const out = LatencyHistogram.create();
  for (const id of ids) LatencyHistogram.merge(out, new LatencyHistogram(sab, histogramOffset(id, kind)));
  return out;
}
