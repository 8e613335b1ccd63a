// One thread of the core benchmark: map+unmap pairs in a timed window that the main thread opens
// and closes through a shared control word, so every thread of a configuration runs the same window.
import { DmaDevice } from '../dma/device.js';
import { dmaMapSingle, dmaUnmapSingle } from '../dma/direct.js';
import { GuestMemory } from '../memory/guest.js';
import { DMA_MAPPING_ERROR, DMA_TO_DEVICE, IO_TLB_SIZE } from '../swiotlb/constants.js';
import { IoTlbMem, type IoTlbMemShared, type SwiotlbEvent } from '../swiotlb/mem.js';
import type { LogChannel } from '../log/logger.js';
import { attachWorkerLogger } from '../log/worker-logger.js';
import { nowMs } from '../util/clock.js';
import { VcpuLog } from '../vm/vcpu-log.js';

/** bounce: dma_map_single + dma_unmap_single of 4 KiB TO_DEVICE; alloc: slot search and release only; copy: the one 4 KiB copy. */
export type CoreBenchMode = 'bounce' | 'alloc' | 'copy';

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
  /** Arm B's pool (e.g. the same geometry with throttling on); without it both arms map from `shared`. */
  sharedB?: IoTlbMemShared;
  /** DMA attrs of the bounce mode's maps (e.g. DMA_ATTR_MAY_BLOCK); default 0. */
  attrs?: number;
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
export const STATE_RUN = 1;
export const STATE_STOP = 2;
const WARMUP_PAIRS = 200_000;

export interface CoreBenchThreadResult {
  pairs: number;
  /** Of `pairs`, those started while CONTROL_ARM_B was 1. */
  pairsArmB: number;
  failures: number;
}

export async function runCoreBenchThread(cfg: CoreBenchThreadConfig): Promise<CoreBenchThreadResult> {
  const guest = new GuestMemory(cfg.guest, cfg.guestBase);
  const logging = cfg.failEvery !== undefined;
  const vlogOn = new VcpuLog(await attachWorkerLogger(cfg.log, { vcpu: cfg.cpu }));
  const vlogOff = new VcpuLog(await attachWorkerLogger(null));
  let armB = false;
  const events = logging ? (e: SwiotlbEvent) => (armB ? vlogOn : vlogOff).swiotlb(e, nowMs()) : null;
  const memA = IoTlbMem.attach(cfg.shared, { cpu: cfg.cpu, guest, events });
  const memB = cfg.sharedB !== undefined ? IoTlbMem.attach(cfg.sharedB, { cpu: cfg.cpu, guest, events }) : memA;
  let mem = memA;
  const failEvery = cfg.failEvery ?? 0;
  let n = 0;
  const dev = new DmaDevice(`bench${cfg.cpu}`);
  const control = new Int32Array(cfg.control);
  const pool = memA.defpool;
  const size = cfg.sizeBytes;
  const goff = (cfg.cpu * 2 * size) % (guest.size - size);
  const orig = guest.addrOf(goff);
  guest.bytes.fill(cfg.cpu & 0xff, goff, goff + size);
  // The copy-only ceiling copies into this thread's own area, as a mapping would.
  const copyAt = ((cfg.cpu & (pool.nareas - 1)) * pool.areaNslabs) * IO_TLB_SIZE;
  const src = guest.bytes;
  const data = pool.data;
  const attrs = cfg.attrs ?? 0;

  // Each thread is its own V8 isolate and must reach optimised code on its own; with 32 threads on 2
  // cores that takes a large part of a short window, so warm up before reporting ready.
  const step = (): boolean => {
    if (cfg.mode === 'bounce') {
      if (failEvery > 0 && ++n === failEvery) {
        n = 0;
        dmaMapSingle(mem, dev, orig, IO_TLB_SIZE * 129, DMA_TO_DEVICE); // oversize: fails, reports
      }
      const tlb = dmaMapSingle(mem, dev, orig, size, DMA_TO_DEVICE, attrs);
      if (tlb === DMA_MAPPING_ERROR) return false;
      dmaUnmapSingle(mem, dev, tlb, size, DMA_TO_DEVICE);
    } else if (cfg.mode === 'alloc') {
      const index = mem.findSlots(dev, orig, size, 0);
      if (index < 0) return false;
      const p = mem.defpool;
      p.origAddr[index] = orig; // the bookkeeping release checks, without the copy
      mem.releaseSlots(dev, p.start + index * IO_TLB_SIZE, p);
    } else {
      data.set(src.subarray(goff, goff + size), copyAt);
    }
    return true;
  };
  for (let i = 0; i < WARMUP_PAIRS; i++) {
    armB = ((i >> 12) & 1) === 1; // both arms reach optimised code
    mem = armB ? memB : memA;
    step();
  }

  Atomics.add(control, CONTROL_READY, 1);
  Atomics.notify(control, CONTROL_READY);
  while (Atomics.load(control, CONTROL_STATE) === 0) Atomics.wait(control, CONTROL_STATE, 0, 50);

  let pairs = 0;
  let pairsArmB = 0;
  let failures = 0;
  while (Atomics.load(control, CONTROL_STATE) === STATE_RUN) {
    armB = Atomics.load(control, CONTROL_ARM_B) === 1;
    mem = armB ? memB : memA;
    if (!step()) failures++;
    pairs++;
    if (armB) pairsArmB++;
  }
  return { pairs, pairsArmB, failures };
}
