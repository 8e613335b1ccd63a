// The guest's physical memory and its page allocator: the buddy allocator of mm/page_alloc.c over
// --mem, 4 KiB pages, orders 0..MAX_PAGE_ORDER (10, 4 MiB), in two zones. Everything that needs
// physically contiguous guest memory allocates here: the default swiotlb pool (memblock, at boot),
// dynamic swiotlb pools, the atomic DMA pool's chunks, and the churn thread. This module knows nothing
// of swiotlb; it borrows only the project's one parking lock (swiotlb/area-lock.ts).
//
// RAM layout: QEMU's q35 machine (hw/i386/pc_q35.c). RAM of 2.75 GiB or more is split at 2 GiB: low
// RAM [0, 2 GiB), the 32-bit PCI hole (PCI MMIO and the 256 MiB MMCONFIG window) up to 4 GiB, the rest
// of RAM from 4 GiB up. Smaller RAM lies wholly below 2.75 GiB. The first 1 MiB is reserved, as x86
// Linux always does (arch/x86/kernel/setup.c, reserve of the low 1M), so it is never in the buddy.
//
// Zones: ZONE_DMA32 is the RAM below 4 GiB, ZONE_NORMAL the RAM above. Departure: x86's 16 MiB
// ZONE_DMA is folded into DMA32 (nothing here asks for a 24-bit mask; a /proc/buddyinfo snapshot's DMA
// line is added to DMA32, see buddyinfo.ts). Not modelled: migratetypes and pageblocks (free lists
// are per order only; /proc/buddyinfo sums the migratetypes anyway), the per-CPU page lists,
// watermarks (an allocation takes the last free block), page shuffling, NUMA nodes (one node, 0).
//
// Free lists: per zone and order, a circular doubly linked list threaded through two Int32Arrays
// (next, prev), with a head per order; the links of order k are indexed by frame >> k (a free block of
// order k starts at a frame aligned to 2^k), so the 4 MiB blocks' links lie together and a fresh 16 GiB
// guest touches a few pages of them, not one page per block. An Int8Array per frame holds 1 + the
// order of the free block starting at that frame, or 0. So the metadata is about 17 bytes per 4 KiB
// page of address space (16 GiB: 68 MiB), committed only where touched (a fresh 16 GiB guest: about
// 4 MiB), sized once from --mem, in one SharedArrayBuffer any thread attaches.
//
// Locking: one lock per zone (the kernel's zone->lock), a lock record laid out like an io_tlb_area's so
// the area lock serves (spin, then park on the word). Work under it is bounded: an allocation at most
// MAX_PAGE_ORDER+1 list heads and MAX_PAGE_ORDER splits; a free at most MAX_PAGE_ORDER merges plus a
// check of the block's own 2^order frames. Boot-time calls (memblockAllocLow, setFreeBlocks) hold it
// longer, before any other thread runs.
//
// Invariants (checked by freePages and by the tests, checkInvariants):
//  - every free block of order k starts at a pfn aligned to 2^k, lies wholly in its zone, and is on
//    exactly the free list (zone, k); ord[frame] === k + 1 at its first frame and 0 at every other frame (0, not -1, so the
//    zero-filled buffer needs no initialising pass over every frame);
//  - no two free buddies of the same order both exist (they would have merged, below MAX_PAGE_ORDER);
//  - ZONE_NR_FREE[k] counts the blocks on list k; ZONE_FREE_PAGES = sum of nr_free[k] << k;
//  - a page is in at most one allocation or free block (freeing a page that is free is an
//    InvariantError, never a silent corruption).
import { InputError, InvariantError, assert } from '../errors.js';
import { areaLock, areaUnlock } from '../swiotlb/area-lock.js';
import { AREA_INTS } from '../swiotlb/layout.js';
import { PAGE_SHIFT, PAGE_SIZE } from '../swiotlb/constants.js';

export { PAGE_SHIFT, PAGE_SIZE };
/** Largest buddy order (include/linux/mmzone.h, x86 default): 2^10 pages, 4 MiB. */
export const MAX_PAGE_ORDER = 10;
/** Orders 0..MAX_PAGE_ORDER: the columns of /proc/buddyinfo. */
export const NR_PAGE_ORDERS = MAX_PAGE_ORDER + 1;
export const MAX_ORDER_NR_PAGES = 1 << MAX_PAGE_ORDER;

export const ZONE_DMA32 = 0;
export const ZONE_NORMAL = 1;
export const NR_ZONES = 2;
/** zone->name, as /proc/buddyinfo prints it. */
export const ZONE_NAMES = ['DMA32', 'Normal'] as const;
export type ZoneName = (typeof ZONE_NAMES)[number];

/** 4 GiB: the end of ZONE_DMA32 and x86's ARCH_LOW_ADDRESS_LIMIT + 1. */
export const PHYS_4G = 0x1_0000_0000;
/** q35: RAM of at least this much is split at Q35_LOWMEM_SPLIT; smaller RAM lies wholly below it. */
export const Q35_LOWMEM_MAX = 0xb000_0000;
export const Q35_LOWMEM_SPLIT = 0x8000_0000;
/** x86 reserves the first 1 MiB of RAM at boot; it never reaches the buddy allocator. */
export const LOW_RESERVED_BYTES = 0x10_0000;
/** Largest --mem the frame metadata is built for: about 17 bytes per page, 1.1 GiB of address space at this size. */
export const MAX_GUEST_MEM_BYTES = 256 * 1024 ** 3;

// ---- layout of the metadata SharedArrayBuffer (Int32 words, then the frame arrays) ----
const I32 = 4;
export const PHYS_MAGIC = 0;
export const PHYS_RAM_PAGES = 1; // pages of RAM (both regions)
export const PHYS_LOW_PAGES = 2; // RAM pages below the PCI hole
export const PHYS_LOCK_SPINS = 3;
export const PHYS_PARK_TIMEOUT_MS = 4;
export const PHYS_MEMBLOCK_PAGES = 5; // pages reserved by memblockAllocLow
export const PHYS_ALLOC_FAILS = 6; // allocPages calls that returned -1 (Atomics)
export const PHYS_HEADER_INTS = 16;
export const PHYS_MAGIC_VALUE = 0x42554459; // "BUDY"
/** Zone records follow the header: a lock record (AREA_INTS, the area lock's layout), then fields. */
export const ZONE_BASE = PHYS_HEADER_INTS;
export const ZONE_LOCK = 0; // the lock record: AREA_INTS words from here
export const ZONE_START_PFN = AREA_INTS;
export const ZONE_SPANNED_PAGES = AREA_INTS + 1; // zone->spanned_pages
export const ZONE_FRAME_BASE = AREA_INTS + 2; // frame index of the zone's first pfn
export const ZONE_PRESENT_PAGES = AREA_INTS + 3; // pages given to the buddy allocator at boot
export const ZONE_FREE_PAGES = AREA_INTS + 4; // NR_FREE_PAGES
export const ZONE_ALLOCS = AREA_INTS + 5; // successful allocations, under the lock
export const ZONE_FREES = AREA_INTS + 6;
export const ZONE_HEAD = AREA_INTS + 8; // NR_PAGE_ORDERS words: frame of the first free block, -1 empty
export const ZONE_NR_FREE = ZONE_HEAD + NR_PAGE_ORDERS; // NR_PAGE_ORDERS words: free_area[k].nr_free
export const ZONE_INTS = 48;
const HEADER_INTS = ZONE_BASE + NR_ZONES * ZONE_INTS;
assert(ZONE_NR_FREE + NR_PAGE_ORDERS <= ZONE_INTS, 'a zone record holds its fields');
assert(ZONE_BASE % AREA_INTS === 0 && ZONE_INTS % AREA_INTS === 0, 'zone lock records are cache-line aligned');
/** Bytes of metadata for `ramPages` frames: the header, next and prev (Int32), ord (Int8). */
export function physMetadataBytes(ramPages: number): number {
  return HEADER_INTS * I32 + 2 * I32 * linkEntries(ramPages) + ramPages;
}

/** Link entries of all orders: order k has one per 2^k frames (a free block of order k starts at a
 *  frame aligned to 2^k), so the links of the few large blocks lie together in a small array. */
function linkEntries(ramPages: number): number {
  let total = 0;
  for (let k = 0; k < NR_PAGE_ORDERS; k++) total += Math.ceil(ramPages / 2 ** k);
  return total;
}

/** Where RAM lies: [0, lowBytes) and [4 GiB, 4 GiB + highBytes), q35's split. */
export function q35RamLayout(memBytes: number): { lowBytes: number; highBytes: number } {
  const ram = Math.floor(memBytes / PAGE_SIZE) * PAGE_SIZE;
  const lowBytes = ram >= Q35_LOWMEM_MAX ? Q35_LOWMEM_SPLIT : ram;
  return { lowBytes, highBytes: ram - lowBytes };
}

export interface GuestPhysShared {
  sab: SharedArrayBuffer;
}

export interface GuestPhysOptions {
  memBytes: number;
  lockSpins?: number;
  parkTimeoutMs?: number;
}

export interface ZoneFree {
  zone: ZoneName;
  /** free_area[order].nr_free for order 0..MAX_PAGE_ORDER. */
  free: number[];
}

export class GuestPhysMem {
  readonly shared: GuestPhysShared;
  readonly header: Int32Array;
  private readonly next: Int32Array;
  private readonly prev: Int32Array;
  private readonly ord: Int8Array;
  private readonly linkBase = new Int32Array(NR_PAGE_ORDERS);
  private readonly spins: number;
  private readonly parkMs: number;
  readonly ramPages: number;
  readonly lowPages: number;

  private constructor(shared: GuestPhysShared) {
    this.shared = shared;
    const h = new Int32Array(shared.sab, 0, HEADER_INTS);
    assert(h[PHYS_MAGIC] === PHYS_MAGIC_VALUE, 'guest physical memory: bad magic (not a GuestPhysMem buffer)');
    this.header = h;
    this.ramPages = h[PHYS_RAM_PAGES]!;
    this.lowPages = h[PHYS_LOW_PAGES]!;
    const n = this.ramPages;
    const links = linkEntries(n);
    this.next = new Int32Array(shared.sab, HEADER_INTS * I32, links);
    this.prev = new Int32Array(shared.sab, HEADER_INTS * I32 + links * I32, links);
    let base = 0;
    for (let k = 0; k < NR_PAGE_ORDERS; k++) {
      this.linkBase[k] = base;
      base += Math.ceil(n / 2 ** k);
    }
    this.ord = new Int8Array(shared.sab, HEADER_INTS * I32 + 2 * links * I32, n);
    this.spins = h[PHYS_LOCK_SPINS]!;
    this.parkMs = h[PHYS_PARK_TIMEOUT_MS]!;
  }

  /** Boot: lay RAM out as q35 does, and hand every page but the first MiB to the buddy allocator. */
  static create(opts: GuestPhysOptions): GuestPhysMem {
    if (!Number.isSafeInteger(opts.memBytes) || opts.memBytes < 2 * LOW_RESERVED_BYTES || opts.memBytes > MAX_GUEST_MEM_BYTES) {
      throw new InputError('EBADSIZE', `guest memory: ${opts.memBytes} bytes is outside what the page allocator models; expected 2M..${MAX_GUEST_MEM_BYTES / 1024 ** 3}G`);
    }
    const { lowBytes, highBytes } = q35RamLayout(opts.memBytes);
    const lowPages = lowBytes / PAGE_SIZE;
    const ramPages = lowPages + highBytes / PAGE_SIZE;
    const sab = new SharedArrayBuffer(physMetadataBytes(ramPages));
    const h = new Int32Array(sab, 0, HEADER_INTS);
    h[PHYS_MAGIC] = PHYS_MAGIC_VALUE;
    h[PHYS_RAM_PAGES] = ramPages;
    h[PHYS_LOW_PAGES] = lowPages;
    h[PHYS_LOCK_SPINS] = opts.lockSpins ?? 64;
    h[PHYS_PARK_TIMEOUT_MS] = opts.parkTimeoutMs ?? 100;
    const zone = (z: number, startPfn: number, pages: number, frameBase: number) => {
      const b = ZONE_BASE + z * ZONE_INTS;
      h[b + ZONE_START_PFN] = startPfn;
      h[b + ZONE_SPANNED_PAGES] = pages;
      h[b + ZONE_FRAME_BASE] = frameBase;
      for (let k = 0; k < NR_PAGE_ORDERS; k++) h[b + ZONE_HEAD + k] = -1;
    };
    zone(ZONE_DMA32, 0, lowPages, 0);
    // Normal's frames start at lowPages (2 GiB of pages when RAM is split): aligned to every order, as the links need.
    assert(ramPages === lowPages || lowPages % MAX_ORDER_NR_PAGES === 0, 'ZONE_NORMAL frames are aligned to MAX_ORDER_NR_PAGES');
    zone(ZONE_NORMAL, PHYS_4G / PAGE_SIZE, ramPages - lowPages, lowPages);
    const mem = new GuestPhysMem({ sab });
    // memblock_free_all: every usable range goes to the buddy allocator in the largest aligned
    // blocks, at the tail of the free lists (FPI_TO_TAIL).
    const reserved = LOW_RESERVED_BYTES / PAGE_SIZE;
    mem.freeRange(ZONE_DMA32, reserved, lowPages, true);
    if (ramPages > lowPages) mem.freeRange(ZONE_NORMAL, PHYS_4G / PAGE_SIZE, PHYS_4G / PAGE_SIZE + ramPages - lowPages, true);
    for (let z = 0; z < NR_ZONES; z++) {
      const b = ZONE_BASE + z * ZONE_INTS;
      h[b + ZONE_PRESENT_PAGES] = h[b + ZONE_FREE_PAGES]!;
    }
    return mem;
  }

  static attach(shared: GuestPhysShared): GuestPhysMem {
    return new GuestPhysMem(shared);
  }

  /** Bytes of RAM (both regions). */
  get ramBytes(): number {
    return this.ramPages * PAGE_SIZE;
  }

  /** Zones with pages, lowest first (a guest below 2.75 GiB has no ZONE_NORMAL). */
  populatedZones(): number[] {
    const out: number[] = [];
    for (let z = 0; z < NR_ZONES; z++) if (this.zoneField(z, ZONE_SPANNED_PAGES) > 0) out.push(z);
    return out;
  }

  /** Physical address range [start, end) of zone z. */
  zoneRange(z: number): { start: number; end: number } {
    const start = this.zoneField(z, ZONE_START_PFN) * PAGE_SIZE;
    return { start, end: start + this.zoneField(z, ZONE_SPANNED_PAGES) * PAGE_SIZE };
  }

  /**
   * alloc_pages(order) restricted to memory below physLimit (exclusive): the zones are tried from
   * the highest the limit allows down (the zonelist fallback), each with __rmqueue_smallest: the
   * first block on the smallest non-empty free list of at least `order`, split down to `order`
   * with the upper halves put back on the lists (expand()). A block that lands above physLimit in a
   * zone the limit cuts through is freed again and the next zone is tried, as swiotlb_alloc_tlb does.
   * Returns the physical address, or -1 when no block of that order exists below the limit. Never waits
   * for memory (no reclaim, no compaction).
   */
  allocPages(order: number, physLimit: number): number {
    assert(Number.isInteger(order) && order >= 0 && order <= MAX_PAGE_ORDER, `alloc_pages: order ${order} is outside 0..${MAX_PAGE_ORDER}`);
    for (let z = NR_ZONES - 1; z >= 0; z--) {
      const { start, end } = this.zoneRange(z);
      if (end === start || start >= physLimit) continue;
      const b = ZONE_BASE + z * ZONE_INTS;
      areaLock(this.header, b + ZONE_LOCK, this.spins, this.parkMs);
      let pfn = this.rmqueueSmallest(z, order);
      if (pfn >= 0 && (pfn + (1 << order)) * PAGE_SIZE > physLimit) {
        this.freeOne(z, pfn, order, false);
        pfn = -1;
      }
      if (pfn >= 0) this.header[b + ZONE_ALLOCS]!++;
      areaUnlock(this.header, b + ZONE_LOCK);
      if (pfn >= 0) return pfn * PAGE_SIZE;
    }
    Atomics.add(this.header, PHYS_ALLOC_FAILS, 1);
    return -1;
  }

  /**
   * __free_pages(page, order): give a block back, merging it with its buddy while the buddy is a
   * free block of the same order (__free_one_page). Freeing a page that is not allocated throws.
   */
  freePages(addr: number, order: number): void {
    assert(Number.isInteger(order) && order >= 0 && order <= MAX_PAGE_ORDER, `free_pages: order ${order} is outside 0..${MAX_PAGE_ORDER}`);
    const pfn = addr / PAGE_SIZE;
    const z = this.zoneOf(pfn);
    if (z < 0 || !Number.isInteger(pfn) || (pfn & ((1 << order) - 1)) !== 0 || pfn + (1 << order) > this.zoneEndPfn(z)) {
      throw new InvariantError(`free_pages: 0x${addr.toString(16)} order ${order} is not an aligned block of guest RAM`);
    }
    const b = ZONE_BASE + z * ZONE_INTS;
    areaLock(this.header, b + ZONE_LOCK, this.spins, this.parkMs);
    try {
      if (this.enclosingFree(z, pfn) >= 0) throw new InvariantError(`free_pages: 0x${addr.toString(16)} is already free (double free)`);
      const f = this.frame(z, pfn);
      for (let i = 1; i < 1 << order; i++) {
        if (this.ord[f + i] !== 0) throw new InvariantError(`free_pages: 0x${addr.toString(16)} order ${order} contains a free block at +${i} pages (double free)`);
      }
      this.freeOne(z, pfn, order, false);
      this.header[b + ZONE_FREES]!++;
    } finally {
      areaUnlock(this.header, b + ZONE_LOCK);
    }
  }

  /**
   * memblock_alloc_low(): a boot-time reservation, made before other threads allocate. The highest
   * range of `bytes` (rounded up to pages) aligned to `align` whose pages are all free and lie below
   * `limit` (exclusive), searched top-down as memblock does; its pages leave the free lists for good.
   * Throws InputError if no such range exists.
   */
  memblockAllocLow(bytes: number, align: number, limit: number): number {
    const n = Math.ceil(bytes / PAGE_SIZE);
    const a = Math.max(1, Math.ceil(align / PAGE_SIZE));
    assert(n > 0 && (a & (a - 1)) === 0, `memblock_alloc_low: ${bytes} bytes aligned to ${align} is not a valid request`);
    for (let z = NR_ZONES - 1; z >= 0; z--) {
      const startPfn = this.zoneField(z, ZONE_START_PFN);
      const top = Math.min(this.zoneEndPfn(z), Math.floor(limit / PAGE_SIZE));
      if (top <= startPfn) continue;
      const b = ZONE_BASE + z * ZONE_INTS;
      areaLock(this.header, b + ZONE_LOCK, this.spins, this.parkMs);
      try {
        const s = this.findFreeRangeTopDown(z, startPfn, top, n, a);
        if (s >= 0) {
          this.takeRange(z, s, s + n);
          this.header[PHYS_MEMBLOCK_PAGES]! += n;
          return s * PAGE_SIZE;
        }
      } finally {
        areaUnlock(this.header, b + ZONE_LOCK);
      }
    }
    throw new InputError('ENOMEM', `memblock: cannot reserve ${formatPages(n)} aligned to ${formatPages(a)} below 0x${limit.toString(16)}: the guest's RAM there is too small or taken; use a smaller size or more --mem`);
  }

  /**
   * Take every free page of zone z away (as allocated by "the rest of the guest"), then give back
   * free blocks so that free_area[k].nr_free === counts[k] for every order: the starting state of a
   * guest that has run a while (buddyinfo.ts). Free blocks of order < MAX_PAGE_ORDER are laid out in
   * whole 4 MiB blocks that were free, each holding at least one taken page so that nothing merges
   * past the wanted order (construction in placeFreeBlocks). Returns false (and changes nothing) if
   * the zone's free 4 MiB blocks cannot hold the counts. Boot time only.
   */
  setFreeBlocks(z: number, counts: readonly number[]): boolean {
    assert(counts.length === NR_PAGE_ORDERS, 'setFreeBlocks: one count per order');
    const b = ZONE_BASE + z * ZONE_INTS;
    areaLock(this.header, b + ZONE_LOCK, this.spins, this.parkMs);
    try {
      const regions = placementRegions(counts);
      const maxBlocks = this.header[b + ZONE_NR_FREE + MAX_PAGE_ORDER]!;
      if (regions === null || regions + counts[MAX_PAGE_ORDER]! > maxBlocks) return false;
      // The 4 MiB blocks the layout uses, highest address first (the pages memblock left free at the
      // top of the zone stay the ones a later reservation would have taken); everything else goes.
      const blocks: number[] = [];
      const f0 = this.header[b + ZONE_HEAD + MAX_PAGE_ORDER]!;
      for (let f = f0, i = 0; i < maxBlocks; i++, f = this.next[this.li(f, MAX_PAGE_ORDER)]!) blocks.push(this.pfnOf(z, f));
      blocks.sort((x, y) => y - x);
      for (let k = 0; k < NR_PAGE_ORDERS; k++) {
        while (this.header[b + ZONE_HEAD + k]! >= 0) this.del(z, this.header[b + ZONE_HEAD + k]!, k);
      }
      const used = blocks.slice(0, regions + counts[MAX_PAGE_ORDER]!);
      for (const pfn of used.slice(regions)) this.add(z, this.frame(z, pfn), MAX_PAGE_ORDER, true);
      placeFreeBlocks(used.slice(0, regions), counts, (pfn, k) => this.add(z, this.frame(z, pfn), k, true));
      return true;
    } finally {
      areaUnlock(this.header, b + ZONE_LOCK);
    }
  }

  /** Free blocks per populated zone and order. */
  freeBlocks(): ZoneFree[] {
    return this.populatedZones().map((z) => {
      const b = ZONE_BASE + z * ZONE_INTS;
      const free: number[] = [];
      for (let k = 0; k < NR_PAGE_ORDERS; k++) free.push(Atomics.load(this.header, b + ZONE_NR_FREE + k));
      return { zone: ZONE_NAMES[z]!, free };
    });
  }

  /** Free pages of zone z (NR_FREE_PAGES). */
  freePagesCount(z: number): number {
    return Atomics.load(this.header, ZONE_BASE + z * ZONE_INTS + ZONE_FREE_PAGES);
  }

  /** Pages of zone z given to the buddy allocator at boot (before memblock reservations made later). */
  presentPages(z: number): number {
    return this.zoneField(z, ZONE_PRESENT_PAGES);
  }

  /** allocPages calls that found no block. */
  allocFailures(): number {
    return Atomics.load(this.header, PHYS_ALLOC_FAILS);
  }

  /** Pages memblockAllocLow reserved. */
  memblockPages(): number {
    return this.header[PHYS_MEMBLOCK_PAGES]!;
  }

  /** /proc/buddyinfo, as mm/vmstat.c's frag_show prints it. */
  buddyinfo(): string {
    return formatBuddyinfo(this.freeBlocks());
  }

  /**
   * Walk every free list of every zone and check the invariants above; returns the violations (empty
   * when all hold). O(frames): for tests and the end of a run, not the data path.
   */
  checkInvariants(): string[] {
    const out: string[] = [];
    for (const z of this.populatedZones()) {
      const b = ZONE_BASE + z * ZONE_INTS;
      areaLock(this.header, b + ZONE_LOCK, this.spins, this.parkMs);
      try {
        let pages = 0;
        const seen = new Set<number>();
        for (let k = 0; k < NR_PAGE_ORDERS; k++) {
          const head = this.header[b + ZONE_HEAD + k]!;
          let count = 0;
          for (let f = head; f >= 0 && (count === 0 || f !== head); f = this.next[this.li(f, k)]!) {
            const pfn = this.pfnOf(z, f);
            if (this.ord[f] !== k + 1) out.push(`${ZONE_NAMES[z]} order ${k}: frame of pfn ${pfn} has order ${this.ord[f]! - 1}`);
            if ((pfn & ((1 << k) - 1)) !== 0) out.push(`${ZONE_NAMES[z]} order ${k}: pfn ${pfn} is not aligned`);
            if (this.prev[this.li(this.next[this.li(f, k)]!, k)] !== f) out.push(`${ZONE_NAMES[z]} order ${k}: broken links at pfn ${pfn}`);
            if (seen.has(f)) { out.push(`${ZONE_NAMES[z]} order ${k}: pfn ${pfn} listed twice`); break; }
            seen.add(f);
            if (k < MAX_PAGE_ORDER) {
              const buddy = pfn ^ (1 << k);
              if (this.inZone(z, buddy) && this.ord[this.frame(z, buddy)] === k + 1) out.push(`${ZONE_NAMES[z]} order ${k}: pfn ${pfn} and its buddy are both free`);
            }
            count++;
            if (count > this.ramPages) break;
          }
          if (count !== this.header[b + ZONE_NR_FREE + k]) out.push(`${ZONE_NAMES[z]} order ${k}: nr_free ${this.header[b + ZONE_NR_FREE + k]} but ${count} on the list`);
          pages += count << k;
        }
        if (pages !== this.header[b + ZONE_FREE_PAGES]) out.push(`${ZONE_NAMES[z]}: NR_FREE_PAGES ${this.header[b + ZONE_FREE_PAGES]} but ${pages} pages on the lists`);
        const base = this.zoneField(z, ZONE_FRAME_BASE);
        let heads = 0;
        for (let i = 0; i < this.zoneField(z, ZONE_SPANNED_PAGES); i++) if (this.ord[base + i]! > 0) heads++;
        if (heads !== seen.size) out.push(`${ZONE_NAMES[z]}: ${heads} frames marked free heads, ${seen.size} on the lists`);
      } finally {
        areaUnlock(this.header, b + ZONE_LOCK);
      }
    }
    return out;
  }

  // ---- internals; callers hold the zone's lock ----

  /** Index of the links of the free block of order k at frame f (f is aligned to 2^k). */
  private li(f: number, k: number): number {
    return this.linkBase[k]! + (f >> k);
  }

  private zoneField(z: number, field: number): number {
    return this.header[ZONE_BASE + z * ZONE_INTS + field]!;
  }

  private zoneEndPfn(z: number): number {
    return this.zoneField(z, ZONE_START_PFN) + this.zoneField(z, ZONE_SPANNED_PAGES);
  }

  private zoneOf(pfn: number): number {
    for (let z = 0; z < NR_ZONES; z++) if (this.inZone(z, pfn)) return z;
    return -1;
  }

  private inZone(z: number, pfn: number): boolean {
    const s = this.zoneField(z, ZONE_START_PFN);
    return pfn >= s && pfn < s + this.zoneField(z, ZONE_SPANNED_PAGES);
  }

  private frame(z: number, pfn: number): number {
    return pfn - this.zoneField(z, ZONE_START_PFN) + this.zoneField(z, ZONE_FRAME_BASE);
  }

  private pfnOf(z: number, f: number): number {
    return f - this.zoneField(z, ZONE_FRAME_BASE) + this.zoneField(z, ZONE_START_PFN);
  }

  /** Put the free block at frame f on list (z, k): at the head, or at the tail (FPI_TO_TAIL). */
  private add(z: number, f: number, k: number, toTail: boolean): void {
    const b = ZONE_BASE + z * ZONE_INTS;
    const h = this.header;
    const head = h[b + ZONE_HEAD + k]!;
    const i = this.li(f, k);
    if (head < 0) {
      this.next[i] = f;
      this.prev[i] = f;
      h[b + ZONE_HEAD + k] = f;
    } else {
      const hi = this.li(head, k);
      const tail = this.prev[hi]!;
      this.next[i] = head;
      this.prev[i] = tail;
      this.next[this.li(tail, k)] = f;
      this.prev[hi] = f;
      if (!toTail) h[b + ZONE_HEAD + k] = f;
    }
    this.ord[f] = k + 1;
    h[b + ZONE_NR_FREE + k]!++;
    h[b + ZONE_FREE_PAGES]! += 1 << k;
  }

  private del(z: number, f: number, k: number): void {
    const b = ZONE_BASE + z * ZONE_INTS;
    const h = this.header;
    const i = this.li(f, k);
    const n = this.next[i]!;
    if (n === f) {
      h[b + ZONE_HEAD + k] = -1;
    } else {
      const p = this.prev[i]!;
      this.next[this.li(p, k)] = n;
      this.prev[this.li(n, k)] = p;
      if (h[b + ZONE_HEAD + k] === f) h[b + ZONE_HEAD + k] = n;
    }
    this.ord[f] = 0;
    h[b + ZONE_NR_FREE + k]!--;
    h[b + ZONE_FREE_PAGES]! -= 1 << k;
  }

  /** __rmqueue_smallest + expand(): the pfn of a block of `order`, or -1. */
  private rmqueueSmallest(z: number, order: number): number {
    const b = ZONE_BASE + z * ZONE_INTS;
    for (let k = order; k < NR_PAGE_ORDERS; k++) {
      const f = this.header[b + ZONE_HEAD + k]!;
      if (f < 0) continue;
      this.del(z, f, k);
      for (let high = k; high > order; ) {
        high--;
        this.add(z, f + (1 << high), high, false);
      }
      return this.pfnOf(z, f);
    }
    return -1;
  }

  /** __free_one_page: merge with free buddies up to MAX_PAGE_ORDER, then list the result. */
  private freeOne(z: number, pfn: number, order: number, fpiToTail: boolean): void {
    let buddy = 0;
    while (order < MAX_PAGE_ORDER) {
      buddy = pfn ^ (1 << order);
      if (!this.inZone(z, buddy)) break;
      const bf = this.frame(z, buddy);
      if (this.ord[bf] !== order + 1) break;
      this.del(z, bf, order);
      pfn &= buddy;
      order++;
    }
    // to_tail: FPI_TO_TAIL, else buddy_merge_likely(): the merged block's own buddy one order up is
    // free, so this block may merge soon; keep it at the tail so allocations take other blocks first.
    let toTail = fpiToTail;
    if (!toTail && order < MAX_PAGE_ORDER - 1) {
      const higher = pfn & ~(1 << order);
      const hb = higher ^ (1 << (order + 1));
      toTail = this.inZone(z, hb) && this.ord[this.frame(z, hb)] === order + 2;
    }
    this.add(z, this.frame(z, pfn), order, toTail);
  }

  /** Free [from, to) in the largest aligned blocks (as __free_pages_memory does at boot). */
  private freeRange(z: number, from: number, to: number, toTail: boolean): void {
    let p = from;
    while (p < to) {
      let k = MAX_PAGE_ORDER;
      while (k > 0 && ((p & ((1 << k) - 1)) !== 0 || p + (1 << k) > to)) k--;
      this.freeOne(z, p, k, toTail);
      p += 1 << k;
    }
  }

  /** First pfn of the free block containing pfn, or -1 if pfn is not free. */
  private enclosingFree(z: number, pfn: number): number {
    const start = this.zoneField(z, ZONE_START_PFN);
    for (let k = 0; k < NR_PAGE_ORDERS; k++) {
      const head = pfn & ~((1 << k) - 1);
      if (head < start) break;
      if (this.ord[this.frame(z, head)]! > k) return head;
    }
    return -1;
  }

  /** Highest s with [s, s+n) free, s aligned to a pages, start <= s, s+n <= top; or -1. */
  private findFreeRangeTopDown(z: number, start: number, top: number, n: number, a: number): number {
    let s = Math.floor((top - n) / a) * a;
    while (s >= start) {
      // Walk down from the candidate's last page over whole free blocks until a page is not free.
      let q = s + n - 1;
      while (q >= s) {
        const h = this.enclosingFree(z, q);
        if (h < 0) break;
        q = h - 1;
      }
      if (q < s) return s;
      s = Math.floor((q - n) / a) * a; // the range must end at or below the taken page q
    }
    return -1;
  }

  /** Remove [from, to) (all free) from the free lists; the parts of cut blocks outside go back. */
  private takeRange(z: number, from: number, to: number): void {
    let p = from;
    while (p < to) {
      const h = this.enclosingFree(z, p);
      assert(h >= 0, 'memblock: a page of the range is not free');
      const f = this.frame(z, h);
      const k = this.ord[f]! - 1;
      this.del(z, f, k);
      if (h < from) this.freeRange(z, h, from, true);
      if (h + (1 << k) > to) this.freeRange(z, to, h + (1 << k), true);
      p = h + (1 << k);
    }
  }
}

/**
 * How many 4 MiB blocks a free state needs for its blocks of order < MAX_PAGE_ORDER, or null if none
 * can hold it within 2^31 blocks. Construction: in the binary tree of each 4 MiB block, mark the nodes
 * that contain a taken page. With n_j marked nodes of order j (n_10 = R blocks, n_0 = taken pages),
 * the free blocks of order j are the unmarked children of marked nodes: c_j = 2 n_{j+1} - n_j. So
 * n_j = 2 n_{j+1} - c_j, and a layout exists iff every marked node keeps a marked child, n_j >= n_{j+1},
 * that is c_j <= n_{j+1}, for every j, and n_0 >= 1 when R >= 1. The smallest R that satisfies this.
 */
export function placementRegions(counts: readonly number[]): number | null {
  const fits = (r: number): boolean => {
    let n = r;
    for (let j = MAX_PAGE_ORDER - 1; j >= 0; j--) {
      if (counts[j]! > n) return false;
      n = 2 * n - counts[j]!;
    }
    return true;
  };
  let need = false;
  for (let j = 0; j < MAX_PAGE_ORDER; j++) if (counts[j]! > 0) need = true;
  if (!need) return 0;
  let lo = 1;
  let hi = 1;
  while (!fits(hi)) {
    hi *= 2;
    if (hi > 2 ** 31) return null;
  }
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (fits(mid)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/**
 * Lay out free blocks of order 0..MAX_PAGE_ORDER-1 with exactly counts[j] blocks of each order in the
 * 4 MiB blocks starting at `regions` (as many as placementRegions asked for): level by level, the
 * first n_j - n_{j+1} marked nodes get both children marked, the others their left child only; every
 * unmarked child is a free block; marked pages (level 0) stay taken.
 */
export function placeFreeBlocks(regions: readonly number[], counts: readonly number[], free: (pfn: number, order: number) => void): void {
  let marked = regions.slice();
  for (let j = MAX_PAGE_ORDER - 1; j >= 0; j--) {
    const nNext = 2 * marked.length - counts[j]!;
    let both = nNext - marked.length;
    assert(both >= 0 && both <= marked.length, 'placeFreeBlocks: counts do not fit the regions');
    const out: number[] = [];
    for (const node of marked) {
      out.push(node);
      const right = node + (1 << j);
      if (both > 0) {
        both--;
        out.push(right);
      } else {
        free(right, j);
      }
    }
    marked = out;
  }
}

/** "4KiB", "2MiB": a page count as a size. */
function formatPages(pages: number): string {
  const bytes = pages * PAGE_SIZE;
  return bytes % (1024 * 1024) === 0 ? `${bytes / (1024 * 1024)}MiB` : `${bytes / 1024}KiB`;
}

/** /proc/buddyinfo lines: "Node %d, zone %8s " then "%6lu " per order (mm/vmstat.c frag_show_print). */
export function formatBuddyinfo(zones: readonly ZoneFree[], node = 0): string {
  return zones.map((z) => `Node ${node}, zone ${z.zone.padStart(8)} ${z.free.map((c) => `${String(c).padStart(6)} `).join('')}\n`).join('');
}
