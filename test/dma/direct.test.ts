import { describe, expect, it } from 'vitest';
import { DmaDevice } from '../../src/dma/device.js';
import {
  ScatterList, dmaMapSg, dmaMapSgtable, dmaMapSingle, dmaMaxMappingSize, dmaSyncSgForCpu, dmaUnmapSg, dmaUnmapSingle,
} from '../../src/dma/direct.js';
import { GuestMemory } from '../../src/memory/guest.js';
import { DMA_FROM_DEVICE, DMA_MAPPING_ERROR, DMA_TO_DEVICE, EIO } from '../../src/swiotlb/constants.js';
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
