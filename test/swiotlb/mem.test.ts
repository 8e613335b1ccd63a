// Rules of the slot search, release, accounting and bounce (reference §4-§9). Expected values are
// worked out from the reference by hand.
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { dmaMapSingle, dmaUnmapSingle } from '../../src/dma/direct.js';
import {
  DMA_ATTR_NO_WARN, DMA_ATTR_SKIP_CPU_SYNC, DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_MAPPING_ERROR, DMA_TO_DEVICE,
  INVALID_PHYS_ADDR,
} from '../../src/swiotlb/constants.js';
import {
  AREA_INDEX, AREA_USED, STAT_BOUNCE_OVERFLOWS, STAT_DOUBLE_UNMAPS, STAT_UNMAP_PASSTHROUGH,
} from '../../src/swiotlb/layout.js';
import { IoTlbMem } from '../../src/swiotlb/mem.js';
import { initialList } from '../../src/swiotlb/pool.js';
import { GUEST_BASE, POOL_START, fixture } from '../helpers.js';

const lists = (mem: IoTlbMem, from: number, n: number) => Array.from(mem.defpool.list.subarray(from, from + n));
const slotOf = (mem: IoTlbMem, tlb: number) => Math.floor((tlb - mem.defpool.start) / 2048);

describe('pool initialisation (§4)', () => {
  it('lists count down to each segment end', () => {
    const { mem } = fixture(256);
    expect(lists(mem, 0, 3)).toEqual([128, 127, 126]);
    expect(mem.defpool.list[127]).toBe(1);
    expect(mem.defpool.list[128]).toBe(128);
    expect(mem.defpool.origAddr[5]).toBe(INVALID_PHYS_ADDR);
  });
  it('caps list values at the pool end for pools that are not a multiple of 128', () => {
    expect(initialList(128, 200)).toBe(72);
    expect(initialList(199, 200)).toBe(1);
    expect(initialList(0, 200)).toBe(128);
  });
  it('rejects more areas than the pool can hold', () => {
    expect(() => IoTlbMem.create({ nslabs: 256, nareas: 4, start: POOL_START, forceBounce: true })).toThrow(InputError);
  });
});

describe('the worked example of §6', () => {
  it('allocates 3 at 0 and 2 at 3, frees them back to the initial state', () => {
    const { mem, dev, guest } = fixture(128);
    const d = dev();
    // 5000 bytes: 3 slots, >= PAGE_SIZE so page-aligned: slot 0.
    const a = mem.tblMapSingle(d, guest.base, 5000, 0, DMA_TO_DEVICE, 0);
    // 3000 bytes: 2 slots, < PAGE_SIZE so any slot: the cursor is at 3.
    const b = mem.tblMapSingle(d, guest.base + 0x10000, 3000, 0, DMA_TO_DEVICE, 0);
    expect(slotOf(mem, a)).toBe(0);
    expect(slotOf(mem, b)).toBe(3);
    expect(lists(mem, 0, 6)).toEqual([0, 0, 0, 0, 0, 123]);
    mem.tblUnmapSingle(d, a, 5000, DMA_TO_DEVICE, 0);
    expect(lists(mem, 0, 6)).toEqual([3, 2, 1, 0, 0, 123]);
    mem.tblUnmapSingle(d, b, 3000, DMA_TO_DEVICE, 0);
    expect(lists(mem, 0, 6)).toEqual([128, 127, 126, 125, 124, 123]);
    expect(mem.defpool.areas[AREA_USED]).toBe(0);
    expect(mem.memUsed()).toBe(0);
  });
});

describe('slot search (§5.4)', () => {
  it('alignment table: min_align 0 and size < 4 KiB takes any slot', () => {
    const { mem, dev, guest } = fixture(128);
    const d = dev();
    mem.tblMapSingle(d, guest.base, 100, 0, DMA_TO_DEVICE, 0); // slot 0, cursor 1
    const b = mem.tblMapSingle(d, guest.base + 0x801, 100, 0, DMA_TO_DEVICE, 0);
    expect(slotOf(mem, b)).toBe(1);
    expect(b % 2048).toBe(0); // no min_align_mask: the offset is not preserved
  });
  it('alignment table: min_align 0 and size >= 4 KiB is page-aligned, skipping an odd slot by 1', () => {
    const { mem, dev, guest } = fixture(128);
    const d = dev();
    mem.tblMapSingle(d, guest.base, 100, 0, DMA_TO_DEVICE, 0); // slot 0, cursor 1
    const b = mem.tblMapSingle(d, guest.base, 4096, 0, DMA_TO_DEVICE, 0);
    expect(slotOf(mem, b)).toBe(2);
    expect(b % 4096).toBe(0);
  });
  it('alignment table: min_align 0xFFF matches bit 11 of the original and keeps the low bits', () => {
    const { mem, dev, guest } = fixture(128);
    const d = dev({ minAlignMask: 0xfff });
    const orig = guest.base + 0x800 + 0x123; // bit 11 set, low bits 0x123
    const a = mem.tblMapSingle(d, orig, 100, 0, DMA_TO_DEVICE, 0);
    expect(slotOf(mem, a)).toBe(1); // the first slot whose address has bit 11 set
    expect(a & 0xfff).toBe(orig & 0xfff);
    // A 4 KiB mapping with min_align 0xFFF is not forced to a page: bit 11 must match orig (0 here).
    const b = mem.tblMapSingle(d, guest.base + 0x10, 4096, 0, DMA_TO_DEVICE, 0);
    expect(slotOf(mem, b)).toBe(2);
    expect(b & 0xfff).toBe(0x10);
  });
  it('max mapping size: 256 KiB, or 252 KiB with min_align_mask 0xFFF; oversize fails with the size', () => {
    const { mem, dev, guest, events } = fixture(1024);
    expect(mem.maxMappingSize(dev())).toBe(262144);
    expect(mem.maxMappingSize(dev({ minAlignMask: 0xfff }))).toBe(258048);
    const ok = mem.tblMapSingle(dev(), guest.base, 262144, 0, DMA_TO_DEVICE, 0);
    expect(ok).not.toBe(DMA_MAPPING_ERROR);
    const bad = mem.tblMapSingle(dev({ minAlignMask: 0xfff }), guest.base + 0x10, 262144, 0, DMA_TO_DEVICE, 0);
    expect(bad).toBe(DMA_MAPPING_ERROR);
    expect(events.at(-1)).toMatchObject({ event: 'map_failure', size: 262144 + 0x10, cause: 'oversize' });
  });
  it('the cursor resets to zero at the area end, and the search wraps', () => {
    const { mem, dev, guest } = fixture(128);
    const d = dev();
    const tlbs: number[] = [];
    for (let i = 0; i < 126; i++) tlbs.push(mem.tblMapSingle(d, guest.base, 100, 0, DMA_TO_DEVICE, 0));
    expect(mem.defpool.areas[AREA_INDEX]).toBe(126);
    mem.tblUnmapSingle(d, tlbs[0]!, 100, DMA_TO_DEVICE, 0); // slot 0 free again
    const two = mem.tblMapSingle(d, guest.base, 3000, 0, DMA_TO_DEVICE, 0); // slots 126-127
    expect(slotOf(mem, two)).toBe(126);
    expect(mem.defpool.areas[AREA_INDEX]).toBe(0); // 128 >= area_nslabs resets to 0
    const next = mem.tblMapSingle(d, guest.base, 100, 0, DMA_TO_DEVICE, 0);
    expect(slotOf(mem, next)).toBe(0);
  });
  it('fast reject on area.used, then the next area from cpu & (nareas - 1)', () => {
    const { mem, dev, guest } = fixture(512, 4);
    mem.cpu = 6; // 6 & 3 = area 2
    const d = dev();
    const a = mem.tblMapSingle(d, guest.base, 100, 0, DMA_TO_DEVICE, 0);
    expect(slotOf(mem, a)).toBe(256);
    // Fill area 2 (128 slots) with one 256 KiB mapping less the slot used: use 127 one-slot maps.
    for (let i = 0; i < 127; i++) mem.tblMapSingle(d, guest.base, 100, 0, DMA_TO_DEVICE, 0);
    expect(mem.defpool.areas[mem.defpool.areaBase(2) + AREA_USED]).toBe(128);
    const b = mem.tblMapSingle(d, guest.base, 100, 0, DMA_TO_DEVICE, 0);
    expect(slotOf(mem, b)).toBe(384); // area 3
    mem.cpu = 7;
    for (let i = 0; i < 127; i++) mem.tblMapSingle(d, guest.base, 100, 0, DMA_TO_DEVICE, 0);
    const c = mem.tblMapSingle(d, guest.base, 100, 0, DMA_TO_DEVICE, 0);
    expect(slotOf(mem, c)).toBe(0); // area 3 full, wraps to area 0
  });
  it('never crosses a segment: a 3-slot map skips a 2-slot tail', () => {
    const { mem, dev, guest } = fixture(256);
    const d = dev();
    for (let i = 0; i < 126; i++) mem.tblMapSingle(d, guest.base, 100, 0, DMA_TO_DEVICE, 0);
    const a = mem.tblMapSingle(d, guest.base, 5000, 0, DMA_TO_DEVICE, 0);
    expect(slotOf(mem, a)).toBe(128);
    expect(lists(mem, 126, 2)).toEqual([2, 1]);
  });
  it('respects the device segment boundary', () => {
    const { mem, dev, guest } = fixture(128);
    const d = dev({ segBoundaryMask: 0x3fff }); // 8-slot windows
    for (let i = 0; i < 6; i++) mem.tblMapSingle(d, guest.base, 100, 0, DMA_TO_DEVICE, 0);
    const a = mem.tblMapSingle(d, guest.base, 5000, 0, DMA_TO_DEVICE, 0); // 3 slots: 6..8 would cross 8
    expect(slotOf(mem, a)).toBe(8);
  });
  it('back-propagation renumbers the free run in front of an allocation', () => {
    const { mem, dev, guest } = fixture(128);
    const d = dev();
    for (let i = 0; i < 10; i++) mem.tblMapSingle(d, guest.base, 100, 0, DMA_TO_DEVICE, 0);
    // Free slots 2..4 so that [2..4] is a free run ending at in-use slot 5.
    for (const s of [2, 3, 4]) mem.releaseSlots(d, POOL_START + s * 2048, mem.defpool);
    expect(lists(mem, 2, 3)).toEqual([3, 2, 1]);
    expect(lists(mem, 10, 2)).toEqual([118, 117]);
    // Take slot 12 (cursor at 10; a 4 KiB map needs an even slot; 10 is even). Then slots 10,11 renumber to 2,1.
    const a = mem.tblMapSingle(d, guest.base, 4096, 0, DMA_TO_DEVICE, 0);
    expect(slotOf(mem, a)).toBe(10);
    mem.tblMapSingle(d, guest.base, 4096, 0, DMA_TO_DEVICE, 0); // 12..13
    mem.releaseSlots(d, a, mem.defpool);
    expect(lists(mem, 10, 4)).toEqual([2, 1, 0, 0]);
  });
  it('pad slots for an alloc_align_mask (IOMMU-style) mapping', () => {
    const { mem, dev, guest } = fixture(128);
    const d = dev({ minAlignMask: 0xfff });
    const orig = guest.base + 0x900;
    // offset = 0x900 & 0xfff & (0xfff | 0x7ff) = 0x900: one pad slot, sub-slot offset 0x100.
    const a = mem.tblMapSingle(d, orig, 100, 0xfff, DMA_TO_DEVICE, 0);
    const first = slotOf(mem, a);
    expect(a & 0xfff).toBe(0x900);
    expect(mem.defpool.padSlots[first]).toBe(1);
    expect(mem.defpool.origAddr[first - 1]).toBe(INVALID_PHYS_ADDR);
    expect(mem.defpool.origAddr[first]).toBe(orig);
    expect(mem.memUsed()).toBe(2); // size = ALIGN(100 + 0x900, 0x1000) = 4096
    mem.tblUnmapSingle(d, a, 100, DMA_TO_DEVICE, 0);
    expect(mem.memUsed()).toBe(0);
    expect(lists(mem, 0, 3)).toEqual([128, 127, 126]);
  });
  it('records orig_addr per data slot and wrapping alloc_size (invariant 10)', () => {
    const { mem, dev, guest } = fixture(128);
    const d = dev({ minAlignMask: 0xfff });
    const orig = guest.base + 2000; // sub_offset = 2000
    const a = mem.tblMapSingle(d, orig, 100, 0, DMA_TO_DEVICE, 0);
    const s = slotOf(mem, a);
    // size = 2100 -> 2 slots; alloc_size = 2100 - 2000 = 100, then 100 - 2048 wraps.
    expect(mem.defpool.allocSize[s]).toBe(100);
    expect(mem.defpool.allocSize[s + 1]).toBe((100 - 2048) >>> 0);
    expect(mem.defpool.origAddr[s + 1]).toBe(orig + 2048);
  });
});

describe('failures (§5.1, §11)', () => {
  it('a full pool returns DMA_MAPPING_ERROR with the kernel message; NO_WARN suppresses it', () => {
    const { mem, dev, guest, events } = fixture(128);
    const d = dev();
    for (let i = 0; i < 64; i++) expect(mem.tblMapSingle(d, guest.base, 4096, 0, DMA_TO_DEVICE, 0)).not.toBe(DMA_MAPPING_ERROR);
    expect(mem.tblMapSingle(d, guest.base, 4096, 0, DMA_TO_DEVICE, 0)).toBe(DMA_MAPPING_ERROR);
    expect(events.filter((e) => e.event === 'map_failure').map((e) => e.msg)).toEqual([
      'swiotlb buffer is full (sz: 4096 bytes), total 128 (slots), used 128 (slots)',
    ]);
    expect(mem.tblMapSingle(d, guest.base, 10, 0, DMA_TO_DEVICE, DMA_ATTR_NO_WARN)).toBe(DMA_MAPPING_ERROR);
    expect(events.filter((e) => e.event === 'map_failure')).toHaveLength(1);
    expect(mem.mapFailures()).toBe(2);
  });
  it('unmap of a non-bounce address passes through; a double unmap is detected and changes nothing', () => {
    const { mem, dev, guest, events } = fixture(128);
    const d = dev();
    mem.tblUnmapSingle(d, guest.base, 100, DMA_TO_DEVICE, 0);
    expect(mem.stats[STAT_UNMAP_PASSTHROUGH]).toBe(1);
    const a = mem.tblMapSingle(d, guest.base, 3000, 0, DMA_TO_DEVICE, 0);
    const b = mem.tblMapSingle(d, guest.base, 3000, 0, DMA_TO_DEVICE, 0);
    mem.tblUnmapSingle(d, a, 3000, DMA_TO_DEVICE, 0);
    const before = lists(mem, 0, 8);
    mem.tblUnmapSingle(d, a, 3000, DMA_TO_DEVICE, 0);
    expect(lists(mem, 0, 8)).toEqual(before);
    expect(mem.stats[STAT_DOUBLE_UNMAPS]).toBe(1);
    expect(events.some((e) => e.event === 'double_unmap')).toBe(true);
    expect(mem.memUsed()).toBe(2);
    mem.tblUnmapSingle(d, b, 3000, DMA_TO_DEVICE, 0);
    expect(mem.memUsed()).toBe(0);
  });
});

describe('accounting (§9)', () => {
  it('total_used follows mappings; hiwater keeps the peak and resets only to 0', () => {
    const { mem, dev, guest } = fixture(256);
    const d = dev();
    const a = mem.tblMapSingle(d, guest.base, 5000, 0, DMA_TO_DEVICE, 0); // 3 slots
    const b = mem.tblMapSingle(d, guest.base, 100, 0, DMA_TO_DEVICE, 0); // 1 slot
    expect(mem.debugfs()).toEqual({ io_tlb_nslabs: 256, io_tlb_used: 4, io_tlb_used_hiwater: 4, io_tlb_transient_nslabs: 0 });
    mem.tblUnmapSingle(d, a, 5000, DMA_TO_DEVICE, 0);
    expect(mem.debugfs().io_tlb_used_hiwater).toBe(4);
    expect(() => mem.writeUsedHiwater(5)).toThrow(/only 0/);
    mem.writeUsedHiwater(0);
    // After a reset the mark stays 0 until the next allocation, even though 1 slot is in use.
    expect(mem.debugfs()).toMatchObject({ io_tlb_used: 1, io_tlb_used_hiwater: 0 });
    const c = mem.tblMapSingle(d, guest.base, 100, 0, DMA_TO_DEVICE, 0);
    expect(mem.debugfs().io_tlb_used_hiwater).toBe(2);
    mem.tblUnmapSingle(d, b, 100, DMA_TO_DEVICE, 0);
    mem.tblUnmapSingle(d, c, 100, DMA_TO_DEVICE, 0);
    expect(mem.memUsed()).toBe(0);
  });
});

describe('per-area high-water mark (AREA_USED_HIWATER)', () => {
  it('keeps each area\'s peak of area.used through unmaps, apart from the other areas', () => {
    const { mem, dev, guest } = fixture(512, 4); // 4 areas of 128 slots
    const d = dev();
    mem.cpu = 1; // area 1
    const a = mem.tblMapSingle(d, guest.base, 5000, 0, DMA_TO_DEVICE, 0); // 3 slots
    const b = mem.tblMapSingle(d, guest.base, 100, 0, DMA_TO_DEVICE, 0); // 1 slot: area 1 at 4
    mem.tblUnmapSingle(d, a, 5000, DMA_TO_DEVICE, 0); // area 1 at 1
    const c = mem.tblMapSingle(d, guest.base, 3000, 0, DMA_TO_DEVICE, 0); // 2 slots: area 1 at 3, below its peak
    mem.cpu = 2;
    const e = mem.tblMapSingle(d, guest.base, 100, 0, DMA_TO_DEVICE, 0); // area 2 at 1
    expect(mem.defpool.areaOccupancy()).toEqual({ used: [0, 3, 1, 0], used_hiwater: [0, 4, 1, 0] });
    for (const [t, n] of [[b, 100], [c, 3000], [e, 100]] as const) mem.tblUnmapSingle(d, t, n, DMA_TO_DEVICE, 0);
    // Freed: area.used is back to 0 and the marks stay. The pool-wide used_hiwater is the peak of the
    // sum (4: area 1 at 4 and area 2 at 0), at most the sum of the per-area marks (5).
    expect(mem.defpool.areaOccupancy()).toEqual({ used: [0, 0, 0, 0], used_hiwater: [0, 4, 1, 0] });
    expect(mem.debugfs().io_tlb_used_hiwater).toBe(4);
  });
  it('reaches area_nslabs when an area fills; the next map from that CPU raises the next area\'s mark', () => {
    const { mem, dev, guest } = fixture(256, 2);
    const d = dev();
    mem.cpu = 0;
    for (let i = 0; i < 128; i++) mem.tblMapSingle(d, guest.base, 100, 0, DMA_TO_DEVICE, 0); // area 0 full
    mem.tblMapSingle(d, guest.base, 100, 0, DMA_TO_DEVICE, 0); // fast reject on area 0, then area 1
    expect(mem.defpool.areaOccupancy()).toEqual({ used: [128, 1], used_hiwater: [128, 1] });
  });
});

describe('bounce copies (§7)', () => {
  function pattern(bytes: Uint8Array, off: number, n: number, seed: number) {
    for (let i = 0; i < n; i++) bytes[off + i] = (seed + i * 7) & 0xff;
  }
  it('map copies original to bounce for every direction, even with SKIP_CPU_SYNC', () => {
    for (const dir of [DMA_TO_DEVICE, DMA_FROM_DEVICE, DMA_BIDIRECTIONAL] as const) {
      const { mem, dev, guest } = fixture(128);
      pattern(guest.bytes, 0x100, 300, dir);
      const a = mem.tblMapSingle(dev(), guest.base + 0x100, 300, 0, dir, DMA_ATTR_SKIP_CPU_SYNC);
      const t = a - mem.defpool.start;
      expect(Array.from(mem.defpool.data.subarray(t, t + 300))).toEqual(Array.from(guest.bytes.subarray(0x100, 0x100 + 300)));
    }
  });
  it('unmap copies back for FROM_DEVICE and BIDIRECTIONAL only, and not with SKIP_CPU_SYNC', () => {
    const cases = [
      [DMA_TO_DEVICE, 0, false], [DMA_FROM_DEVICE, 0, true], [DMA_BIDIRECTIONAL, 0, true],
      [DMA_FROM_DEVICE, DMA_ATTR_SKIP_CPU_SYNC, false],
    ] as const;
    for (const [dir, attrs, copied] of cases) {
      const { mem, dev, guest } = fixture(128);
      const d = dev();
      const a = dmaMapSingle(mem, d, guest.base + 0x200, 64, dir);
      mem.defpool.data.fill(0xee, a - mem.defpool.start, a - mem.defpool.start + 64); // the device writes
      dmaUnmapSingle(mem, d, a, 64, dir, attrs);
      expect(guest.bytes[0x200 + 10]).toBe(copied ? 0xee : 0);
    }
  });
  it('partial sync with a negative delta reaches the previous slot\'s mirrored bytes', () => {
    const { mem, dev, guest } = fixture(128);
    const d = dev({ minAlignMask: 0xfff });
    const origOff = 0x800 + 2000; // bit 11 set, sub_offset 2000
    const a = mem.tblMapSingle(d, guest.base + origOff, 4000, 0, DMA_FROM_DEVICE, 0);
    const s = slotOf(mem, a);
    // Bytes 100..199 of the mapping live at a+100, which is inside the next slot (a is 2000 into s).
    const t = a + 100 - mem.defpool.start;
    expect(Math.floor(t / 2048)).toBe(s + 1);
    mem.defpool.data.fill(0x5a, t, t + 100);
    mem.syncSingleForCpu(d, a + 100, 100, DMA_FROM_DEVICE);
    expect(guest.bytes[origOff + 100]).toBe(0x5a);
    expect(guest.bytes[origOff + 199]).toBe(0x5a);
    expect(guest.bytes[origOff + 200]).toBe(0);
  });
  it('a sync beyond the allocation warns once and is truncated', () => {
    const { mem, dev, guest, events } = fixture(128);
    const d = dev();
    const a = mem.tblMapSingle(d, guest.base, 100, 0, DMA_BIDIRECTIONAL, 0);
    mem.syncSingleForDevice(d, a, 500, DMA_TO_DEVICE);
    mem.syncSingleForDevice(d, a, 500, DMA_TO_DEVICE);
    expect(mem.stats[STAT_BOUNCE_OVERFLOWS]).toBe(2);
    expect(events.filter((e) => e.event === 'bounce_overflow').map((e) => e.msg)).toEqual([
      'Buffer overflow detected. Allocation size: 100. Mapping size: 500.',
    ]);
  });
  it('attaching from the shared state sees the same pool', () => {
    const { mem, dev, guest } = fixture(128);
    const a = mem.tblMapSingle(dev(), guest.base, 100, 0, DMA_TO_DEVICE, 0);
    const other = IoTlbMem.attach(mem.shared(), { cpu: 1, guest });
    expect(other.memUsed()).toBe(1);
    other.tblUnmapSingle(dev(), a, 100, DMA_TO_DEVICE, 0);
    expect(mem.memUsed()).toBe(0);
    expect(GUEST_BASE).toBe(guest.base);
  });
});
