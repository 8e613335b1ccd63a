// The core benchmark: map+unmap pairs in a timed window that the main thread opens and closes
// through a shared control word, so every thread of a configuration runs the same window. The thread
// side (runCoreBenchThread) and the main side (runCoreBenchWindow) of `npm run bench`'s rows.
import type { DurationBounds } from '../util/units.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { DmaDevice } from '../dma/device.js';
import { type DmaTracepoints, dmaMapSingle, dmaUnmapSingle, setDmaTracer } from '../dma/direct.js';
import { type DmaTraceChannel, DmaTracer } from '../trace/writer.js';
import { GUEST_BASE, GuestMemory } from '../memory/guest.js';
import { copyBytes, copyBytesSet, memmoveLoop } from '../memory/copy.js';
import { DMA_MAPPING_ERROR, DMA_TO_DEVICE, IO_TLB_SIZE, POOL_START } from '../swiotlb/constants.js';
import { IoTlbMem, type IoTlbMemShared, type SwiotlbEvent } from '../swiotlb/mem.js';
import type { LogChannel } from '../log/logger.js';
import { attachWorkerLogger } from '../log/worker-logger.js';
import { nowMs } from '../util/clock.js';
import { VcpuLog } from '../vm/vcpu-log.js';
import { runWorkers } from '../util/threads.js';

/**
 * bounce: dma_map_single + dma_unmap_single of 4 KiB TO_DEVICE; alloc: slot search and release only;
 * copy: the one 4 KiB copy, through the bounce's own copy (memory/copy.ts copyBytes, the path the VM
 * runs); copy-set: the same copy through the TypedArray.set path, whichever path this thread runs;
 * copy-vs-memmove: two arms in one thread, MEMMOVE_BATCH copyBytes calls (A) against the addon's
 * memmove of the same bytes MEMMOVE_BATCH times in one call (B, memory/copy.ts memmoveLoop: no
 * JavaScript between copies); both arms look at the control block once per batch.
 */
export type CoreBenchMode = 'bounce' | 'alloc' | 'copy' | 'copy-set' | 'copy-vs-memmove';

/** Copies per pass of the copy-vs-memmove mode's native arm: ~10 us, well inside an arm's phase. */
export const MEMMOVE_BATCH = 256;

export interface CoreBenchThreadConfig {
  mode: CoreBenchMode;
  shared: IoTlbMemShared;
  guest: SharedArrayBuffer;
  guestBase: number;
  cpu: number;
  /** [0] ready count, [1] go (1 = run, 2 = stop). */
  control: SharedArrayBuffer;
  sizeBytes: number;
  /**
   * The logging comparison: every `failEvery`-th pair also makes a map that fails (larger than a
   * segment), so the core reports map_failure through the VM's ratelimited vCPU log. The thread holds
   * two such logs: arm B's on `log` (a RunLogger channel), arm A's with logging off (the same code
   * with a no-op logger).
   */
  failEvery?: number;
  log?: LogChannel;
  /** The --trace-file comparison: arm B traces every call into this ring (src/trace/writer.ts), arm A has no tracer. */
  trace?: DmaTraceChannel;
  /**
   * The trace's floor, without a ring: arm B installs a tracer whose every tracepoint only reads the
   * run's clock (`clock`: the one thing every timestamped record must do) or does nothing (`call`:
   * the cost of a tracer being installed), arm A none.
   */
  traceFloor?: TraceFloor;
  /** Arm B's pool (e.g. the same geometry with throttling on); without it both arms map from `shared`. */
  sharedB?: IoTlbMemShared;
  /** DMA attrs of the bounce mode's maps (e.g. DMA_ATTR_MAY_BLOCK); default 0. */
  attrs?: number;
  /** URL of a build of mem.js to measure instead of the real one (src/bench/variants.ts). */
  memModule?: string;
  /** Arm B's build of mem.js, on `sharedB` (the instrumentation row: points in against compiled out). */
  memModuleB?: string;
}

export type TraceFloor = 'call' | 'clock';

/** A tracer for the floor rows: each tracepoint reads the clock into `sink` (clock) or returns (call). */
function floorTracer(kind: TraceFloor): DmaTracepoints {
  const sink = new Float64Array(1);
  const tick = kind === 'clock' ? (): void => { sink[0] = nowMs(); } : (): void => {};
  return { mapPhys: tick, unmapPhys: tick, mapSg: tick, mapSgErr: tick, unmapSg: tick, bounced: kind === 'clock' ? () => {} : tick };
}

export const CONTROL_READY = 0;
export const CONTROL_STATE = 1;
/**
 * A two-arm comparison (logging on vs off, or pool B vs pool A): 1 while arm B runs, 0 for arm A. The
 * main thread alternates the arms within one window, so both run on the same isolates, the same
 * optimised code and the same scheduling, and drift between runs cancels out.
 */
export const CONTROL_ARM_B = 2;
export const CONTROL_INTS = 3;
/** Two-arm comparisons: how long each arm runs before the other, and the window (x the configuration time). */
export const ARM_PHASE_MS = 50;
export const ARM_WINDOW_FACTOR = 4;
export const STATE_RUN = 1;
export const STATE_STOP = 2;
const WARMUP_PAIRS = 200_000;

export interface CoreBenchThreadResult {
  pairs: number;
  /** Of `pairs`, those started while CONTROL_ARM_B was 1. */
  pairsArmB: number;
  /** Warm-up pairs made on arm B (not in `pairs`): a trace's lines count them too. */
  warmupPairsArmB: number;
  failures: number;
}

export async function runCoreBenchThread(cfg: CoreBenchThreadConfig): Promise<CoreBenchThreadResult> {
  // The build of the core to measure: the real one, or a variant loaded by URL (instrument-bench.ts).
  const load = async (url: string | undefined): Promise<typeof IoTlbMem> =>
    url !== undefined ? ((await import(url)) as { IoTlbMem: typeof IoTlbMem }).IoTlbMem : IoTlbMem;
  const Mem = await load(cfg.memModule);
  const MemB = cfg.memModuleB !== undefined ? await load(cfg.memModuleB) : Mem;
  const guest = new GuestMemory(cfg.guest, cfg.guestBase);
  const logging = cfg.failEvery !== undefined;
  const tracer: (DmaTracepoints & { close?(): void }) | null = cfg.trace !== undefined ? new DmaTracer(cfg.trace) : cfg.traceFloor !== undefined ? floorTracer(cfg.traceFloor) : null;
  const twoArms = logging || tracer !== null || cfg.sharedB !== undefined || cfg.mode === 'copy-vs-memmove';
  const vlogOn = new VcpuLog(await attachWorkerLogger(cfg.log, { vcpu: cfg.cpu }));
  const vlogOff = new VcpuLog(await attachWorkerLogger(null));
  let armB = false;
  const events = logging ? (e: SwiotlbEvent) => (armB ? vlogOn : vlogOff).swiotlb(e, nowMs()) : null;
  const memA = Mem.attach(cfg.shared, { cpu: cfg.cpu, guest, events });
  const memB = cfg.sharedB !== undefined ? MemB.attach(cfg.sharedB, { cpu: cfg.cpu, guest, events }) : memA;
  const poolA = memA.defpool;
  const poolB = memB.defpool;
  let mem = memA;
  let pool = poolA;
  const setArm = (b: boolean): void => {
    if (tracer !== null && b !== armB) setDmaTracer(b ? tracer : null);
    armB = b;
    mem = b ? memB : memA;
    pool = b ? poolB : poolA;
  };
  const failEvery = cfg.failEvery ?? 0;
  let n = 0;
  const dev = new DmaDevice(`bench${cfg.cpu}`);
  const control = new Int32Array(cfg.control);
  const size = cfg.sizeBytes;
  const goff = (cfg.cpu * 2 * size) % (guest.size - size);
  const orig = guest.addrOf(goff);
  guest.bytes.fill(cfg.cpu & 0xff, goff, goff + size);
  const attrs = cfg.attrs ?? 0;

  // One step per mode, chosen once: the measured loop does nothing else.
  const bounce = (): boolean => {
    if (failEvery > 0 && ++n === failEvery) {
      n = 0;
      dmaMapSingle(mem, dev, orig, IO_TLB_SIZE * 129, DMA_TO_DEVICE); // oversize: fails, reports
    }
    const tlb = dmaMapSingle(mem, dev, orig, size, DMA_TO_DEVICE, attrs);
    if (tlb === DMA_MAPPING_ERROR) return false;
    dmaUnmapSingle(mem, dev, tlb, size, DMA_TO_DEVICE);
    return true;
  };
  const alloc = (): boolean => {
    const index = mem.findSlots(dev, orig, size, 0);
    if (index < 0) return false;
    pool.origAddr[index] = orig; // the bookkeeping release checks, without the copy
    mem.releaseSlots(dev, pool.start + index * IO_TLB_SIZE, pool);
    return true;
  };
  // The copy-only ceiling copies into this thread's own area, as a mapping would.
  const copyAt = ((cfg.cpu & (poolA.nareas - 1)) * poolA.areaNslabs) * IO_TLB_SIZE;
  const src = guest.region;
  const data = poolA.dataRegion;
  const copyWith = cfg.mode === 'copy-set' ? copyBytesSet : copyBytes;
  if (cfg.mode === 'copy-vs-memmove' && !memmoveLoop(data, copyAt, src, goff, size, 1)) {
    throw new Error('bench: copy-vs-memmove needs the bounce copy addon, which this thread did not load');
  }
  const copy = (): boolean => {
    copyWith(data, copyAt, src, goff, size);
    return true;
  };
  const step = cfg.mode === 'bounce' ? bounce : cfg.mode === 'alloc' ? alloc : copy;

  // Each thread is its own V8 isolate and must reach optimised code on its own; with 32 threads on 2
  // cores that takes a large part of a short window, so warm up before reporting ready.
  let warmupPairsArmB = 0;
  for (let i = 0; i < WARMUP_PAIRS; i++) {
    if (twoArms) setArm(((i >> 12) & 1) === 1); // both arms reach optimised code
    step();
    if (armB) warmupPairsArmB++;
  }

  Atomics.add(control, CONTROL_READY, 1);
  Atomics.notify(control, CONTROL_READY);
  while (Atomics.load(control, CONTROL_STATE) === 0) Atomics.wait(control, CONTROL_STATE, 0, 50);

  let pairs = 0;
  let pairsArmB = 0;
  let failures = 0;
  if (cfg.mode === 'copy-vs-memmove') {
    while (Atomics.load(control, CONTROL_STATE) === STATE_RUN) {
      if (Atomics.load(control, CONTROL_ARM_B) === 1) {
        memmoveLoop(data, copyAt, src, goff, size, MEMMOVE_BATCH);
        pairs += MEMMOVE_BATCH;
        pairsArmB += MEMMOVE_BATCH;
      } else {
        for (let i = 0; i < MEMMOVE_BATCH; i++) copyBytes(data, copyAt, src, goff, size);
        pairs += MEMMOVE_BATCH;
      }
    }
  } else if (!twoArms) {
    while (Atomics.load(control, CONTROL_STATE) === STATE_RUN) {
      if (!step()) failures++;
      pairs++;
    }
  } else {
    while (Atomics.load(control, CONTROL_STATE) === STATE_RUN) {
      setArm(Atomics.load(control, CONTROL_ARM_B) === 1);
      if (!step()) failures++;
      pairs++;
      if (armB) pairsArmB++;
    }
  }
  setDmaTracer(null);
  tracer?.close?.();
  return { pairs, pairsArmB, warmupPairsArmB, failures };
}

/** What a window of one configuration measured: each thread's result, the window's length, each arm's share of it. */
export interface CoreBenchWindow {
  results: CoreBenchThreadResult[];
  elapsedS: number;
  armMs: { a: number; b: number };
}

/**
 * Main side: start one thread per config (all on the same control block), wait until every one has
 * warmed up, open the window for `seconds`, then close it and collect. With `armPhaseMs`, the window
 * alternates the two arms every armPhaseMs in the order A B B A A B B A ..., so that a drift that is
 * linear over the window hits both arms alike.
 */
export async function runCoreBenchWindow(cfgs: CoreBenchThreadConfig[], seconds: number, armPhaseMs?: number): Promise<CoreBenchWindow> {
  const ctl = new Int32Array(cfgs[0]!.control);
  const done = runWorkers<CoreBenchThreadResult>('bench-core', cfgs);
  while (Atomics.load(ctl, CONTROL_READY) < cfgs.length) await sleep(5);
  await sleep(50); // let thread start-up settle before the window opens
  const t0 = performance.now();
  Atomics.store(ctl, CONTROL_STATE, STATE_RUN);
  Atomics.notify(ctl, CONTROL_STATE);
  const armMs = { a: 0, b: 0 };
  if (armPhaseMs === undefined) {
    await sleep(seconds * 1000);
  } else {
    for (let phase = 0; performance.now() - t0 < seconds * 1000 || phase % 4 !== 0; phase++) {
      const b = ((phase + 1) >> 1) % 2 === 1;
      Atomics.store(ctl, CONTROL_ARM_B, b ? 1 : 0);
      const p0 = performance.now();
      await sleep(armPhaseMs);
      armMs[b ? 'b' : 'a'] += performance.now() - p0;
    }
  }
  Atomics.store(ctl, CONTROL_STATE, STATE_STOP);
  const elapsedS = (performance.now() - t0) / 1000;
  return { results: await done, elapsedS, armMs };
}

/**
 * The core's 4 KiB bounce rate (dma_map_single + dma_unmap_single pairs per second, all threads) at
 * `threads` threads and as many areas: the `4K bounce, N threads` rows of `npm run bench`, for a
 * bench that compares something with the core at the same thread count in its own run.
 */
export async function coreBounceRate(threads: number, seconds: number): Promise<number> {
  const size = 4096;
  const mem = IoTlbMem.create({ nslabs: Math.max(threads * 128, 4096), nareas: threads, start: POOL_START, forceBounce: true });
  const guest = new SharedArrayBuffer(threads * 2 * size + size);
  const control = new SharedArrayBuffer(CONTROL_INTS * 4);
  const cfgs: CoreBenchThreadConfig[] = Array.from({ length: threads }, (_, cpu) => ({
    mode: 'bounce', shared: mem.shared(), guest, guestBase: GUEST_BASE, cpu, control, sizeBytes: size,
  }));
  const { results, elapsedS } = await runCoreBenchWindow(cfgs, seconds);
  return results.reduce((a, r) => a + r.pairs, 0) / elapsedS;
}

/**
 * A measurement window (COCO_BENCH_SECONDS, bench --seconds): long enough to measure, short enough that
 * a whole table ends within the hour, and far below the longest timer Node honours.
 */
export const BENCH_WINDOW: DurationBounds = { minMs: 100, maxMs: 60_000 };
