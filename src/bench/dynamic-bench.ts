// Dynamic swiotlb's costs, on one thread (npm run bench rows):
// - map+unmap of 4 KiB with N dynamic pools present, each full, so the map searches every pool's area
//   before the default pool and the unmap's swiotlb_find_pool walks the list to the oldest pool: the
//   linear lookup the kernel's design document warns about, step for step;
// - a map+unmap through a transient pool (the default pool full: schedule_work is a no-op while
//   pending, the pool comes from the atomic pool and goes back after the grace period) against a
//   normal one.
import { DmaDevice } from '../dma/device.js';
import { AtomicPool } from '../memory/atomic-pool.js';
import { DecryptedArena } from '../memory/arena.js';
import { GuestMemory } from '../memory/guest.js';
import { GuestPhysMem } from '../memory/phys.js';
import { DMA_MAPPING_ERROR, DMA_TO_DEVICE, IO_TLB_SEGSIZE, IO_TLB_SIZE, POOL_START } from '../swiotlb/constants.js';
import { IoTlbMem } from '../swiotlb/mem.js';
import { nowMs } from '../util/clock.js';

const SIZE = 4096;
const MiB = 1024 ** 2;
const ORIG = 0x1_0000_0000;

function setup(nslabs: number, memory: boolean) {
  const phys = GuestPhysMem.create({ memBytes: 2 * 1024 ** 3 });
  const arena = DecryptedArena.create(512 * MiB);
  const { pool: atomicPool } = AtomicPool.create({ phys, arena, coherentPoolBytes: 4 * MiB });
  const guest = new GuestMemory(new SharedArrayBuffer(MiB), ORIG);
  const mem = IoTlbMem.create({
    nslabs, nareas: 1, start: POOL_START, forceBounce: true, canGrow: true,
    dynamic: { headroomBytes: arena.capacityBytes, defaultNslabs: nslabs, maxTransient: 256, arena: arena.shared.data },
  }, { memory: { phys, arena, ...(memory ? { atomicPool } : {}) }, guest });
  return { mem, dev: new DmaDevice('nvme0') };
}

/** Map+unmap pairs per second of `step` for `seconds`, after a warm-up of 2000. */
export function rate(seconds: number, step: () => void): number {
  for (let i = 0; i < 2000; i++) step(); // warm-up
  const t0 = nowMs();
  let n = 0;
  while (nowMs() - t0 < seconds * 1000) {
    for (let i = 0; i < 256; i++) step();
    n += 256;
  }
  return (n * 1000) / (nowMs() - t0);
}

/** One 4 KiB map+unmap pair of an allocator (returns the bounce address it used), with its allocator and device. */
export interface BenchPair {
  mem: IoTlbMem;
  dev: DmaDevice;
  pair(): number;
}

function pairOf(mem: IoTlbMem, dev: DmaDevice): BenchPair {
  return {
    mem, dev,
    pair() {
      const a = mem.tblMapSingle(dev, ORIG, SIZE, 0, DMA_TO_DEVICE, 0);
      mem.tblUnmapSingle(dev, a, SIZE, DMA_TO_DEVICE, 0);
      return a;
    },
  };
}

/** The dynamic build's 4 KiB pair with `npools` full 1 MiB dynamic pools in front of the default pool. */
export function dynamicPoolsPair(npools: number): BenchPair {
  const { mem, dev } = setup(512, false);
  const dyn = mem.dyn!;
  for (let p = 0; p < npools; p++) if (!dyn.dynAlloc().ok) throw new Error('bench: a dynamic pool could not be made');
  // Fill every dynamic pool (newest first takes every map while it has room), then keep the default pool for the pairs.
  for (let k = 0; k < npools * (512 / IO_TLB_SEGSIZE); k++) {
    if (mem.tblMapSingle(dev, ORIG, IO_TLB_SEGSIZE * IO_TLB_SIZE, 0, DMA_TO_DEVICE, 0) === DMA_MAPPING_ERROR) throw new Error('bench: filling the dynamic pools failed');
  }
  return pairOf(mem, dev);
}

/** 4 KiB map+unmap pairs/s with `npools` full 1 MiB dynamic pools in front of the default pool. */
export function dynamicPoolsRate(npools: number, seconds: number): number {
  return rate(seconds, dynamicPoolsPair(npools).pair);
}

/** 4 KiB map+unmap pairs/s through a transient pool (a full default pool), and the same pairs on a pool with room. */
export function transientRates(seconds: number): { transient: number; normal: number } {
  const t = setup(128, true);
  if (t.mem.tblMapSingle(t.dev, ORIG, 128 * IO_TLB_SIZE, 0, DMA_TO_DEVICE, 0) === DMA_MAPPING_ERROR) throw new Error('bench: filling the pool failed');
  const transient = rate(seconds, () => {
    const a = t.mem.tblMapSingle(t.dev, ORIG, SIZE, 0, DMA_TO_DEVICE, 0);
    if (a === DMA_MAPPING_ERROR) throw new Error('bench: no transient pool');
    t.mem.tblUnmapSingle(t.dev, a, SIZE, DMA_TO_DEVICE, 0);
  });
  const n = setup(128, true);
  const normal = rate(seconds, () => {
    const a = n.mem.tblMapSingle(n.dev, ORIG, SIZE, 0, DMA_TO_DEVICE, 0);
    n.mem.tblUnmapSingle(n.dev, a, SIZE, DMA_TO_DEVICE, 0);
  });
  return { transient, normal };
}

/** The same 4 KiB pair on a 512-slot, one-area pool without CONFIG_SWIOTLB_DYNAMIC (no dynamic state). */
export function staticPair(): BenchPair {
  const guest = new GuestMemory(new SharedArrayBuffer(MiB), ORIG);
  return pairOf(IoTlbMem.create({ nslabs: 512, nareas: 1, start: POOL_START, forceBounce: true }, { guest }), new DmaDevice('nvme0'));
}

/** 4 KiB map+unmap pairs/s on the same 512-slot, one-area pool without CONFIG_SWIOTLB_DYNAMIC (no dynamic state): the rows above against a static build. */
export function staticRate(seconds: number): number {
  return rate(seconds, staticPair().pair);
}
