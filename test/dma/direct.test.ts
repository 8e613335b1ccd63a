import { describe, expect, it } from 'vitest';
import { DmaDevice } from '../../src/dma/device.js';
import {
  ScatterList, dmaMapSg, dmaMapSgtable, dmaMapSingle, dmaMaxMappingSize, dmaRecommendMayBlock, dmaSyncSgForCpu, dmaUnmapSg,
  dmaUnmapSingle,
} from '../../src/dma/direct.js';
import { GuestMemory } from '../../src/memory/guest.js';
import { DMA_ATTR_MAY_BLOCK, DMA_FROM_DEVICE, DMA_MAPPING_ERROR, DMA_TO_DEVICE, EIO } from '../../src/swiotlb/constants.js';
import { STAT_MAP_FAIL_NOT_CAPABLE, STAT_UNMAP_PASSTHROUGH } from '../../src/swiotlb/layout.js';
import { IoTlbMem } from '../../src/swiotlb/mem.js';
import { GUEST_BASE, POOL_START, fixture } from '../helpers.js';

describe('dma-direct single mappings (§14.1)', () => {
  it('force-bounces every mapping in a CoCo VM', () => {
    const { mem, dev, guest } = fixture(128);
    const a = dmaMapSingle(mem, dev(), guest.base + 10, 100, DMA_TO_DEVICE);
    expect(a).toBeGreaterThanOrEqual(POOL_START);
    expect(a).toBeLessThan(POOL_START + 128 * 2048);
  });
  it('maps directly without force_bounce when the device reaches the buffer', () => {
    const guest = GuestMemory.create(GUEST_BASE, 1 << 20);
    const mem = IoTlbMem.create({ nslabs: 128, nareas: 1, start: POOL_START, forceBounce: false }, { guest });
    const d = new DmaDevice('d');
    expect(dmaMapSingle(mem, d, guest.base, 100, DMA_TO_DEVICE)).toBe(guest.base);
    dmaUnmapSingle(mem, d, guest.base, 100, DMA_TO_DEVICE);
    expect(mem.stats[STAT_UNMAP_PASSTHROUGH]).toBe(1);
    // A 32-bit device cannot reach private memory above 4 GiB: that one bounces.
    const d32 = new DmaDevice('d32', { dmaMask: 0xffffffff });
    expect(dmaMapSingle(mem, d32, guest.base, 100, DMA_TO_DEVICE)).toBe(POOL_START);
  });
  it('undoes a bounce the device cannot reach and warns once', () => {
    const { mem, guest, events } = fixture(128);
    const d = new DmaDevice('tiny', { dmaMask: 0xffff });
    expect(dmaMapSingle(mem, d, guest.base, 100, DMA_TO_DEVICE)).toBe(DMA_MAPPING_ERROR);
    expect(mem.memUsed()).toBe(0);
    expect(mem.stats[STAT_MAP_FAIL_NOT_CAPABLE]).toBe(1);
    expect(events.find((e) => e.event === 'swiotlb_warn' && e.msg.includes('overflow'))?.msg).toMatch(/^swiotlb addr 0x0000000080000000\+100 overflow \(mask ffff/);
  });
  it('dma_max_mapping_size follows the device min_align_mask', () => {
    const { mem } = fixture(128);
    expect(dmaMaxMappingSize(mem, new DmaDevice('a'))).toBe(262144);
    expect(dmaMaxMappingSize(mem, new DmaDevice('b', { minAlignMask: 0xfff }))).toBe(258048);
  });
});

describe('scatter-gather (§14.2)', () => {
  it('maps each entry independently and unmaps them all', () => {
    const { mem, dev, guest } = fixture(512);
    const sgl = new ScatterList(8);
    expect(sgl.fill(guest.base, 600_000, 258048)).toBe(3);
    expect(Array.from(sgl.length.subarray(0, 3))).toEqual([258048, 258048, 600_000 - 2 * 258048]);
    const d = dev({ minAlignMask: 0xfff });
    expect(dmaMapSgtable(mem, d, sgl, 3, DMA_FROM_DEVICE)).toBe(3);
    expect(mem.memUsed()).toBe(126 + 126 + 41);
    // The device writes the last entry; sync_sg_for_cpu brings it back by each entry's length.
    const t = sgl.dmaAddress[2]! - mem.defpool.start;
    mem.defpool.data.fill(0x77, t, t + sgl.length[2]!);
    dmaSyncSgForCpu(mem, d, sgl, 3, DMA_FROM_DEVICE);
    expect(guest.bytes[2 * 258048 + 5]).toBe(0x77);
    dmaUnmapSg(mem, d, sgl, 3, DMA_FROM_DEVICE);
    expect(mem.memUsed()).toBe(0);
  });
  it('unwinds the mapped entries without copy-back when an entry fails', () => {
    const { mem, dev, guest, events } = fixture(256);
    const d = dev();
    const sgl = new ScatterList(4);
    sgl.set(0, guest.base, 200_000);
    sgl.set(1, guest.base + 200_000, 200_000);
    sgl.set(2, guest.base + 400_000, 200_000); // 3 x 98 slots do not fit in 256 slots of 128-slot segments
    guest.bytes.fill(0x11, 0, 200_000);
    const t0 = (): number => sgl.dmaAddress[0]! - mem.defpool.start;
    expect(dmaMapSgtable(mem, d, sgl, 3, DMA_FROM_DEVICE)).toBe(-EIO);
    expect(mem.memUsed()).toBe(0);
    expect(events.filter((e) => e.event === 'map_failure')).toHaveLength(1);
    expect(guest.bytes[0]).toBe(0x11); // no copy-back from the unwound entry
    expect(t0()).toBeLessThan(0); // entries were reset to DMA_MAPPING_ERROR
    expect(dmaMapSg(mem, d, sgl, 3, DMA_FROM_DEVICE)).toBe(0);
  });
});

// [RFC] swiotlb throttling in dma-direct (§15.6, §15.7).
describe('throttling and scatter-gather (§15.6)', () => {
  function throttled(nslabs: number) {
    const guest = GuestMemory.create(GUEST_BASE, 4 * 1024 * 1024);
    // high_throttle 0: every MAY_BLOCK map throttles once anything is mapped.
    const mem = IoTlbMem.create({ nslabs, nareas: 1, start: POOL_START, forceBounce: true, throttle: { enabled: true, highThrottle: 0, lowThrottle: 0 } }, { guest });
    const d = new DmaDevice('nvme0');
    // Record every map's attrs and every unmap's address, in call order.
    const maps: number[] = [];
    const unmaps: number[] = [];
    const ups: number[] = [];
    const map = mem.tblMapSingle.bind(mem);
    const unmap = mem.tblUnmapSingle.bind(mem);
    const up = mem.throttle.up.bind(mem.throttle);
    mem.tblMapSingle = (...a) => {
      maps.push(a[5]);
      return map(...a);
    };
    mem.tblUnmapSingle = (...a) => {
      unmaps.push(a[1]);
      unmap(...a);
    };
    mem.throttle.up = () => {
      ups.push(unmaps.length); // how many unmaps had started when the semaphore was released
      up();
    };
    const x = dmaMapSingle(mem, d, guest.base, 100, DMA_TO_DEVICE); // used 1 > high_throttle 0
    maps.length = 0;
    return { mem, d, guest, maps, unmaps, ups, x };
  }

  it('MAY_BLOCK is honoured for entry 0 only; unmap releases entries 1..N-1, then entry 0', () => {
    const { mem, d, guest, maps, unmaps, ups } = throttled(512);
    const sgl = new ScatterList(4);
    sgl.fill(guest.base + 0x10000, 3 * 8192, 8192);
    expect(dmaMapSgtable(mem, d, sgl, 3, DMA_TO_DEVICE, DMA_ATTR_MAY_BLOCK)).toBe(3);
    expect(maps).toEqual([DMA_ATTR_MAY_BLOCK, 0, 0]);
    expect(mem.throttleDebugfs().high_throttle_count).toBe(1); // only entry 0 was throttled
    const first = Math.floor((sgl.dmaAddress[0]! - POOL_START) / 2048);
    expect(mem.defpool.throttled[first]).toBe(1); // entry 0's mapping holds the semaphore for the list
    expect(mem.throttleSnapshot().count).toBe(0);
    const e = Array.from(sgl.dmaAddress.subarray(0, 3));
    dmaUnmapSg(mem, d, sgl, 3, DMA_TO_DEVICE);
    expect(unmaps).toEqual([e[1], e[2], e[0]]);
    expect(ups).toEqual([3]); // released during the last unmap, entry 0's
    expect(mem.throttleSnapshot()).toMatchObject({ count: 1, holder: null });
  });
  it('error unwinding unmaps in the same order and releases the semaphore', () => {
    const { mem, d, guest, maps, unmaps, ups } = throttled(256);
    const sgl = new ScatterList(4);
    // 4 x 64 slots cannot fit beside the first mapping in 2 segments: entry 3 fails.
    sgl.fill(guest.base + 0x10000, 4 * 131072, 131072);
    expect(dmaMapSgtable(mem, d, sgl, 4, DMA_TO_DEVICE, DMA_ATTR_MAY_BLOCK)).toBe(-EIO);
    expect(maps).toEqual([DMA_ATTR_MAY_BLOCK, 0, 0, 0]);
    // Entry 0 took slots 2-65 (page-aligned after slot 0), entry 1 slots 128-191 (62 free slots
    // remain in the first segment), entry 2 slots 192-255; entry 3 finds no 64-slot run.
    expect(unmaps).toEqual([POOL_START + 128 * 2048, POOL_START + 192 * 2048, POOL_START + 2 * 2048]);
    expect(ups).toEqual([3]);
    expect(mem.throttleSnapshot()).toMatchObject({ count: 1, holder: null });
    expect(mem.memUsed()).toBe(1);
  });
  it('an empty list maps and unmaps nothing', () => {
    const { mem, d, maps, unmaps } = throttled(128);
    const sgl = new ScatterList(1);
    expect(dmaMapSgtable(mem, d, sgl, 0, DMA_TO_DEVICE, DMA_ATTR_MAY_BLOCK)).toBe(0);
    dmaUnmapSg(mem, d, sgl, 0, DMA_TO_DEVICE);
    expect([maps, unmaps]).toEqual([[], []]);
  });
});

describe('dma_recommend_may_block (§15.7)', () => {
  it('is true only with throttling built in and the device force-bounced', () => {
    const d = new DmaDevice('nvme0');
    const make = (enabled: boolean, forceBounce: boolean) =>
      IoTlbMem.create({ nslabs: 128, nareas: 1, start: POOL_START, forceBounce, throttle: { enabled } });
    expect(dmaRecommendMayBlock(make(true, true), d)).toBe(true);
    expect(dmaRecommendMayBlock(make(true, false), d)).toBe(false);
    expect(dmaRecommendMayBlock(make(false, true), d)).toBe(false);
  });
});
