// Dynamic swiotlb in the core (reference §5.3, §9, §12; kernel/dma/swiotlb.c swiotlb_find_slots,
// swiotlb_dyn_alloc, swiotlb_alloc_pool, swiotlb_find_pool). Expected values are the kernel's: the
// 4 MiB cap (SLABS_PER_PAGE << MAX_PAGE_ORDER = 2048 slots), limit_nareas (at least 128 slots per
// area), the halving ALIGN(nslabs >> 1, IO_TLB_SEGSIZE) down to IO_TLB_MIN_SLABS, head insertion.
import { describe, expect, it } from 'vitest';
import { DmaDevice } from '../../src/dma/device.js';
import { DecryptedArena } from '../../src/memory/arena.js';
import { GuestMemory } from '../../src/memory/guest.js';
import { GuestPhysMem, NR_PAGE_ORDERS, ZONE_DMA32 } from '../../src/memory/phys.js';
import { DMA_FROM_DEVICE, DMA_MAPPING_ERROR, DMA_TO_DEVICE, IO_TLB_SIZE, POOL_START } from '../../src/swiotlb/constants.js';
import { maxPoolsFor } from '../../src/swiotlb/dynamic.js';
import { DYN_EPOCH, DYN_READERS, DYN_READERS_USED, MEM_NPOOLS, POOL_KIND_DYNAMIC, READER_INTS } from '../../src/swiotlb/layout.js';
import { AtomicPool } from '../../src/memory/atomic-pool.js';
import { IoTlbMem, type SwiotlbEvent } from '../../src/swiotlb/mem.js';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

interface Setup {
  mem: IoTlbMem;
  phys: GuestPhysMem;
  arena: DecryptedArena;
  events: SwiotlbEvent[];
  guest: GuestMemory;
}

/** A CoCo allocator: default pool of `nslabs` slots and `nareas` areas, dynamic, over a guest of `memBytes`. */
function setup(o: { nslabs: number; nareas: number; canGrow?: boolean; memBytes?: number; arenaBytes?: number; freeBlocks?: number[] }): Setup {
  const phys = GuestPhysMem.create({ memBytes: o.memBytes ?? GiB });
  if (o.freeBlocks !== undefined) expect(phys.setFreeBlocks(ZONE_DMA32, o.freeBlocks)).toBe(true);
  const arena = DecryptedArena.create(o.arenaBytes ?? 64 * MiB);
  const events: SwiotlbEvent[] = [];
  const guest = new GuestMemory(new SharedArrayBuffer(4 * MiB), 0x1_0000_0000);
  const mem = IoTlbMem.create({
    nslabs: o.nslabs, nareas: o.nareas, start: POOL_START, forceBounce: true, canGrow: o.canGrow ?? true,
    dynamic: { headroomBytes: arena.capacityBytes, defaultNslabs: o.nslabs, maxTransient: 64, arena: arena.shared.data },
  }, { memory: { phys, arena, setMemoryDecrypted: () => {} }, events: (e) => events.push(e), guest });
  return { mem, phys, arena, events, guest };
}

/** Free blocks per order (buddyinfo counts) with nothing at `minOrder` or above. */
function fragmented(maxOrder: number, n = 64): number[] {
  return Array.from({ length: NR_PAGE_ORDERS }, (_, k) => (k <= maxOrder ? n : 0));
}

describe('the pool table and the dynamic region are sized from the configuration', () => {
  it('one entry per 1 MiB of headroom plus the default pool: 1 GiB gives 1,025 (64 is not enough)', () => {
    expect(maxPoolsFor(GiB)).toBe(1025);
    expect(maxPoolsFor(2.75 * GiB)).toBe(2817);
    const { mem } = setup({ nslabs: 512, nareas: 1, arenaBytes: GiB });
    expect(mem.dyn!.limits().max_pools).toBe(1025);
  });
  it('a static allocator has one entry and no dynamic region', () => {
    const mem = IoTlbMem.create({ nslabs: 512, nareas: 1, start: POOL_START, forceBounce: true, canGrow: true });
    expect(mem.dyn).toBeNull();
    expect(mem.canGrow).toBe(false);
  });
});

describe('swiotlb_dyn_alloc / swiotlb_alloc_pool', () => {
  it('caps the default pool size at 4 MiB (2048 slots) and limit_nareas gives 16 areas; inserted at the head, mem->nslabs grows', () => {
    const { mem } = setup({ nslabs: 32768, nareas: 32 });
    const r = mem.dyn!.dynAlloc();
    expect(r).toMatchObject({ pool: 1, nslabs: 2048, nareas: 16 });
    if (!r.ok) throw new Error('growth failed');
    expect(r.start % (4 * MiB)).toBe(0); // one order-10 buddy block
    expect(r.start + 4 * MiB).toBeLessThanOrEqual(2 ** 32); // below phys_limit (4 GiB)
    expect(mem.nslabs).toBe(32768 + 2048);
    expect(mem.debugfs().io_tlb_nslabs).toBe(34816);
    const dev = new DmaDevice('nvme0');
    // The next map on this thread sees the new pool first (list_add_rcu at the head).
    const a = mem.tblMapSingle(dev, 0x1_0000_0000, 4096, 0, DMA_TO_DEVICE, 0);
    expect(a).toBeGreaterThanOrEqual(r.start);
    expect(a).toBeLessThan(r.start + 4 * MiB);
    expect(mem.pools[0]!.kind).toBe(POOL_KIND_DYNAMIC);
    mem.tblUnmapSingle(dev, a, 4096, DMA_TO_DEVICE, 0);
    expect(mem.memUsed()).toBe(0);
  });
  it('a default pool below the cap is asked for as it is (default_nslabs), with default_nareas', () => {
    const { mem } = setup({ nslabs: 1024, nareas: 8 });
    expect(mem.dyn!.dynAlloc()).toMatchObject({ nslabs: 1024, nareas: 8 });
  });
  it('halves when no 4 MiB block is free below 4 GiB: 2 MiB, 1024 slots, 8 areas', () => {
    const { mem } = setup({ nslabs: 32768, nareas: 32, freeBlocks: fragmented(9, 4) });
    expect(mem.dyn!.dynAlloc()).toMatchObject({ nslabs: 1024, nareas: 8 });
    expect(mem.dyn!.stats().attempts).toEqual([
      { bytes: 4 * MiB, attempts: 1, ok: 0, failed: 1 },
      { bytes: 2 * MiB, attempts: 1, ok: 1, failed: 0 },
      { bytes: 1 * MiB, attempts: 0, ok: 0, failed: 0 },
    ]);
  });
  it('with no free block of order >= 8 below 4 GiB it tries 4, 2, 1 MiB and gives up, and nothing changes', () => {
    const { mem } = setup({ nslabs: 32768, nareas: 32, freeBlocks: fragmented(7) });
    expect(mem.dyn!.dynAlloc().ok).toBe(false);
    const s = mem.dyn!.stats();
    expect(s.attempts.map((a) => [a.attempts, a.ok])).toEqual([[1, 0], [1, 0], [1, 0]]);
    expect([s.grow_runs, s.grow_failed, s.pools_added]).toEqual([1, 1, 0]);
    expect(mem.nslabs).toBe(32768);
  });
  it('memory above phys_limit does not count: a guest whose only free 4 MiB blocks are above 4 GiB fails below it', () => {
    const { mem } = setup({ nslabs: 32768, nareas: 32, memBytes: 8 * GiB, freeBlocks: fragmented(7) });
    expect(mem.dyn!.dynAlloc().ok).toBe(false);
  });
});

describe('swiotlb_find_slots with can_grow', () => {
  it('a failed search schedules the growth work once while it is pending, the map fails with the usual message, and the next map after growth succeeds', () => {
    const { mem, events } = setup({ nslabs: 128, nareas: 1 });
    const dev = new DmaDevice('nvme0');
    const big = 128 * IO_TLB_SIZE; // one whole segment
    const a = mem.tblMapSingle(dev, 0x1_0000_0000, big, 0, DMA_TO_DEVICE, 0);
    expect(a).not.toBe(DMA_MAPPING_ERROR);
    // The pool is full: no atomic pool here (no CONFIG_DMA_COHERENT_POOL), so no transient pool either.
    expect(mem.tblMapSingle(dev, 0x1_0000_0000, 4096, 0, DMA_TO_DEVICE, 0)).toBe(DMA_MAPPING_ERROR);
    expect(mem.tblMapSingle(dev, 0x1_0000_0000, 4096, 0, DMA_TO_DEVICE, 0)).toBe(DMA_MAPPING_ERROR);
    let s = mem.dyn!.stats();
    expect([s.scheduled, s.schedule_noop, s.transient_failed]).toEqual([1, 1, 2]);
    expect(events.filter((e) => e.event === 'map_failure').map((e) => e.msg)).toEqual([
      'swiotlb buffer is full (sz: 4096 bytes), total 128 (slots), used 128 (slots)',
      'swiotlb buffer is full (sz: 4096 bytes), total 128 (slots), used 128 (slots)',
    ]);
    expect(mem.dyn!.takeWork()).toBe(true);
    expect(mem.dyn!.takeWork()).toBe(false);
    expect(mem.dyn!.dynAlloc()).toMatchObject({ nslabs: 128, nareas: 1 });
    const b = mem.tblMapSingle(dev, 0x1_0000_0000, 4096, 0, DMA_TO_DEVICE, 0);
    expect(b).not.toBe(DMA_MAPPING_ERROR);
    expect(mem.tblMapSingle(dev, 0x1_0000_0000, big, 0, DMA_TO_DEVICE, 0)).toBe(DMA_MAPPING_ERROR);
    // "total" includes the dynamic pool.
    expect(events.at(-1)!.msg).toBe('swiotlb buffer is full (sz: 262144 bytes), total 256 (slots), used 130 (slots)');
    s = mem.dyn!.stats();
    expect(s.scheduled).toBe(2); // after the work ran, a failed search queues it again
    mem.tblUnmapSingle(dev, a, big, DMA_FROM_DEVICE, 0);
    mem.tblUnmapSingle(dev, b, 4096, DMA_FROM_DEVICE, 0);
    expect(mem.memUsed()).toBe(0);
  });
  it('an oversize request fails at once and schedules nothing', () => {
    const { mem } = setup({ nslabs: 128, nareas: 1 });
    expect(mem.tblMapSingle(new DmaDevice('nvme0'), 0x1_0000_0000, 128 * IO_TLB_SIZE + 1, 0, DMA_TO_DEVICE, 0)).toBe(DMA_MAPPING_ERROR);
    expect(mem.dyn!.stats().scheduled).toBe(0);
  });
  it('without can_grow a failed search schedules nothing', () => {
    const { mem } = setup({ nslabs: 128, nareas: 1, canGrow: false });
    const dev = new DmaDevice('nvme0');
    mem.tblMapSingle(dev, 0x1_0000_0000, 128 * IO_TLB_SIZE, 0, DMA_TO_DEVICE, 0);
    expect(mem.tblMapSingle(dev, 0x1_0000_0000, 4096, 0, DMA_TO_DEVICE, 0)).toBe(DMA_MAPPING_ERROR);
    expect(mem.dyn!.stats().scheduled).toBe(0);
  });
  it('searches area-offset-major, pool-minor, newest pool first', () => {
    const { mem } = setup({ nslabs: 512, nareas: 4 });
    const r = mem.dyn!.dynAlloc();
    if (!r.ok) throw new Error('growth failed');
    const dev = new DmaDevice('nvme0');
    mem.cpu = 1;
    // k = 0: the new pool's area 1, then the default pool's area 1.
    const a = mem.tblMapSingle(dev, 0x1_0000_0000, 128 * IO_TLB_SIZE, 0, DMA_TO_DEVICE, 0);
    expect(a).toBe(r.start + 128 * IO_TLB_SIZE);
    const b = mem.tblMapSingle(dev, 0x1_0000_0000, 128 * IO_TLB_SIZE, 0, DMA_TO_DEVICE, 0);
    expect(b).toBe(POOL_START + 128 * IO_TLB_SIZE);
    // k = 1: area 2 of the new pool.
    expect(mem.tblMapSingle(dev, 0x1_0000_0000, 128 * IO_TLB_SIZE, 0, DMA_TO_DEVICE, 0)).toBe(r.start + 256 * IO_TLB_SIZE);
  });
});

describe('swiotlb_find_pool (dynamic build)', () => {
  it('returns none until the device has used a bounce buffer (dma_uses_io_tlb), then finds dynamic pools on another thread\'s handle', () => {
    const { mem, guest } = setup({ nslabs: 512, nareas: 1 });
    const dev = new DmaDevice('nvme0');
    // An unmap of an address inside the default pool by a device that never bounced passes through.
    mem.tblUnmapSingle(dev, POOL_START, 4096, DMA_TO_DEVICE, 0);
    expect(mem.stats[7]).toBe(1); // STAT_UNMAP_PASSTHROUGH
    const r = mem.dyn!.dynAlloc();
    if (!r.ok) throw new Error('growth failed');
    // Another thread's handle, attached before the pool was published, takes it in at its next map.
    const other = IoTlbMem.attach(mem.shared(), { guest, cpu: 0 });
    expect(Atomics.load(other.header, MEM_NPOOLS)).toBe(2);
    const a = mem.tblMapSingle(dev, 0x1_0000_0000, 4096, 0, DMA_TO_DEVICE, 0);
    expect(a).toBeGreaterThanOrEqual(r.start);
    const dev2 = new DmaDevice('nvme0'); // the same device as seen by the other thread
    other.tblUnmapSingle(dev2, a, 4096, DMA_TO_DEVICE, 0);
    expect(mem.memUsed()).toBe(0);
    expect(other.pools.map((p) => p.kind)).toEqual([POOL_KIND_DYNAMIC, 0]);
  });
});

describe('transient pools (swiotlb_find_slots, swiotlb_del_transient)', () => {
  /** A full 128-slot default pool over a guest with an atomic pool of `coherent` bytes per pool (coherent_pool=). */
  function full(coherent: number, memBytes = GiB, devOpts: { dmaMask?: number } = {}) {
    const phys = GuestPhysMem.create({ memBytes });
    const arena = DecryptedArena.create(64 * MiB);
    const { pool: atomic } = AtomicPool.create({ phys, arena, coherentPoolBytes: coherent });
    const events: SwiotlbEvent[] = [];
    const guest = new GuestMemory(new SharedArrayBuffer(4 * MiB), 0x1_0000_0000);
    const memory = { arena, atomicPool: atomic };
    const mem = IoTlbMem.create({
      nslabs: 128, nareas: 1, start: POOL_START, forceBounce: true, canGrow: true,
      dynamic: { headroomBytes: arena.capacityBytes, defaultNslabs: 128, maxTransient: 64, arena: arena.shared.data },
    }, { memory, events: (e) => events.push(e), guest });
    const other = IoTlbMem.attach(mem.shared(), { memory, guest, cpu: 1 });
    const dev = new DmaDevice('eth0', devOpts);
    const filler = mem.tblMapSingle(dev, 0x1_0000_0000, 128 * IO_TLB_SIZE, 0, DMA_TO_DEVICE, 0);
    expect(filler).not.toBe(DMA_MAPPING_ERROR);
    return { mem, other, atomic, arena, events, guest, dev };
  }

  it('a failed search makes a pool of exactly nr_slots(size), one area, from the atomic pool; counted in total_used and transient_nslabs, never in nslabs', () => {
    const { mem, atomic, arena, guest, dev } = full(256 * 1024);
    const avail0 = atomic.stats().avail;
    guest.bytes.fill(0x5a, 0, 3000);
    const a = mem.tblMapSingle(dev, 0x1_0000_0000, 3000, 0, DMA_TO_DEVICE, 0);
    expect(a).not.toBe(DMA_MAPPING_ERROR);
    expect(a < POOL_START || a >= POOL_START + 128 * IO_TLB_SIZE).toBe(true);
    const d = mem.debugfs();
    expect([d.io_tlb_nslabs, d.io_tlb_used, d.io_tlb_transient_nslabs]).toEqual([128, 128 + 2, 2]);
    expect(atomic.stats().avail).toBe(avail0 - 4096); // 2 slots = 4 KiB, one page
    const tp = mem.findPool(dev, a)!;
    expect([tp.kind, tp.nslabs, tp.nareas, tp.start]).toEqual([2, 2, 1, a]); // POOL_KIND_TRANSIENT
    expect(Array.from(tp.list)).toEqual([0, 0]); // both slots in use (list values were min(128 - i, nslabs - i) = 2, 1)
    // The bounce bytes are the decrypted arena's: the map-time copy landed there.
    expect(arena.data[tp.data.byteOffset + 2999]).toBe(0x5a);
    expect(mem.dyn!.stats()).toMatchObject({ transient_created: 1, transient_live: 1, transient_peak: 1, scheduled: 1 });
  });

  it('swiotlb_find_pool on another thread finds it on the device\'s list; unmap copies back, then the pool leaves total_used and goes back to the atomic pool exactly once', () => {
    const { mem, other, atomic, guest, dev } = full(256 * 1024);
    const avail0 = atomic.stats().avail;
    const a = mem.tblMapSingle(dev, 0x1_0000_0000, 4096, 0, DMA_FROM_DEVICE, 0);
    const tp = mem.findPool(dev, a)!;
    tp.data.fill(0xc3, 0, 4096); // the device wrote into the bounce buffer
    const dev1 = new DmaDevice('eth0'); // the same device, as the other thread knows it
    expect(other.findPool(dev1, a)?.start).toBe(a);
    other.tblUnmapSingle(dev1, a, 4096, DMA_FROM_DEVICE, 0);
    expect(guest.bytes[4095]).toBe(0xc3); // copy-back before the pool went
    const d = mem.debugfs();
    expect([d.io_tlb_used, d.io_tlb_transient_nslabs]).toEqual([128, 0]);
    expect(mem.dyn!.stats()).toMatchObject({ transient_live: 0, transient_freed: 1, transient_retired: 0 });
    expect(atomic.stats().avail).toBe(avail0);
    expect(mem.findPool(dev, a)).toBeNull();
    expect(mem.dyn!.reclaim()).toBe(0); // nothing freed twice
  });

  it('the grace period: while a thread that started its walk before the unlink is still reading, the memory stays out of the atomic pool', () => {
    const { mem, atomic, dev } = full(256 * 1024);
    const avail0 = atomic.stats().avail;
    const a = mem.tblMapSingle(dev, 0x1_0000_0000, 4096, 0, DMA_TO_DEVICE, 0);
    // A reader (rcu_read_lock) that entered at the current epoch, before the unlink.
    const r = mem.dyn!.r;
    const slot = DYN_READERS + Atomics.add(r, DYN_READERS_USED, 1) * READER_INTS;
    Atomics.store(r, slot, Atomics.load(r, DYN_EPOCH));
    mem.tblUnmapSingle(dev, a, 4096, DMA_TO_DEVICE, 0);
    expect(mem.debugfs().io_tlb_transient_nslabs).toBe(0); // unlinked and uncounted at once
    expect(mem.dyn!.stats()).toMatchObject({ transient_freed: 0, transient_retired: 1 });
    expect(atomic.stats().avail).toBe(avail0 - 4096);
    expect(mem.dyn!.reclaim()).toBe(0);
    // A reader that entered after the unlink does not hold it back.
    Atomics.store(r, slot, Atomics.load(r, DYN_EPOCH));
    expect(mem.dyn!.reclaim()).toBe(1);
    expect(mem.dyn!.reclaim()).toBe(0);
    expect(atomic.stats().avail).toBe(avail0);
  });

  it('a device that cannot address the first atomic pool\'s block gets one from the next pool (dma_coherent_ok in dma_alloc_from_pool)', () => {
    // 8 GiB: the GFP_KERNEL pool lies above 4 GiB (ZONE_NORMAL), tried first; DMA32 below it.
    const { mem, atomic, dev } = full(256 * 1024, 8 * GiB, { dmaMask: 0xffffffff });
    const before = atomic.stats();
    const a = mem.tblMapSingle(dev, 0x1_0000_0000, 4096, 0, DMA_TO_DEVICE, 0);
    expect(a).not.toBe(DMA_MAPPING_ERROR);
    expect(a + 4096 - 1).toBeLessThanOrEqual(0xffffffff);
    expect(mem.dyn!.stats()).toMatchObject({ transient_created: 1, transient_failed: 0 });
    const after = atomic.stats();
    // The kernel pool's block went straight back: only DMA32 is 4 KiB lower, one allocation counted.
    expect(after.pools.pool_size_kernel).toBe(before.pools.pool_size_kernel);
    expect(after.avail).toBe(before.avail - 4096);
    mem.tblUnmapSingle(dev, a, 4096, DMA_TO_DEVICE, 0);
  });

  it('Kelley\'s objection: a burst of non-blocking maps on a full pool drains the atomic pool through transient pools, then maps fail with the usual message', () => {
    const { mem, atomic, events, dev } = full(256 * 1024);
    const avail0 = atomic.stats().avail;
    const size = 64 * 1024; // 32 slots: an order-4 (64 KiB) block each
    const got: number[] = [];
    for (let i = 0; i < 64; i++) {
      const a = mem.tblMapSingle(dev, 0x1_0000_0000, size, 0, DMA_TO_DEVICE, 0);
      if (a === DMA_MAPPING_ERROR) break;
      got.push(a);
    }
    expect(got.length).toBe(avail0 / size); // every byte of the atomic pool went to transient pools
    expect(atomic.stats().avail).toBe(0);
    const s = mem.dyn!.stats();
    expect([s.transient_created, s.transient_failed, s.transient_fail_nomem]).toEqual([got.length, 1, 1]);
    expect(mem.debugfs().io_tlb_transient_nslabs).toBe(32 * got.length);
    // "total" excludes transient pools, "used" (total_used) includes them.
    expect(events.filter((e) => e.event === 'map_failure').at(-1)!.msg)
      .toBe(`swiotlb buffer is full (sz: 65536 bytes), total 128 (slots), used ${128 + 32 * got.length} (slots)`);
    for (const a of got) mem.tblUnmapSingle(dev, a, size, DMA_TO_DEVICE, 0);
    expect(atomic.stats().avail).toBe(avail0);
    expect(mem.memUsed()).toBe(128);
  });
});
