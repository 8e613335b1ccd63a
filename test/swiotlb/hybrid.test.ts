// [proposal] The hybrid policy (Robin Murphy, seed thread 000): a MAY_BLOCK map above the throttle
// threshold waits on throttle_sem for at most the timeout, then grows the allocator from its own
// context and searches again; other maps behave as in dynamic swiotlb. Expected values worked from
// the throttling RFC's init_throttling (70% / 65% of nslabs, rounded down) and swiotlb_alloc_pool
// (default_nslabs slots, default_nareas areas, at the head of the pool list).
import { describe, expect, it } from 'vitest';
import { DmaDevice } from '../../src/dma/device.js';
import { DecryptedArena } from '../../src/memory/arena.js';
import { GuestMemory } from '../../src/memory/guest.js';
import { GuestPhysMem, NR_PAGE_ORDERS, ZONE_DMA32 } from '../../src/memory/phys.js';
import { DMA_ATTR_MAY_BLOCK, DMA_MAPPING_ERROR, DMA_TO_DEVICE, IO_TLB_SIZE, POOL_START } from '../../src/swiotlb/constants.js';
import { IoTlbMem, type SwiotlbEvent } from '../../src/swiotlb/mem.js';
import { DOWN_ACQUIRED, ThrottleState, WAIT_GRANTED, WAIT_TIMED_OUT } from '../../src/swiotlb/throttle.js';

const MiB = 1024 ** 2;
const GUEST = 0x1_0000_0000;

function setup(o: { timeoutMs: number; freeBlocks?: number[] }) {
  const phys = GuestPhysMem.create({ memBytes: 1024 * MiB });
  if (o.freeBlocks !== undefined) expect(phys.setFreeBlocks(ZONE_DMA32, o.freeBlocks)).toBe(true);
  const arena = DecryptedArena.create(16 * MiB);
  const events: SwiotlbEvent[] = [];
  const guest = new GuestMemory(new SharedArrayBuffer(4 * MiB), GUEST);
  const mem = IoTlbMem.create({
    nslabs: 512, nareas: 1, start: POOL_START, forceBounce: true, canGrow: true, throttle: { enabled: true },
    dynamic: { headroomBytes: arena.capacityBytes, defaultNslabs: 512, maxTransient: 16, arena: arena.shared.data },
    hybrid: { timeoutMs: o.timeoutMs, highPercent: 70, lowPercent: 65, decryptLatencyNsPerMiB: 0, nslabs: 512 },
  }, { memory: { phys, arena }, events: (e) => events.push(e), guest });
  const dev = new DmaDevice('nvme0');
  const map = (bytes: number, attrs: number) => mem.tblMapSingle(dev, GUEST, bytes, 0, DMA_TO_DEVICE, attrs);
  const unmap = (addr: number, bytes: number) => mem.tblUnmapSingle(dev, addr, bytes, DMA_TO_DEVICE, 0);
  // 3 x 256 KiB without MAY_BLOCK: 384 of 512 slots used, above high_throttle = floor(512 * 70 / 100) = 358.
  for (let i = 0; i < 3; i++) expect(map(256 * 1024, 0)).not.toBe(DMA_MAPPING_ERROR);
  // A MAY_BLOCK map above the threshold takes the free semaphore at once and holds it while mapped.
  const holder = map(64 * 1024, DMA_ATTR_MAY_BLOCK);
  expect(holder).not.toBe(DMA_MAPPING_ERROR);
  expect(mem.throttleSnapshot().held).toBe(true);
  expect(mem.memUsed()).toBe(416);
  return { mem, dev, map, unmap, holder, events };
}

const inPool = (addr: number, start: number, nslabs: number) => addr >= start && addr < start + nslabs * IO_TLB_SIZE;

describe('[proposal] hybrid: the timed wait, then a synchronous growth', () => {
  it('with a zero timeout a MAY_BLOCK map behind the holder grows a 512-slot pool at once and maps into it; the thresholds then follow io_tlb_nslabs', () => {
    const { mem, map, unmap, holder, events } = setup({ timeoutMs: 0 });
    expect(mem.throttleDebugfs()).toMatchObject({ high_throttle: 358, low_throttle: 332 });
    const a = map(64 * 1024, DMA_ATTR_MAY_BLOCK);
    expect(a).not.toBe(DMA_MAPPING_ERROR);
    // The wait's end is logged as a timeout (the log's throttle_end with timed_out), then the growth.
    const ends = events.filter((e) => e.event === 'throttle_end');
    expect(ends).toHaveLength(1);
    expect(ends[0]).toMatchObject({ timed_out: true, size: 64 * 1024, used: 416, reason: 'high', high_throttle: 358 });
    expect(events.filter((e) => e.event === 'pool_created')).toHaveLength(1);
    const added = mem.dyn!.addedPools();
    expect(added.map((p) => [p.pool, p.nslabs, p.nareas])).toEqual([[1, 512, 1]]);
    expect(inPool(a, added[0]!.start, 512)).toBe(true); // the new pool heads the list
    expect(mem.nslabs).toBe(1024);
    expect(mem.hybrid!.stats()).toMatchObject({ timeouts: 1, sync_grows: 1, sync_grow_bytes: MiB, sync_grow_failed: 0, sync_grow_skipped: 0 });
    // It left the queue and does not hold the semaphore: the holder still does.
    expect(mem.throttleSnapshot()).toMatchObject({ queue_len: 0, held: true });
    expect(mem.dyn!.stats().grow_runs).toBe(0); // not the worker's growth
    unmap(a, 64 * 1024);
    expect(mem.throttleSnapshot().held).toBe(true);
    unmap(holder, 64 * 1024);
    expect(mem.throttleSnapshot()).toMatchObject({ held: false, count: 1 });
    // The next MAY_BLOCK decision sees io_tlb_nslabs 1024: 716 and 665 slots, and 384 used is below both.
    const b = map(4096, DMA_ATTR_MAY_BLOCK);
    expect(mem.throttleDebugfs()).toMatchObject({ high_throttle: 716, low_throttle: 665 });
    expect(mem.throttleSnapshot().held).toBe(false);
    unmap(b, 4096);
  });

  it('with a long timeout the holder\'s unmap during the wait serves the waiter: no growth', () => {
    const { mem, map, unmap, holder } = setup({ timeoutMs: 60_000 });
    let unmapped = false;
    // What the waiting vCPU does while it sleeps: takes the holder's completion, whose unmap up()s.
    mem.throttle.whileWaiting = () => {
      if (unmapped) return;
      unmapped = true;
      unmap(holder, 64 * 1024);
    };
    const a = map(64 * 1024, DMA_ATTR_MAY_BLOCK);
    expect(unmapped).toBe(true);
    expect(a).not.toBe(DMA_MAPPING_ERROR);
    expect(inPool(a, POOL_START, 512)).toBe(true);
    expect(mem.nslabs).toBe(512);
    expect(mem.dyn!.addedPools()).toEqual([]);
    expect(mem.hybrid!.stats()).toMatchObject({ timeouts: 0, sync_grows: 0, sync_grow_failed: 0, sync_grow_skipped: 0 });
    // Granted, it is the holder now, as a throttled map is; its unmap releases the semaphore.
    expect(mem.throttleSnapshot().held).toBe(true);
    unmap(a, 64 * 1024);
    expect(mem.throttleSnapshot()).toMatchObject({ held: false, count: 1 });
  });

  it('does not grow when io_tlb_nslabs grew during the wait (another thread\'s pool)', () => {
    const { mem, map } = setup({ timeoutMs: 0 });
    let grown = false;
    mem.throttle.whileWaiting = () => {
      if (grown) return;
      grown = true;
      expect(mem.dyn!.addPool().ok).toBe(true); // as the growth worker or another vCPU would
    };
    const a = map(64 * 1024, DMA_ATTR_MAY_BLOCK);
    expect(grown).toBe(true);
    expect(a).not.toBe(DMA_MAPPING_ERROR);
    expect(mem.dyn!.addedPools()).toHaveLength(1);
    expect(mem.nslabs).toBe(1024);
    expect(mem.hybrid!.stats()).toMatchObject({ timeouts: 1, sync_grows: 0, sync_grow_skipped: 1 });
  });

  it('a growth that finds no memory says "Failed to allocate new pool" and the search still runs (96 slots are free)', () => {
    // No free block of order 8 (1 MiB) or above below 4 GiB: 4, 2 and 1 MiB all fail.
    const frag = Array.from({ length: NR_PAGE_ORDERS }, (_, k) => (k <= 7 ? 64 : 0));
    const { mem, map, events } = setup({ timeoutMs: 0, freeBlocks: frag });
    const a = map(64 * 1024, DMA_ATTR_MAY_BLOCK);
    expect(a).not.toBe(DMA_MAPPING_ERROR);
    expect(inPool(a, POOL_START, 512)).toBe(true);
    expect(mem.hybrid!.stats()).toMatchObject({ timeouts: 1, sync_grows: 0, sync_grow_failed: 1 });
    const failed = events.filter((e) => e.event === 'growth_failed');
    expect(failed.map((e) => e.msg)).toEqual(['software IO TLB: Failed to allocate new pool']);
    expect(failed[0]!.event === 'growth_failed' && failed[0]!.reason).toMatch(/^\[proposal\] hybrid synchronous growth: no free block of order 8 below 4 GiB$/);
  });

  it('a map without MAY_BLOCK never waits: as in dynamic swiotlb it schedules the worker and tries a transient pool', () => {
    const { mem, map } = setup({ timeoutMs: 60_000 });
    expect(map(192 * 1024, 0)).not.toBe(DMA_MAPPING_ERROR); // 96 slots: the pool is full
    expect(map(4096, 0)).toBe(DMA_MAPPING_ERROR); // no atomic pool here: no transient pool either
    expect(mem.dyn!.stats()).toMatchObject({ scheduled: 1, transient_failed: 1, grow_runs: 0 });
    expect(mem.hybrid!.stats()).toMatchObject({ timeouts: 0, sync_grows: 0 });
    expect(mem.nslabs).toBe(512);
  });
});

describe('throttle_sem: down() with a deadline (the hybrid policy\'s wait)', () => {
  it('a waiter past its deadline leaves the queue and the others keep their order', () => {
    const t = ThrottleState.create(512, { enabled: true, waitSliceMs: 1 });
    expect(t.downBegin(0, 'nvme0', 4096)).toBe(DOWN_ACQUIRED);
    const first = t.downBegin(1, 'nvme0', 4096);
    const second = t.downBegin(2, 'nvme0', 8192);
    expect(t.snapshot().waiters.map((w) => w.vcpu)).toEqual([1, 2]);
    expect(t.downWait(first, 0)).toBe(WAIT_TIMED_OUT); // a deadline in the past
    expect(t.snapshot().waiters.map((w) => w.vcpu)).toEqual([2]);
    expect(t.snapshot().aborted_waits).toBe(0); // a timeout is not an abort
    t.up(); // hands the semaphore to the one still queued
    expect(t.snapshot().holder!.vcpu).toBe(2);
    expect(t.downWait(second, 0)).toBe(WAIT_GRANTED); // granted before the deadline was looked at
    t.up();
    expect(t.snapshot()).toMatchObject({ count: 1, queue_len: 0, holder: null });
  });
});
