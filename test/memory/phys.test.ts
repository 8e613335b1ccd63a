// The buddy allocator: expected free lists worked out by hand from mm/page_alloc.c's rules (boot frees
// in the largest aligned blocks, __rmqueue_smallest takes the smallest list's first block and expand()
// lists the upper halves, __free_one_page merges with free buddies) and q35's RAM layout.
import { describe, expect, it } from 'vitest';
import { InputError, InvariantError } from '../../src/errors.js';
import {
  GuestPhysMem, MAX_PAGE_ORDER, PHYS_4G, ZONE_DMA32, ZONE_NORMAL, formatBuddyinfo, placementRegions, q35RamLayout,
} from '../../src/memory/phys.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** Counts for orders 0..10 from a sparse map. */
const counts = (m: Record<number, number>) => Array.from({ length: MAX_PAGE_ORDER + 1 }, (_, k) => m[k] ?? 0);
const dma32 = (p: GuestPhysMem) => p.freeBlocks().find((z) => z.zone === 'DMA32')!.free;
const normal = (p: GuestPhysMem) => p.freeBlocks().find((z) => z.zone === 'Normal')!.free;

// 256 MiB guest: RAM [0, 256M) = pfns 0..65535, the first MiB (pfns 0..255) reserved. Boot frees
// [256, 65536): 256 is aligned to 2^8 -> one order-8 block [256, 512); 512 -> order 9 [512, 1024);
// then 63 order-10 blocks [1024, 65536).
const BOOT_256M = counts({ 8: 1, 9: 1, 10: 63 });

describe('q35 RAM layout and boot', () => {
  it('splits RAM of 2.75 GiB or more at 2 GiB, keeps smaller RAM below the hole', () => {
    expect(q35RamLayout(16 * GiB)).toEqual({ lowBytes: 2 * GiB, highBytes: 14 * GiB });
    expect(q35RamLayout(0xb000_0000)).toEqual({ lowBytes: 2 * GiB, highBytes: 0xb000_0000 - 2 * GiB });
    expect(q35RamLayout(0xb000_0000 - 4096)).toEqual({ lowBytes: 0xb000_0000 - 4096, highBytes: 0 });
  });
  it('a 256 MiB guest boots with one DMA32 zone: 1 x order 8, 1 x order 9, 63 x order 10', () => {
    const p = GuestPhysMem.create({ memBytes: 256 * MiB });
    expect(p.freeBlocks()).toEqual([{ zone: 'DMA32', free: BOOT_256M }]);
    expect(p.freePagesCount(ZONE_DMA32)).toBe(65536 - 256);
    expect(p.buddyinfo()).toBe('Node 0, zone    DMA32      0      0      0      0      0      0      0      0      1      1     63 \n');
    expect(p.checkInvariants()).toEqual([]);
  });
  it('a 3 GiB guest: DMA32 below 2 GiB (511 order-10 blocks after the first MiB), Normal 1 GiB from 4 GiB', () => {
    const p = GuestPhysMem.create({ memBytes: 3 * GiB });
    expect(dma32(p)).toEqual(counts({ 8: 1, 9: 1, 10: 511 }));
    expect(normal(p)).toEqual(counts({ 10: 256 }));
    expect(p.zoneRange(ZONE_NORMAL)).toEqual({ start: PHYS_4G, end: PHYS_4G + GiB });
  });
  it('refuses memory it cannot model', () => {
    expect(() => GuestPhysMem.create({ memBytes: 1024 ** 4 })).toThrow(InputError);
  });
});

describe('allocPages and freePages', () => {
  it('splits the smallest block that fits and lists the upper halves', () => {
    const p = GuestPhysMem.create({ memBytes: 256 * MiB });
    // Order 0: the smallest non-empty list is order 8, [256, 512); pfn 256 is returned and
    // 257 (o0), 258 (o1), 260 (o2), 264 (o3), 272 (o4), 288 (o5), 320 (o6), 384 (o7) are listed.
    expect(p.allocPages(0, PHYS_4G)).toBe(256 * 4096);
    expect(dma32(p)).toEqual(counts({ 0: 1, 1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1, 9: 1, 10: 63 }));
    // The next order-0 page is the listed 257.
    expect(p.allocPages(0, PHYS_4G)).toBe(257 * 4096);
    expect(dma32(p)).toEqual(counts({ 1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1, 9: 1, 10: 63 }));
    // Order 9 takes [512, 1024) whole; order 10 the first block freed at boot (FPI_TO_TAIL), pfn 1024.
    expect(p.allocPages(9, PHYS_4G)).toBe(512 * 4096);
    expect(p.allocPages(10, PHYS_4G)).toBe(1024 * 4096);
    expect(p.checkInvariants()).toEqual([]);
  });
  it('merges a freed block with its free buddies, and only with them', () => {
    const p = GuestPhysMem.create({ memBytes: 256 * MiB });
    const a = p.allocPages(0, PHYS_4G); // 256
    const b = p.allocPages(0, PHYS_4G); // 257
    p.freePages(a, 0); // 257 is taken: 256 stays an order-0 block
    expect(dma32(p)).toEqual(counts({ 0: 1, 1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1, 9: 1, 10: 63 }));
    p.freePages(b, 0); // 256+257 -> o1 at 256, +258 -> o2, ... -> o8 at 256; its buddy (pfn 0) is reserved
    expect(dma32(p)).toEqual(BOOT_256M);
    expect(p.checkInvariants()).toEqual([]);
  });
  it('a zone the limit excludes is not used; a block above the limit is given back', () => {
    const p = GuestPhysMem.create({ memBytes: 3 * GiB });
    const low = p.allocPages(10, PHYS_4G);
    expect(low).toBeGreaterThanOrEqual(0);
    expect(low + 4 * MiB).toBeLessThanOrEqual(2 * GiB);
    expect(p.allocPages(10, 2 * PHYS_4G)).toBe(PHYS_4G); // the Normal zone first, its first block
    // Below 1 MiB there is nothing: the block DMA32 gives (pfn 256 upwards) is freed again.
    const before = p.buddyinfo();
    expect(p.allocPages(0, MiB)).toBe(-1);
    expect(p.buddyinfo()).toBe(before);
    expect(p.allocFailures()).toBe(1);
  });
  it('fails when no block of the order is left, while smaller ones remain', () => {
    const p = GuestPhysMem.create({ memBytes: 256 * MiB });
    for (let i = 0; i < 63; i++) expect(p.allocPages(10, PHYS_4G)).toBeGreaterThan(0);
    expect(p.allocPages(10, PHYS_4G)).toBe(-1);
    expect(dma32(p)).toEqual(counts({ 8: 1, 9: 1 }));
    expect(p.allocPages(9, PHYS_4G)).toBe(512 * 4096);
    expect(p.allocPages(8, PHYS_4G)).toBe(256 * 4096);
    expect(p.allocPages(0, PHYS_4G)).toBe(-1);
    expect(p.freePagesCount(ZONE_DMA32)).toBe(0);
    expect(p.allocFailures()).toBe(2);
  });
  it('a double free is an InvariantError, not a corrupted free list', () => {
    const p = GuestPhysMem.create({ memBytes: 256 * MiB });
    const a = p.allocPages(3, PHYS_4G);
    p.freePages(a, 3);
    expect(() => p.freePages(a, 3)).toThrow(InvariantError);
    expect(() => p.freePages(a + 4096, 0)).toThrow(InvariantError);
    expect(() => p.freePages(4096 * 1024, 11)).toThrow(InvariantError);
    expect(p.checkInvariants()).toEqual([]);
  });
});

describe('memblockAllocLow', () => {
  it('reserves top-down below the limit and gives back the rest of a cut block', () => {
    const p = GuestPhysMem.create({ memBytes: 256 * MiB });
    // 64 MiB at the top of RAM: [192M, 256M) = 16 order-10 blocks.
    expect(p.memblockAllocLow(64 * MiB, 4096, PHYS_4G)).toBe(192 * MiB);
    expect(dma32(p)).toEqual(counts({ 8: 1, 9: 1, 10: 47 }));
    // 3 MiB aligned to 2 MiB: the highest such range below 192M is [188M, 191M) (pfns 48128..48895);
    // it cuts the order-10 block at 188M, whose last MiB [191M, 192M) (pfn 48896, order 8) goes back.
    expect(p.memblockAllocLow(3 * MiB, 2 * MiB, PHYS_4G)).toBe(188 * MiB);
    expect(dma32(p)).toEqual(counts({ 8: 2, 9: 1, 10: 46 }));
    expect(p.memblockPages()).toBe((67 * MiB) / 4096);
    // Below a limit of 100 MiB: [96M, 100M).
    expect(p.memblockAllocLow(4 * MiB, 4096, 100 * MiB)).toBe(96 * MiB);
    expect(p.checkInvariants()).toEqual([]);
  });
  it('throws an InputError when no free range is large enough', () => {
    const p = GuestPhysMem.create({ memBytes: 256 * MiB });
    expect(() => p.memblockAllocLow(256 * MiB, 4096, PHYS_4G)).toThrow(/memblock: cannot reserve 262144KiB|memblock: cannot reserve 256MiB/);
  });
});

describe('setFreeBlocks: a chosen free state', () => {
  it('needs one 4 MiB block per free block of order 9 at least', () => {
    // Hand-worked: {9: 1} needs R = 1 (n9 = 2*1 - 1 = 1, then n_j doubles); {9: 3} needs 3;
    // {8: 5} needs 3 (R = 2: n9 = 4, c8 = 5 > 4; R = 3: n9 = 6 >= 5).
    expect(placementRegions(counts({ 9: 1 }))).toBe(1);
    expect(placementRegions(counts({ 9: 3 }))).toBe(3);
    expect(placementRegions(counts({ 8: 5 }))).toBe(3);
    expect(placementRegions(counts({ 10: 7 }))).toBe(0);
  });
  it('leaves exactly the free blocks asked for, none of them buddies', () => {
    const p = GuestPhysMem.create({ memBytes: 256 * MiB });
    const want = counts({ 0: 3, 1: 2, 2: 1, 7: 4, 9: 2, 10: 5 });
    expect(p.setFreeBlocks(ZONE_DMA32, want)).toBe(true);
    expect(dma32(p)).toEqual(want);
    expect(p.freePagesCount(ZONE_DMA32)).toBe(3 + 4 + 4 + 4 * 128 + 2 * 512 + 5 * 1024);
    expect(p.checkInvariants()).toEqual([]);
    // Taking and giving back keeps the state: the taken pages are never freed, so nothing merges past it.
    const a = p.allocPages(9, PHYS_4G);
    p.freePages(a, 9);
    expect(dma32(p)).toEqual(want);
  });
  it('refuses a state the zone cannot hold, and changes nothing', () => {
    const p = GuestPhysMem.create({ memBytes: 256 * MiB });
    expect(p.setFreeBlocks(ZONE_DMA32, counts({ 10: 64 }))).toBe(false);
    expect(dma32(p)).toEqual(BOOT_256M);
  });
});

describe('formatBuddyinfo', () => {
  it('prints as mm/vmstat.c does: "Node %d, zone %8s " then "%6lu " per order', () => {
    expect(formatBuddyinfo([{ zone: 'Normal', free: counts({ 0: 123456, 10: 7 }) }])).toBe(
      'Node 0, zone   Normal 123456      0      0      0      0      0      0      0      0      0      7 \n',
    );
  });
});
