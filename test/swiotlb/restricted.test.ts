// Restricted DMA pools (reference §13; kernel/dma/swiotlb.c rmem_swiotlb_setup and
// rmem_swiotlb_device_init, drivers/of/of_reserved_mem.c): a device's own io_tlb_mem, found through
// dev->dma_io_tlb_mem by every DMA call. Expected values are worked out by hand: a 64 KiB region is
// 64 KiB / 2 KiB = 32 slots in one area; a 16 KiB map takes 16 KiB / 2 KiB = 8 slots, so four fit.
import { describe, expect, it } from 'vitest';
import { DmaDevice, swiotlbDevInit } from '../../src/dma/device.js';
import { dmaMapSingle, dmaUnmapSingle } from '../../src/dma/direct.js';
import { DecryptedArena } from '../../src/memory/arena.js';
import { GuestMemory } from '../../src/memory/guest.js';
import { GuestPhysMem } from '../../src/memory/phys.js';
import { DMA_FROM_DEVICE, DMA_MAPPING_ERROR, DMA_TO_DEVICE, POOL_START } from '../../src/swiotlb/constants.js';
import { POOL_KIND_RESTRICTED, STAT_UNMAP_PASSTHROUGH } from '../../src/swiotlb/layout.js';
import { IoTlbMem, type SwiotlbEvent } from '../../src/swiotlb/mem.js';
import {
  attachRestrictedMem, createRestrictedMem, parseRestrictedPools, reserveRestrictedPools, rmemSwiotlbDeviceInit,
} from '../../src/swiotlb/restricted.js';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const GUEST = 0x1_0000_0000;

/** A 1 GiB guest whose default pool has `defaultNslabs` slots, eth0 with a restricted region of `bytes`. */
function setup(o: { bytes: number; defaultNslabs?: number; dynamic?: boolean }) {
  const phys = GuestPhysMem.create({ memBytes: GiB });
  const { regions, bootLines } = reserveRestrictedPools(phys, [{ device: 'eth0', bytes: o.bytes }]);
  const events: SwiotlbEvent[] = [];
  const guest = new GuestMemory(new SharedArrayBuffer(4 * MiB), GUEST);
  const arena = DecryptedArena.create(64 * MiB);
  const nslabs = o.defaultNslabs ?? 512;
  const mem = IoTlbMem.create({
    nslabs, nareas: 1, start: POOL_START, forceBounce: true, canGrow: o.dynamic === true,
    ...(o.dynamic === true ? { dynamic: { headroomBytes: arena.capacityBytes, defaultNslabs: nslabs, maxTransient: 64, arena: arena.shared.data } } : {}),
  }, { guest, events: (e) => events.push(e), ...(o.dynamic === true ? { memory: { phys, arena, setMemoryDecrypted: () => {} } } : {}) });
  const r = createRestrictedMem(regions[0]!, { cpus: 1 });
  const rmem = attachRestrictedMem(r.shared, 0, { guest, events: (e) => events.push(e) });
  const eth0 = new DmaDevice('eth0');
  const nvme0 = new DmaDevice('nvme0', { minAlignMask: 0xfff });
  rmemSwiotlbDeviceInit(eth0, rmem);
  swiotlbDevInit(nvme0, mem);
  return { phys, mem, rmem, r, eth0, nvme0, events, bootLines, region: regions[0]! };
}

describe('rmem_swiotlb_device_init: the restricted io_tlb_mem', () => {
  it('one pool of size >> IO_TLB_SHIFT slots in one area, force_bounce, can_grow never set, at the region memblock placed', () => {
    const { r, region } = setup({ bytes: 64 * 1024 });
    // memblock, top-down anywhere: a 1 GiB guest's RAM ends at 1 GiB, so the 64 KiB region is its last 16 pages.
    expect(region.base).toBe(GiB - 64 * 1024);
    expect(r.mem.nslabs).toBe(32);
    expect(r.mem.pools.length).toBe(1);
    const p = r.mem.defpool;
    expect([p.start, p.nslabs, p.nareas, p.areaNslabs, p.kind]).toEqual([region.base, 32, 1, 32, POOL_KIND_RESTRICTED]);
    expect(r.mem.forceBounce).toBe(true);
    expect(r.mem.canGrow).toBe(false);
    expect(r.mem.dyn).toBeNull();
    // One segment's list values stop at the pool end: 32, 31, ..., 1.
    expect(Array.from(p.list.subarray(0, 3))).toEqual([32, 31, 30]);
    expect(p.list[31]).toBe(1);
  });

  it('prints the kernel\'s lines: rmem_swiotlb_setup\'s, then of_reserved_mem\'s (size / SZ_1M rounds down)', () => {
    expect(setup({ bytes: 64 * 1024 }).bootLines).toEqual([
      'software IO TLB: Reserved memory: created restricted DMA pool at 0x000000003fff0000, size 0 MiB',
      'OF: reserved mem: initialized node restricted-dma-eth0, compatible id restricted-dma-pool',
      'OF: reserved mem: 0x000000003fff0000..0x000000003fffffff (64 KiB) map non-reusable restricted-dma-eth0',
    ]);
    const two = setup({ bytes: 2 * MiB }).bootLines;
    expect(two[0]).toBe('software IO TLB: Reserved memory: created restricted DMA pool at 0x000000003fe00000, size 2 MiB');
    expect(two[2]).toBe('OF: reserved mem: 0x000000003fe00000..0x000000003fffffff (2048 KiB) map non-reusable restricted-dma-eth0');
  });

  it('a region memblock cannot place is the kernel\'s pr_err as a one-line input error', () => {
    const phys = GuestPhysMem.create({ memBytes: 256 * MiB });
    expect(() => reserveRestrictedPools(phys, [{ device: 'eth0', bytes: 512 * MiB }])).toThrow(
      /^--restricted-pool eth0: OF: reserved mem: failed to allocate memory for node 'restricted-dma-eth0': size 512 MiB: a 512MiB region does not fit/);
  });
});

describe('the per-device allocator lookup (dev->dma_io_tlb_mem)', () => {
  it('a device with a small restricted pool fails its maps while the default pool has room; the other device is unaffected', () => {
    const { mem, rmem, eth0, nvme0, events, region } = setup({ bytes: 64 * 1024 });
    const eth: number[] = [];
    for (let i = 0; i < 4; i++) {
      const a = dmaMapSingle(mem, eth0, GUEST + i * 16384, 16384, DMA_FROM_DEVICE);
      expect(a).toBeGreaterThanOrEqual(region.base);
      expect(a + 16384).toBeLessThanOrEqual(region.base + 64 * 1024);
      eth.push(a);
    }
    expect(rmem.memUsed()).toBe(32);
    expect(mem.memUsed()).toBe(0);
    // The fifth finds its own pool full, though the default pool's 512 slots are free.
    expect(dmaMapSingle(mem, eth0, GUEST + 4 * 16384, 16384, DMA_FROM_DEVICE)).toBe(DMA_MAPPING_ERROR);
    const full = events.filter((e) => e.event === 'map_failure');
    expect(full).toHaveLength(1);
    expect(full[0]).toMatchObject({
      device: 'eth0', total: 32, used: 32,
      msg: 'swiotlb buffer is full (sz: 16384 bytes), total 32 (slots), used 32 (slots)',
    });
    expect(rmem.mapFailures()).toBe(1);
    expect(mem.mapFailures()).toBe(0);
    // nvme0 maps from the default pool as before.
    const n = dmaMapSingle(mem, nvme0, GUEST + 2 * MiB, 16384, DMA_TO_DEVICE);
    expect(n).toBeGreaterThanOrEqual(POOL_START);
    expect(n).toBeLessThan(POOL_START + 512 * 2048);
    expect(mem.memUsed()).toBe(8);
    expect(rmem.memUsed()).toBe(32);
    // Per-area figures of the restricted pool: its one area, full at some time.
    expect(rmem.defpool.areaOccupancy()).toEqual({ used: [32], used_hiwater: [32] });
    expect(rmem.debugfs()).toMatchObject({ io_tlb_nslabs: 32, io_tlb_used: 32, io_tlb_used_hiwater: 32 });
    for (const a of eth) dmaUnmapSingle(mem, eth0, a, 16384, DMA_FROM_DEVICE);
    dmaUnmapSingle(mem, nvme0, n, 16384, DMA_TO_DEVICE);
    expect([rmem.memUsed(), mem.memUsed()]).toEqual([0, 0]);
    expect(rmem.defpool.list[0]).toBe(32); // released whole: back to the initial list
  });

  it('swiotlb_find_pool searches the device\'s own mem: a restricted pool\'s address is no bounce buffer of a default-pool device', () => {
    const { mem, rmem, eth0, nvme0 } = setup({ bytes: 64 * 1024 });
    const a = dmaMapSingle(mem, eth0, GUEST, 4096, DMA_TO_DEVICE);
    expect(a).not.toBe(DMA_MAPPING_ERROR);
    const before = mem.stats[STAT_UNMAP_PASSTHROUGH]!;
    dmaUnmapSingle(mem, nvme0, a, 4096, DMA_TO_DEVICE);
    expect(mem.stats[STAT_UNMAP_PASSTHROUGH]).toBe(before + 1);
    expect(rmem.memUsed()).toBe(2); // still mapped: only eth0's unmap releases it
    dmaUnmapSingle(mem, eth0, a, 4096, DMA_TO_DEVICE);
    expect(rmem.memUsed()).toBe(0);
  });

  it('the bounce copies go through the restricted pool\'s bytes', () => {
    const { mem, rmem, eth0 } = setup({ bytes: 64 * 1024 });
    const g = new GuestMemory(new SharedArrayBuffer(4 * MiB), GUEST);
    rmem.guest = g;
    g.bytes.fill(0x5a, 0, 3000);
    const a = dmaMapSingle(mem, eth0, GUEST, 3000, DMA_TO_DEVICE);
    const off = a - rmem.defpool.start;
    expect(rmem.defpool.data[off]).toBe(0x5a);
    expect(rmem.defpool.data[off + 2999]).toBe(0x5a);
    expect(mem.defpool.data.every((b) => b === 0)).toBe(true);
    dmaUnmapSingle(mem, eth0, a, 3000, DMA_TO_DEVICE);
  });

  it('never grows with dynamic swiotlb on: a full restricted pool schedules no growth and tries no transient pool', () => {
    const { mem, rmem, eth0, nvme0, events } = setup({ bytes: 64 * 1024, defaultNslabs: 128, dynamic: true });
    expect(mem.canGrow).toBe(true);
    for (let i = 0; i < 4; i++) expect(dmaMapSingle(mem, eth0, GUEST + i * 16384, 16384, DMA_FROM_DEVICE)).not.toBe(DMA_MAPPING_ERROR);
    expect(dmaMapSingle(mem, eth0, GUEST, 16384, DMA_FROM_DEVICE)).toBe(DMA_MAPPING_ERROR);
    const s = mem.dyn!.stats();
    expect([s.scheduled, s.transient_created, s.transient_failed]).toEqual([0, 0, 0]);
    expect([rmem.nslabs, mem.nslabs]).toEqual([32, 128]);
    expect(events.filter((e) => e.event === 'map_failure').map((e) => e.msg)).toEqual([
      'swiotlb buffer is full (sz: 16384 bytes), total 32 (slots), used 32 (slots)',
    ]);
    // The default allocator still grows for its own device: a full default pool schedules the work.
    expect(dmaMapSingle(mem, nvme0, GUEST, 128 * 2048 - 4096, DMA_TO_DEVICE)).not.toBe(DMA_MAPPING_ERROR);
    dmaMapSingle(mem, nvme0, GUEST, 8192, DMA_TO_DEVICE);
    expect(mem.dyn!.stats().scheduled).toBe(1);
  });
});

describe('--restricted-pool DEV=SIZE', () => {
  const devices = ['nvme0', 'eth0'];
  it('takes repeated values and comma lists', () => {
    expect(parseRestrictedPools(['eth0=1M', 'nvme0=64k'], '--restricted-pool', devices)).toEqual([
      { device: 'eth0', bytes: MiB }, { device: 'nvme0', bytes: 65536 },
    ]);
    expect(parseRestrictedPools(['eth0=4k,nvme0=1G'], '--restricted-pool', devices)).toEqual([
      { device: 'eth0', bytes: 4096 }, { device: 'nvme0', bytes: GiB },
    ]);
    expect(parseRestrictedPools([''], 'COCO_RESTRICTED_POOL (.env.example)', devices)).toEqual([]);
  });
  it.each([
    ['wlan0=1M', /^--restricted-pool: "wlan0" is not a device of the run; expected DEV=SIZE.*\(devices: nvme0, eth0\)$/],
    ['eth0', /^--restricted-pool: "eth0" is not valid; expected DEV=SIZE/],
    ['=1M', /^--restricted-pool: "=1M" is not valid/],
    ['eth0=1M,eth0=2M', /^--restricted-pool: eth0 is given a restricted pool twice/],
    ['eth0=6k', /^--restricted-pool eth0: "6k" is not valid; expected a whole number of 4 KiB pages from 4k to 1G/],
    ['eth0=2G', /whole number of 4 KiB pages from 4k to 1G/],
    ['eth0=0', /^--restricted-pool eth0: "0" is zero/],
    ['eth0=lots', /^--restricted-pool eth0: "lots" is not a size/],
  ])('%s is a one-line input error', (value, msg) => {
    let err: unknown;
    try {
      parseRestrictedPools([value], '--restricted-pool', devices);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ name: 'InputError', exitStatus: 2 });
    expect((err as Error).message).toMatch(msg);
    expect((err as Error).message).not.toContain('\n');
  });
});
