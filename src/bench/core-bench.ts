// One thread of the core benchmark: map+unmap pairs in a timed window that the main thread opens
// and closes through a shared control word, so every thread of a configuration runs the same window.
import { DmaDevice } from '../dma/device.js';
import { dmaMapSingle, dmaUnmapSingle } from '../dma/direct.js';
import { GuestMemory } from '../memory/guest.js';
import { DMA_MAPPING_ERROR, DMA_TO_DEVICE, IO_TLB_SIZE } from '../swiotlb/constants.js';
import { IoTlbMem, type IoTlbMemShared } from '../swiotlb/mem.js';

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
}

export const CONTROL_READY = 0;
export const CONTROL_STATE = 1;
export const STATE_RUN = 1;
export const STATE_STOP = 2;
const WARMUP_PAIRS = 200_000;

export interface CoreBenchThreadResult {
  pairs: number;
  failures: number;
}

export function runCoreBenchThread(cfg: CoreBenchThreadConfig): CoreBenchThreadResult {
  const guest = new GuestMemory(cfg.guest, cfg.guestBase);
  const mem = IoTlbMem.attach(cfg.shared, { cpu: cfg.cpu, guest });
  const dev = new DmaDevice(`bench${cfg.cpu}`);
  const control = new Int32Array(cfg.control);
  const pool = mem.defpool;
  const size = cfg.sizeBytes;
  const goff = (cfg.cpu * 2 * size) % (guest.size - size);
  const orig = guest.addrOf(goff);
  guest.bytes.fill(cfg.cpu & 0xff, goff, goff + size);
  // The copy-only ceiling copies into this thread's own area, as a mapping would.
  const copyAt = ((cfg.cpu & (pool.nareas - 1)) * pool.areaNslabs) * IO_TLB_SIZE;
  const src = guest.bytes;
  const data = pool.data;

  // Each thread is its own V8 isolate and must reach optimised code on its own; with 32 threads on 2
  // cores that takes a large part of a short window, so warm up before reporting ready.
  const step = (): boolean => {
    if (cfg.mode === 'bounce') {
      const tlb = dmaMapSingle(mem, dev, orig, size, DMA_TO_DEVICE);
      if (tlb === DMA_MAPPING_ERROR) return false;
      dmaUnmapSingle(mem, dev, tlb, size, DMA_TO_DEVICE);
    } else if (cfg.mode === 'alloc') {
      const index = mem.findSlots(dev, orig, size, 0);
      if (index < 0) return false;
      pool.origAddr[index] = orig; // the bookkeeping release checks, without the copy
      mem.releaseSlots(dev, pool.start + index * IO_TLB_SIZE, pool);
    } else {
      data.set(src.subarray(goff, goff + size), copyAt);
    }
    return true;
  };
  for (let i = 0; i < WARMUP_PAIRS; i++) step();

  Atomics.add(control, CONTROL_READY, 1);
  Atomics.notify(control, CONTROL_READY);
  while (Atomics.load(control, CONTROL_STATE) === 0) Atomics.wait(control, CONTROL_STATE, 0, 50);

  let pairs = 0;
  let failures = 0;
  while (Atomics.load(control, CONTROL_STATE) === STATE_RUN) {
    if (!step()) failures++;
    pairs++;
  }
  return { pairs, failures };
}
