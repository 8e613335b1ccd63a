// kernel/dma/pool.c: the atomic DMA coherent pools, as a CoCo guest uses them. A coherent allocation
// that may not sleep cannot decrypt memory (set_memory_decrypted may block), so it takes memory that
// was decrypted in advance from these pools; with dynamic swiotlb, a transient pool made in a failing
// map call comes from here (swiotlb_alloc_tlb -> dma_alloc_from_pool).
//
// As in mainline (read at torvalds/linux 0510cb5b):
//  - up to three pools (gen_pools): GFP_KERNEL (if ZONE_NORMAL has memory), GFP_KERNEL|GFP_DMA and
//    GFP_KERNEL|GFP_DMA32, each preallocated at boot (dma_atomic_pool_init) with atomic_pool_size:
//    coherent_pool= on the command line, else 128 KiB per GiB of RAM (totalram_pages), at most
//    MAX_ORDER_NR_PAGES pages, at least 128 KiB. A chunk is one buddy block: order
//    min(get_order(size), MAX_PAGE_ORDER), halved while the allocation fails (atomic_pool_expand).
//    Boot line: "DMA: preallocated %zu KiB %pGg pool for atomic allocations".
//  - allocation (dma_alloc_from_pool): the pools in dma_guess_pool's order (for the GFP_NOWAIT of a
//    transient swiotlb pool, no zone flag: kernel, then DMA32, then DMA); in each, gen_pool first fit
//    aligned to the request's own order (gen_pool_first_fit_order_align), chunks newest first. A
//    success that leaves a pool with less than atomic_pool_size available schedules atomic_pool_work
//    (a pending work item is not queued twice); the memory is zeroed.
//  - atomic_pool_work_fn, on its own thread here (workers/atomic-pool.ts, a kworker): every pool whose
//    available bytes are below atomic_pool_size gets a chunk as large as the pool's whole current size
//    (so it doubles), from the buddy allocator below the pool's zone limit, halving the order while
//    guest memory cannot give it; the chunk is decrypted. Pools never shrink.
//  - exhaustion: when no pool can give the memory, "DMA pool exhausted for %s" (a WARN unless
//    __GFP_NOWARN, which the transient pool's GFP_NOWAIT | __GFP_NOWARN carries, so mainline prints
//    nothing then); "Failed to get suitable pool for %s" only when no pool exists at all. Older
//    kernels printed the latter for both. The caller logs (dmaPoolWarning gives the text); alloc
//    returns null and counts.
// Departures: gen_pool's bitmaps are set lock-free and its chunk list is RCU; here one lock (the area
// lock's layout) covers a pool allocation, a free and the publication of a chunk, and the work
// function allocates pages and decrypts outside it. The caller passes dma_coherent_ok as `physOk`
// (the emulated NVMe and NIC have 64-bit masks; a device with a narrower one skips the blocks it
// cannot address and tries the next pool). ZONE_DMA is the first 16 MiB of DMA32 (phys.ts),
// so the DMA pool grows only when the block DMA32's free lists hand out lies below 16 MiB (otherwise
// the block is given back and the expansion counts as failed), where the kernel's separate ZONE_DMA
// would still have its ~15 MiB: the DMA pool is the last one a transient pool's allocation tries.
// The chunk's bytes come from the DecryptedArena (whose page index doubles as the bitmap's).
//
// The API dynamic swiotlb codes against (transient pools): AtomicPool.create({ phys, arena,
// coherentPoolBytes?, decryptLatencyNsPerMiB? }) returns { pool, bootLines } (the kernel's boot
// lines) and sizes atomic_pool_size from the page allocator's totalram, so it takes no memBytes;
// alloc(bytes) -> { phys, arenaOffset, pool } | null; free(phys, bytes); stats(); hasPools() and
// dmaPoolWarning() give the caller dma_alloc_from_pool's WARN text.
//
// Invariants: a chunk record is written whole before AP_NCHUNKS publishes it, under the lock; a page
// of a chunk is in at most one allocation (its map byte is 1 while allocated; free checks it);
// POOL_AVAIL_PAGES equals the chunk pages with map byte 0; pools only grow.
import { InputError, InvariantError, assert } from '../errors.js';
import { areaLock, areaUnlock } from '../swiotlb/area-lock.js';
import { AREA_INTS } from '../swiotlb/layout.js';
import { DecryptedArena, setMemoryDecrypted } from './arena.js';
import { GuestPhysMem, MAX_ORDER_NR_PAGES, MAX_PAGE_ORDER, PAGE_SIZE, PHYS_4G, ZONE_NORMAL } from './phys.js';

/** The pools, in the kernel's variables' order: atomic_pool_dma, atomic_pool_dma32, atomic_pool_kernel. */
export const POOL_DMA = 0;
export const POOL_DMA32 = 1;
export const POOL_KERNEL = 2;
export const NR_ATOMIC_POOLS = 3;
/** %pGg of each pool's gfp, as the boot line prints it. */
export const ATOMIC_POOL_GFP = ['GFP_KERNEL|GFP_DMA', 'GFP_KERNEL|GFP_DMA32', 'GFP_KERNEL'] as const;
/** /sys/kernel/debug/dma_pools/<name>. */
export const ATOMIC_POOL_DEBUGFS = ['pool_size_dma', 'pool_size_dma32', 'pool_size_kernel'] as const;
/** The highest address each pool's pages may end at: ZONE_DMA (x86 zone_dma_bits 24), ZONE_DMA32, any. */
export const ATOMIC_POOL_PHYS_LIMIT = [16 * 1024 * 1024, PHYS_4G, Number.MAX_SAFE_INTEGER] as const;
/** Chunks all pools may hold together: a named bound of this emulator (the kernel's list is unbounded). */
export const MAX_ATOMIC_CHUNKS = 4096;
/** The largest coherent_pool= accepted (atomic_pool_size is compared with byte counts in Int32 here). */
export const MAX_COHERENT_POOL_BYTES = 1024 ** 3;
const SZ_128K = 128 * 1024;

// ---- layout (Int32 words) ----
export const AP_LOCK = 0; // lock record, AREA_INTS words
export const AP_MAGIC = AREA_INTS;
export const AP_ATOMIC_POOL_SIZE = AREA_INTS + 1; // atomic_pool_size, bytes
export const AP_WORK_PENDING = AREA_INTS + 2; // 1 while atomic_pool_work is queued (the worker parks on it)
export const AP_STOP = AREA_INTS + 3; // teardown: the worker exits
export const AP_NCHUNKS = AREA_INTS + 4;
export const AP_EXPANSIONS = AREA_INTS + 5; // chunks added after boot
export const AP_EXHAUSTIONS = AREA_INTS + 6; // allocations no pool could serve
export const AP_EXPAND_FAILS = AREA_INTS + 7; // expansions that got no memory at any order
export const AP_WORK_QUEUED = AREA_INTS + 8; // schedule_work calls that queued the work
export const AP_WORK_RUNS = AREA_INTS + 9;
export const AP_ALLOCS = AREA_INTS + 10;
export const AP_CHUNK_TABLE_FULL = AREA_INTS + 11; // expansions refused: MAX_ATOMIC_CHUNKS reached
export const AP_ARENA_FULL = AREA_INTS + 12; // expansions refused: the DecryptedArena was full
export const AP_WORKER_ALIVE = AREA_INTS + 13; // 1 while the work thread runs
export const AP_POOLS = 32;
export const AP_POOL_INTS = 4;
export const POOL_PRESENT = 0;
export const POOL_SIZE_PAGES = 1; // gen_pool_size / PAGE_SIZE
export const POOL_AVAIL_PAGES = 2; // gen_pool_avail / PAGE_SIZE
export const AP_CHUNKS = AP_POOLS + NR_ATOMIC_POOLS * AP_POOL_INTS;
export const AP_CHUNK_INTS = 4;
export const CH_POOL = 0;
export const CH_PFN = 1; // first page frame (physical address >> PAGE_SHIFT)
export const CH_PAGES = 2;
export const CH_ARENA_PAGE = 3; // first page of its bytes in the DecryptedArena
const AP_INTS = AP_CHUNKS + MAX_ATOMIC_CHUNKS * AP_CHUNK_INTS;
export const AP_MAGIC_VALUE = 0x41544f4d; // "ATOM"

export interface AtomicPoolShared {
  sab: SharedArrayBuffer;
  /** One byte per page of the DecryptedArena: 1 while allocated from an atomic pool chunk. */
  map: SharedArrayBuffer;
}

export interface AtomicPoolOptions {
  phys: GuestPhysMem;
  arena: DecryptedArena;
  /** coherent_pool=, bytes; undefined or 0 means the default (as the kernel treats 0). */
  coherentPoolBytes?: number;
  /** set_memory_decrypted's modelled cost (arena.ts). */
  decryptLatencyNsPerMiB?: number;
}

export interface AtomicAllocation {
  phys: number;
  /** Byte offset of the memory in the DecryptedArena's data. */
  arenaOffset: number;
  /** Which pool served it (POOL_*). */
  pool: number;
}

export interface AtomicPoolStats {
  /** gen_pool_size summed over the pools, bytes. */
  size: number;
  /** gen_pool_avail summed over the pools, bytes. */
  avail: number;
  /** atomic_pool_size, bytes: the threshold of expansion and each pool's boot size. */
  atomic_pool_size: number;
  expansions: number;
  exhaustions: number;
  expand_failures: number;
  work_queued: number;
  work_runs: number;
  allocations: number;
  chunks: number;
  /** debugfs dma_pools: pool_size_dma, pool_size_dma32, pool_size_kernel (bytes; 0 for an absent pool). */
  pools: Record<(typeof ATOMIC_POOL_DEBUGFS)[number], number>;
  limit_hits: { chunk_table_full: number; arena_full: number };
}

/** The kernel's default atomic_pool_size for a guest with `totalramPages` pages (dma_atomic_pool_init). */
export function defaultAtomicPoolSize(totalramPages: number): number {
  const pages = Math.min(Math.floor(totalramPages / ((1024 ** 3) / SZ_128K)), MAX_ORDER_NR_PAGES);
  return Math.max(pages * PAGE_SIZE, SZ_128K);
}

/** get_order(size): the smallest order whose block holds `size` bytes. */
export function getOrder(size: number): number {
  let order = 0;
  while ((PAGE_SIZE << order) < size) order++;
  return order;
}

/** The text a failed dma_alloc_from_pool WARNs with, or null when it stays silent (__GFP_NOWARN). */
export function dmaPoolWarning(dev: string, poolFound: boolean, noWarn: boolean): string | null {
  if (!poolFound) return `Failed to get suitable pool for ${dev}`;
  return noWarn ? null : `DMA pool exhausted for ${dev}`;
}

export class AtomicPool {
  readonly shared: AtomicPoolShared;
  readonly i32: Int32Array;
  private readonly map: Uint8Array;
  private readonly lockSpins = 64;
  private readonly parkMs = 100;

  private constructor(shared: AtomicPoolShared, readonly phys: GuestPhysMem, readonly arena: DecryptedArena) {
    this.shared = shared;
    this.i32 = new Int32Array(shared.sab);
    assert(this.i32[AP_MAGIC] === AP_MAGIC_VALUE, 'atomic pool: bad magic');
    this.map = new Uint8Array(shared.map);
  }

  /**
   * dma_atomic_pool_init: size atomic_pool_size and preallocate each pool whose zone has memory.
   * Returns the pool and the kernel's boot lines (pr_info on success, pr_err on failure).
   */
  static create(opts: AtomicPoolOptions): { pool: AtomicPool; bootLines: string[] } {
    const { phys, arena } = opts;
    const totalram = phys.populatedZones().reduce((s, z) => s + phys.presentPages(z), 0) - phys.memblockPages();
    const atomicPoolSize = opts.coherentPoolBytes ? opts.coherentPoolBytes : defaultAtomicPoolSize(totalram);
    assert(atomicPoolSize > 0 && atomicPoolSize <= MAX_COHERENT_POOL_BYTES, 'atomic_pool_size within bounds');
    const sab = new SharedArrayBuffer(AP_INTS * 4);
    const i32 = new Int32Array(sab);
    i32[AP_MAGIC] = AP_MAGIC_VALUE;
    i32[AP_ATOMIC_POOL_SIZE] = atomicPoolSize;
    const pool = new AtomicPool({ sab, map: new SharedArrayBuffer(arena.capacityBytes / PAGE_SIZE) }, phys, arena);
    const latency = opts.decryptLatencyNsPerMiB ?? 0;
    const bootLines: string[] = [];
    // The kernel's init order: kernel (if ZONE_NORMAL has memory), DMA, DMA32.
    const hasNormal = phys.populatedZones().includes(ZONE_NORMAL);
    for (const p of [POOL_KERNEL, POOL_DMA, POOL_DMA32]) {
      if (p === POOL_KERNEL && !hasNormal) continue;
      i32[AP_POOLS + p * AP_POOL_INTS + POOL_PRESENT] = 1;
      if (pool.expand(p, atomicPoolSize, latency) === 0) {
        bootLines.push(`DMA: failed to allocate ${atomicPoolSize >> 10} KiB ${ATOMIC_POOL_GFP[p]} pool for atomic allocation`);
        i32[AP_POOLS + p * AP_POOL_INTS + POOL_PRESENT] = 0;
      } else {
        bootLines.push(`DMA: preallocated ${(pool.poolField(p, POOL_SIZE_PAGES) * PAGE_SIZE) >> 10} KiB ${ATOMIC_POOL_GFP[p]} pool for atomic allocations`);
      }
    }
    // Boot chunks are not expansions.
    i32[AP_EXPANSIONS] = 0;
    i32[AP_EXPAND_FAILS] = 0;
    return { pool, bootLines };
  }

  static attach(shared: AtomicPoolShared, phys: GuestPhysMem, arena: DecryptedArena): AtomicPool {
    return new AtomicPool(shared, phys, arena);
  }

  get atomicPoolSize(): number {
    return this.i32[AP_ATOMIC_POOL_SIZE]!;
  }

  /**
   * dma_alloc_from_pool(dev, size, ..., gfp, phys_addr_ok) for a GFP_NOWAIT allocation: first fit
   * aligned to the request's order in the pools in dma_guess_pool's order. A block the device cannot
   * address (`physOk`, the caller's dma_coherent_ok) goes straight back and the next pool is tried,
   * as __dma_alloc_from_pool does; only a kept block counts and may schedule the expansion. Never
   * waits. null when no pool gave an addressable block (counted; the caller WARNs with dmaPoolWarning).
   */
  alloc(bytes: number, physOk?: (phys: number, bytes: number) => boolean): AtomicAllocation | null {
    assert(Number.isSafeInteger(bytes) && bytes > 0, `dma_alloc_from_pool: ${bytes} bytes`);
    const nbits = Math.ceil(bytes / PAGE_SIZE);
    for (const p of [POOL_KERNEL, POOL_DMA32, POOL_DMA]) {
      if (this.poolField(p, POOL_PRESENT) === 0) continue;
      areaLock(this.i32, AP_LOCK, this.lockSpins, this.parkMs);
      let found: AtomicAllocation | null = null;
      let low = false;
      try {
        found = this.genPoolAlloc(p, nbits);
        if (found !== null && physOk !== undefined && !physOk(found.phys, bytes)) {
          this.genPoolFree(found.phys, nbits);
          found = null;
        }
        if (found !== null) {
          this.i32[AP_ALLOCS]!++;
          low = this.poolField(p, POOL_AVAIL_PAGES) * PAGE_SIZE < this.atomicPoolSize;
        }
      } finally {
        areaUnlock(this.i32, AP_LOCK);
      }
      if (found !== null) {
        if (low) this.scheduleWork();
        this.arena.data.fill(0, found.arenaOffset, found.arenaOffset + nbits * PAGE_SIZE);
        return found;
      }
    }
    Atomics.add(this.i32, AP_EXHAUSTIONS, 1);
    return null;
  }

  /** True when any pool exists (dma_alloc_from_pool's pool_found, before it tries them). */
  hasPools(): boolean {
    for (let p = 0; p < NR_ATOMIC_POOLS; p++) if (this.poolField(p, POOL_PRESENT) !== 0) return true;
    return false;
  }

  /** dma_free_from_pool: give back an allocation of `bytes` at `phys`. */
  free(phys: number, bytes: number): void {
    areaLock(this.i32, AP_LOCK, this.lockSpins, this.parkMs);
    try {
      this.genPoolFree(phys, Math.ceil(bytes / PAGE_SIZE));
    } finally {
      areaUnlock(this.i32, AP_LOCK);
    }
  }

  /** gen_pool_free of `nbits` pages at `phys`; the caller holds AP_LOCK. */
  private genPoolFree(phys: number, nbits: number): void {
    const pfn = phys / PAGE_SIZE;
    const n = this.i32[AP_NCHUNKS]!;
    for (let c = 0; c < n; c++) {
      const cb = AP_CHUNKS + c * AP_CHUNK_INTS;
      const start = this.i32[cb + CH_PFN]!;
      if (pfn < start || pfn + nbits > start + this.i32[cb + CH_PAGES]!) continue;
      const m = this.i32[cb + CH_ARENA_PAGE]! + (pfn - start);
      for (let i = 0; i < nbits; i++) {
        if (this.map[m + i] !== 1) throw new InvariantError(`dma_free_from_pool: 0x${phys.toString(16)}+${nbits * PAGE_SIZE} is not allocated (page ${i})`);
      }
      this.map.fill(0, m, m + nbits);
      this.i32[AP_POOLS + this.i32[cb + CH_POOL]! * AP_POOL_INTS + POOL_AVAIL_PAGES]! += nbits;
      return;
    }
    throw new InvariantError(`dma_free_from_pool: 0x${phys.toString(16)} is in no atomic pool`);
  }

  stats(): AtomicPoolStats {
    const pools = {} as AtomicPoolStats['pools'];
    let size = 0;
    let avail = 0;
    for (let p = 0; p < NR_ATOMIC_POOLS; p++) {
      const s = Atomics.load(this.i32, AP_POOLS + p * AP_POOL_INTS + POOL_SIZE_PAGES) * PAGE_SIZE;
      pools[ATOMIC_POOL_DEBUGFS[p]!] = s;
      size += s;
      avail += Atomics.load(this.i32, AP_POOLS + p * AP_POOL_INTS + POOL_AVAIL_PAGES) * PAGE_SIZE;
    }
    const l = (i: number) => Atomics.load(this.i32, i);
    return {
      size, avail, atomic_pool_size: this.atomicPoolSize, expansions: l(AP_EXPANSIONS), exhaustions: l(AP_EXHAUSTIONS),
      expand_failures: l(AP_EXPAND_FAILS), work_queued: l(AP_WORK_QUEUED), work_runs: l(AP_WORK_RUNS), allocations: l(AP_ALLOCS),
      chunks: l(AP_NCHUNKS), pools, limit_hits: { chunk_table_full: l(AP_CHUNK_TABLE_FULL), arena_full: l(AP_ARENA_FULL) },
    };
  }

  /** schedule_work(&atomic_pool_work): queue it unless it is already pending, and wake the worker. */
  scheduleWork(): void {
    if (Atomics.compareExchange(this.i32, AP_WORK_PENDING, 0, 1) === 0) {
      Atomics.add(this.i32, AP_WORK_QUEUED, 1);
      Atomics.notify(this.i32, AP_WORK_PENDING);
    }
  }

  /**
   * atomic_pool_work_fn: atomic_pool_resize for DMA, DMA32 and kernel, in that order. Returns the
   * chunks added ({ pool, bytes }) so the worker can log them. Runs on the work thread.
   */
  workFn(decryptLatencyNsPerMiB: number): { pool: number; bytes: number; phys: number; size: number }[] {
    Atomics.add(this.i32, AP_WORK_RUNS, 1);
    const added: { pool: number; bytes: number; phys: number; size: number }[] = [];
    for (const p of [POOL_DMA, POOL_DMA32, POOL_KERNEL]) {
      if (this.poolField(p, POOL_PRESENT) === 0) continue;
      if (Atomics.load(this.i32, AP_POOLS + p * AP_POOL_INTS + POOL_AVAIL_PAGES) * PAGE_SIZE >= this.atomicPoolSize) continue;
      const before = this.i32[AP_NCHUNKS]!;
      const bytes = this.expand(p, Atomics.load(this.i32, AP_POOLS + p * AP_POOL_INTS + POOL_SIZE_PAGES) * PAGE_SIZE, decryptLatencyNsPerMiB);
      if (bytes > 0) {
        const cb = AP_CHUNKS + before * AP_CHUNK_INTS;
        added.push({ pool: p, bytes, phys: this.i32[cb + CH_PFN]! * PAGE_SIZE, size: this.poolField(p, POOL_SIZE_PAGES) * PAGE_SIZE });
      }
    }
    return added;
  }

  /**
   * atomic_pool_expand(pool, size): one chunk of order min(get_order(size), MAX_PAGE_ORDER), halved
   * while the buddy allocator cannot give it, decrypted, added to the pool. Returns its bytes, or 0.
   */
  private expand(p: number, size: number, latency: number): number {
    if (Atomics.load(this.i32, AP_NCHUNKS) >= MAX_ATOMIC_CHUNKS) {
      Atomics.add(this.i32, AP_CHUNK_TABLE_FULL, 1);
      return 0;
    }
    let order = Math.min(getOrder(size), MAX_PAGE_ORDER);
    let addr = -1;
    for (;;) {
      addr = this.phys.allocPages(order, ATOMIC_POOL_PHYS_LIMIT[p]!);
      if (addr >= 0 || order === 0) break;
      order--;
    }
    if (addr < 0) {
      Atomics.add(this.i32, AP_EXPAND_FAILS, 1);
      return 0;
    }
    const bytes = PAGE_SIZE << order;
    const off = this.arena.carve(bytes);
    if (off < 0) {
      this.phys.freePages(addr, order);
      Atomics.add(this.i32, AP_ARENA_FULL, 1);
      return 0;
    }
    setMemoryDecrypted(addr, bytes, latency);
    areaLock(this.i32, AP_LOCK, this.lockSpins, this.parkMs);
    try {
      const c = this.i32[AP_NCHUNKS]!;
      if (c >= MAX_ATOMIC_CHUNKS) {
        // Another expansion took the last record meanwhile (only at boot and in the one worker, so
        // in practice never): the pages go back; the arena bytes stay carved (it never frees).
        this.phys.freePages(addr, order);
        Atomics.add(this.i32, AP_CHUNK_TABLE_FULL, 1);
        return 0;
      }
      const cb = AP_CHUNKS + c * AP_CHUNK_INTS;
      this.i32[cb + CH_POOL] = p;
      this.i32[cb + CH_PFN] = addr / PAGE_SIZE;
      this.i32[cb + CH_PAGES] = 1 << order;
      this.i32[cb + CH_ARENA_PAGE] = off / PAGE_SIZE;
      // Publish: the record is whole before the count covers it.
      Atomics.store(this.i32, AP_NCHUNKS, c + 1);
      this.i32[AP_POOLS + p * AP_POOL_INTS + POOL_SIZE_PAGES]! += 1 << order;
      this.i32[AP_POOLS + p * AP_POOL_INTS + POOL_AVAIL_PAGES]! += 1 << order;
      this.i32[AP_EXPANSIONS]!++;
    } finally {
      areaUnlock(this.i32, AP_LOCK);
    }
    return bytes;
  }

  /** gen_pool_alloc with gen_pool_first_fit_order_align; the caller holds the lock. */
  private genPoolAlloc(p: number, nbits: number): AtomicAllocation | null {
    const align = roundupPow2(nbits);
    // Chunks newest first (gen_pool_add puts a chunk at the head of the list).
    for (let c = this.i32[AP_NCHUNKS]! - 1; c >= 0; c--) {
      const cb = AP_CHUNKS + c * AP_CHUNK_INTS;
      if (this.i32[cb + CH_POOL] !== p) continue;
      const pages = this.i32[cb + CH_PAGES]!;
      if (pages < nbits) continue;
      const m = this.i32[cb + CH_ARENA_PAGE]!;
      let i = 0;
      while (i + nbits <= pages) {
        let j = i;
        while (j < i + nbits && this.map[m + j] === 0) j++;
        if (j === i + nbits) {
          this.map.fill(1, m + i, m + i + nbits);
          this.i32[AP_POOLS + p * AP_POOL_INTS + POOL_AVAIL_PAGES]! -= nbits;
          return { phys: (this.i32[cb + CH_PFN]! + i) * PAGE_SIZE, arenaOffset: (m + i) * PAGE_SIZE, pool: p };
        }
        i = Math.ceil((j + 1) / align) * align;
      }
    }
    return null;
  }

  private poolField(p: number, f: number): number {
    return this.i32[AP_POOLS + p * AP_POOL_INTS + f]!;
  }
}

function roundupPow2(n: number): number {
  let v = 1;
  while (v < n) v *= 2;
  return v;
}

/**
 * coherent_pool= from a kernel command line, read as early_coherent_pool does: memparse (a number
 * in C's base 0, decimal, 0x hex or 0 octal, then an optional K, M, G, T, P or E). 0 means the default,
 * as in the kernel. Unlike memparse, trailing garbage or no number is an InputError, not a silent 0.
 */
export function parseCoherentPoolCmdline(cmdline: string): number | undefined {
  let out: number | undefined;
  for (const word of cmdline.trim().split(/\s+/)) {
    if (!word.startsWith('coherent_pool=')) continue;
    const v = word.slice('coherent_pool='.length);
    const m = /^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9]\d*)([kKmMgGtTpPeE]?)$/.exec(v);
    if (!m) throw new InputError('EBADCMDLINE', `--cmdline: "${word}" is not valid; expected coherent_pool=<size> with an optional K, M or G suffix, e.g. coherent_pool=2M`);
    const digits = m[1]!;
    const n = /^0[xX]/.test(digits) ? parseInt(digits.slice(2), 16) : digits.length > 1 && digits[0] === '0' ? parseInt(digits, 8) : Number(digits);
    const shift = m[2] === '' ? 0 : 'kmgtpe'.indexOf(m[2]!.toLowerCase()) + 1;
    const bytes = n * 1024 ** shift;
    if (!Number.isSafeInteger(bytes) || bytes > MAX_COHERENT_POOL_BYTES) {
      throw new InputError('EBADCMDLINE', `--cmdline: "${word}" is larger than this emulator's atomic pool allows; expected at most coherent_pool=1G`);
    }
    out = bytes; // the last one wins, as early params do
  }
  return out === 0 ? undefined : out;
}

/** The work thread's loop: park on AP_WORK_PENDING (slices of parkMs), run the work, until AP_STOP. */
export function atomicPoolWorkLoop(
  pool: AtomicPool, decryptLatencyNsPerMiB: number, parkMs: number,
  onAdded: (chunk: { pool: number; bytes: number; phys: number; size: number }) => void,
): void {
  const i32 = pool.i32;
  Atomics.store(i32, AP_WORKER_ALIVE, 1);
  try {
    while (Atomics.load(i32, AP_STOP) === 0) {
      if (Atomics.load(i32, AP_WORK_PENDING) === 0) {
        Atomics.wait(i32, AP_WORK_PENDING, 0, parkMs);
        continue;
      }
      // The work item is no longer pending once it runs: a schedule_work from here on queues it again.
      Atomics.store(i32, AP_WORK_PENDING, 0);
      for (const c of pool.workFn(decryptLatencyNsPerMiB)) onAdded(c);
    }
  } finally {
    Atomics.store(i32, AP_WORKER_ALIVE, 0);
  }
}

/** Teardown: tell the work thread to exit and wake it. */
export function stopAtomicPoolWorker(pool: AtomicPool): void {
  Atomics.store(pool.i32, AP_STOP, 1);
  Atomics.notify(pool.i32, AP_WORK_PENDING);
}
