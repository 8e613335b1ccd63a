// [proposal] A CMA area for swiotlb growth (Alexander Graf, seed thread 002: "You could allocate a max
// bound at boot using CMA and then only fill into the CMA area when SWIOTLB size requirements
// increase? The CMA region will allow movable allocations as long as you don't require the CMA
// space."). No kernel does this for swiotlb; this is the emulator's model of mm/cma.c for it:
//
// - At boot (memblock time, before the buddy allocator serves and before the guest's starting
//   fragmentation is laid out) a range below 4 GiB is reserved, aligned to 4 MiB (a dynamic pool's
//   largest block), so the buddy allocator never sees it and fragmentation cannot touch it.
// - Movable allocations may borrow its pages: the page-cache churn (churn.ts) takes an order-0 page
//   here instead of from the buddy allocator when the CMA area has more free pages than the buddy
//   allocator (the kernel's ALLOC_CMA balance in __rmqueue: free CMA > half of all free pages).
// - cma_alloc (a dynamic pool's pages, through allocPages: the growth worker's page source under
//   --policy cma) takes an aligned run of the pool's size, choosing the run with the fewest borrowed
//   pages, and migrates those out (alloc_contig_range): each gets a new page from the buddy allocator
//   anywhere in memory, and the churn's later free of the old address frees the new one (the page's
//   owner sees no change of identity, as page tables hide migration). A page that finds no new home
//   fails the run (EBUSY); the next run is tried. Migration costs no time in this model (no measured
//   figure to cite): the report counts the pages migrated so the cost can be judged.
// - Nothing is given back: dynamic pools are never freed.
//
// Layout of the region (Int32 words, then one state byte and one forward address per page).
import { InputError, assert } from '../errors.js';
import { areaLock, areaUnlock } from '../swiotlb/area-lock.js';
import { AREA_INTS } from '../swiotlb/layout.js';
import { PAGE_SIZE } from '../swiotlb/constants.js';
import type { GuestPhysMem } from './phys.js';

export const CMA_MAGIC = 0;
export const CMA_MAGIC_VALUE = 0x434d4131; // "CMA1"
export const CMA_BASE_PFN = 1;
export const CMA_PAGES = 2;
export const CMA_HINT = 3; // next page a movable borrow looks at
export const CMA_LENT = 4; // pages lent to movable allocations now
export const CMA_LENT_TOTAL = 5; // borrows ever
export const CMA_MIGRATED = 6; // borrowed pages migrated out for a pool
export const CMA_ALLOC_OK = 7; // cma_alloc calls that gave a range
export const CMA_ALLOC_FAILED = 8; // cma_alloc calls that found none
export const CMA_POOL_PAGES = 9; // pages given to swiotlb pools
export const CMA_MIGRATE_FAILED = 10; // runs given up because a borrowed page found no new home
export const CMA_LOCK = 16; // cma->lock: an io_tlb_area-shaped record
export const CMA_HEADER_INTS = CMA_LOCK + AREA_INTS;
/** Page states. */
const FREE = 0;
const MOVABLE = 1;
const POOL = 2;
/** Alignment of the area: a dynamic pool's largest block (order 10, 4 MiB). */
export const CMA_ALIGN = 4 * 1024 * 1024;
const LOCK_SPINS = 64;
const LOCK_PARK_MS = 100;

export interface CmaShared {
  sab: SharedArrayBuffer;
}

export interface CmaStats {
  base: number;
  bytes: number;
  /** Bytes given to swiotlb pools. */
  pool_bytes: number;
  /** Pages movable allocations hold in the area now, and borrows ever. */
  lent_pages: number;
  lent_total: number;
  /** Borrowed pages migrated out of a range a pool needed. */
  migrated_pages: number;
  allocs: number;
  alloc_failures: number;
  migrate_failures: number;
}

function regionBytes(pages: number): number {
  const head = CMA_HEADER_INTS * 4;
  const stateEnd = head + pages;
  return Math.ceil(stateEnd / 8) * 8 + pages * 8;
}

export class CmaArea {
  readonly shared: CmaShared;
  private readonly i32: Int32Array;
  private readonly state: Uint8Array;
  private readonly forward: Float64Array;
  readonly base: number;
  readonly pages: number;

  private constructor(shared: CmaShared, private readonly phys: GuestPhysMem) {
    this.shared = shared;
    this.i32 = new Int32Array(shared.sab, 0, CMA_HEADER_INTS);
    assert(this.i32[CMA_MAGIC] === CMA_MAGIC_VALUE, 'the CMA region is initialised');
    this.pages = this.i32[CMA_PAGES]!;
    this.base = this.i32[CMA_BASE_PFN]! * PAGE_SIZE;
    const head = CMA_HEADER_INTS * 4;
    this.state = new Uint8Array(shared.sab, head, this.pages);
    this.forward = new Float64Array(shared.sab, Math.ceil((head + this.pages) / 8) * 8, this.pages);
  }

  /** Reserve `bytes` below `limit` at memblock time (cma_declare_contiguous); an InputError when it does not fit. */
  static reserve(phys: GuestPhysMem, bytes: number, limit: number): CmaArea {
    assert(bytes > 0 && bytes % CMA_ALIGN === 0, 'the CMA area is whole 4 MiB blocks');
    let base: number;
    try {
      base = phys.memblockAllocLow(bytes, CMA_ALIGN, limit);
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
      throw new InputError('EBADSIZE', `--cma: a ${bytes >> 20} MiB CMA area does not fit below 4 GiB next to the default pool; use a smaller --cma or more --mem`);
    }
    const pages = bytes / PAGE_SIZE;
    const sab = new SharedArrayBuffer(regionBytes(pages));
    const i32 = new Int32Array(sab, 0, CMA_HEADER_INTS);
    i32[CMA_BASE_PFN] = base / PAGE_SIZE;
    i32[CMA_PAGES] = pages;
    Atomics.store(i32, CMA_MAGIC, CMA_MAGIC_VALUE);
    return new CmaArea({ sab }, phys);
  }

  static attach(shared: CmaShared, phys: GuestPhysMem): CmaArea {
    return new CmaArea(shared, phys);
  }

  contains(addr: number): boolean {
    return addr >= this.base && addr < this.base + this.pages * PAGE_SIZE;
  }

  /** Free pages of the area (neither lent nor a pool's): racy read, for the borrowing balance. */
  freeCount(): number {
    return this.pages - Atomics.load(this.i32, CMA_POOL_PAGES) - Atomics.load(this.i32, CMA_LENT);
  }

  private lock(): void {
    areaLock(this.i32, CMA_LOCK, LOCK_SPINS, LOCK_PARK_MS);
  }
  private unlock(): void {
    areaUnlock(this.i32, CMA_LOCK);
  }

  /**
   * A movable order-0 allocation's page from the area when the balance says so (more free pages here
   * than in the buddy allocator, ALLOC_CMA's rule), else -1 (the caller uses the buddy allocator).
   */
  allocMovable(buddyFreePages: number): number {
    if (this.freeCount() <= buddyFreePages) return -1;
    const i32 = this.i32;
    this.lock();
    let got = -1;
    const start = i32[CMA_HINT]!;
    for (let k = 0; k < this.pages; k++) {
      const p = (start + k) % this.pages;
      if (this.state[p] === FREE && this.forward[p] === 0) {
        this.state[p] = MOVABLE;
        i32[CMA_HINT] = (p + 1) % this.pages;
        got = p;
        break;
      }
    }
    if (got >= 0) {
      Atomics.add(i32, CMA_LENT, 1);
      i32[CMA_LENT_TOTAL] = i32[CMA_LENT_TOTAL]! + 1;
    }
    this.unlock();
    return got < 0 ? -1 : this.base + got * PAGE_SIZE;
  }

  /** The free of a page a movable allocation borrowed here; if it was migrated, its new page is freed. */
  freeMovable(addr: number): void {
    const p = (addr - this.base) / PAGE_SIZE;
    assert(Number.isInteger(p) && p >= 0 && p < this.pages, 'a CMA page is freed');
    this.lock();
    const moved = this.forward[p]!;
    if (moved !== 0) {
      this.forward[p] = 0;
      this.unlock();
      this.phys.freePages(moved, 0);
      return;
    }
    assert(this.state[p] === MOVABLE, 'a borrowed CMA page is freed once');
    this.state[p] = FREE;
    Atomics.sub(this.i32, CMA_LENT, 1);
    this.unlock();
  }

  /**
   * cma_alloc for a dynamic pool (the PhysPageAllocator of dynamic.ts): an aligned run of 2^order
   * pages inside the area and below physLimit, borrowed pages migrated out; the address, or -1.
   */
  allocPages(order: number, physLimit: number): number {
    const n = 1 << order;
    const i32 = this.i32;
    this.lock();
    try {
      // Candidate runs, fewest borrowed pages first (alloc_contig_range is cheapest there).
      const runs: { at: number; lent: number }[] = [];
      const first = Math.ceil(this.base / (n * PAGE_SIZE)) * n - this.base / PAGE_SIZE;
      for (let at = first; at + n <= this.pages; at += n) {
        if (this.base + (at + n) * PAGE_SIZE > physLimit) break;
        let lent = 0;
        let free = true;
        for (let p = at; p < at + n; p++) {
          const s = this.state[p]!;
          if (s === POOL) {
            free = false;
            break;
          }
          if (s === MOVABLE) lent++;
        }
        if (free) runs.push({ at, lent });
      }
      runs.sort((a, b) => a.lent - b.lent || a.at - b.at);
      for (const run of runs) {
        if (!this.migrateOut(run.at, n)) {
          i32[CMA_MIGRATE_FAILED] = i32[CMA_MIGRATE_FAILED]! + 1;
          continue;
        }
        for (let p = run.at; p < run.at + n; p++) this.state[p] = POOL;
        Atomics.add(i32, CMA_POOL_PAGES, n);
        i32[CMA_ALLOC_OK] = i32[CMA_ALLOC_OK]! + 1;
        return this.base + run.at * PAGE_SIZE;
      }
      i32[CMA_ALLOC_FAILED] = i32[CMA_ALLOC_FAILED]! + 1;
      return -1;
    } finally {
      this.unlock();
    }
  }

  /** Move every borrowed page of [at, at + n) to a buddy page; false if one finds none (those moved stay moved). */
  private migrateOut(at: number, n: number): boolean {
    for (let p = at; p < at + n; p++) {
      if (this.state[p] !== MOVABLE) continue;
      const to = this.phys.allocPages(0, Number.MAX_SAFE_INTEGER);
      if (to < 0) return false;
      this.forward[p] = to;
      this.state[p] = FREE;
      Atomics.sub(this.i32, CMA_LENT, 1);
      this.i32[CMA_MIGRATED] = this.i32[CMA_MIGRATED]! + 1;
    }
    return true;
  }

  /** cma_release: a range allocPages gave whose pool was not made after all (dynamic.ts addPool's failure paths). */
  freePages(addr: number, order: number): void {
    const at = (addr - this.base) / PAGE_SIZE;
    const n = 1 << order;
    assert(Number.isInteger(at) && at >= 0 && at + n <= this.pages, 'a CMA range is released');
    this.lock();
    for (let p = at; p < at + n; p++) {
      assert(this.state[p] === POOL, 'a released CMA range was allocated');
      this.state[p] = FREE;
    }
    Atomics.sub(this.i32, CMA_POOL_PAGES, n);
    this.unlock();
  }

  stats(): CmaStats {
    const i32 = this.i32;
    return {
      base: this.base, bytes: this.pages * PAGE_SIZE, pool_bytes: Atomics.load(i32, CMA_POOL_PAGES) * PAGE_SIZE,
      lent_pages: Atomics.load(i32, CMA_LENT), lent_total: i32[CMA_LENT_TOTAL]!, migrated_pages: i32[CMA_MIGRATED]!,
      allocs: i32[CMA_ALLOC_OK]!, alloc_failures: i32[CMA_ALLOC_FAILED]!, migrate_failures: i32[CMA_MIGRATE_FAILED]!,
    };
  }
}
