// Dynamic swiotlb (CONFIG_SWIOTLB_DYNAMIC, mainline since v6.6; reference §12): the policy that
// mem.ts calls at the kernel's points (DESIGN-next: "search failed", "released", and the pool list):
// - search failed (swiotlb_find_slots, after every pool and area): schedule_work(&mem->dyn_alloc),
//   then a transient pool for this one request;
// - released (swiotlb_tbl_unmap_single): a transient pool is deleted whole (swiotlb_del_transient);
// - swiotlb_find_pool: none unless dma_uses_io_tlb, else the allocator's pools, then the device's
//   transient pools, linearly;
// - the growth work itself (swiotlb_dyn_alloc, swiotlb_alloc_pool, swiotlb_alloc_tlb), run by the
//   growth worker thread (workers/swiotlb-dyn.ts).
//
// Shared memory is sized up front (layout.ts DYN_*): a thread cannot receive a new SAB without a
// message, and the data path never waits for one. Dynamic pools' bounce data come from the decrypted
// arena (memory/arena.ts), their areas and slots from the metadata arena; transient pools' memory
// from the atomic pool (memory/atomic-pool.ts), their metadata from a fixed block per record.
//
// Publication (the RCU rule, "a thread either does not see a pool or sees it whole"):
// - a dynamic pool's metadata is initialised and its descriptor written before MEM_NPOOLS is stored
//   (Atomics.store), under mem->lock; readers Atomics.load MEM_NPOOLS and read only descriptors
//   below it. Dynamic pools are never freed, so no reader can lose one;
// - a transient record is filled before the device list's head is stored (Atomics.store) to point
//   at it; readers walk the list with Atomics.load.
//
// Grace period of a transient pool (the invariant, checked by the stress harness): a transient pool's
// memory goes back to the atomic pool only when, after its unlink, every reader slot was seen 0 (not
// reading) or holding an epoch >= the record's retire epoch. Why that suffices: the deleter unlinks
// (store), then increments DYN_EPOCH (its new value is the retire epoch), then reads the slots; a
// reader stores the epoch it loaded into its slot before it loads the list head. All are Atomics
// (sequentially consistent). A slot seen 0 means the reader's store comes after our read, so its walk
// starts after the unlink and cannot reach the record; a slot >= the retire epoch means the reader
// loaded the epoch after our increment, so after the unlink. Any other reader may be standing on the
// record: we wait (never blocking: the record stays retired and a later reclaim pass frees it). A
// record's own TR_NEXT is never changed by the unlink, so a reader standing on it walks on. The
// RETIRED -> RECLAIMING compare-exchange makes the free happen exactly once.
import { assert } from '../errors.js';
import type { DmaDevice } from '../dma/device.js';
import { nowMs } from '../util/clock.js';
import { areaLock, areaUnlock } from './area-lock.js';
import { IO_TLB_MIN_SLABS, IO_TLB_SEGSIZE, IO_TLB_SIZE, PAGE_SIZE, SLABS_PER_PAGE, alignUp, nrSlots } from './constants.js';
import {
  AREA_BYTES, DEVREC_HEAD, DEVREC_INTS, DEVREC_LOCK, DEVREC_NAME, DEVREC_NAME_BYTES, DEVREC_NAME_LEN, DEVREC_USES_IO_TLB,
  DYN_ATTEMPTS, DYN_ATTEMPTS_OK, DYN_CREATED_AT_MS, DYN_DEFAULT_NSLABS, DYN_DEVICES, DYN_DEVICES_USED, DYN_EPOCH,
  DYN_GROW_COMMITTED_SLABS, DYN_GROW_FAILED, DYN_GROW_LIMIT_SLABS, DYN_GROW_RUNS, DYN_RESERVED_SLABS, DYN_LOCK_RECORD, DYN_MAGIC, DYN_MAGIC_VALUE, DYN_MAX_DEVICES, DYN_MAX_READERS,
  DYN_MAX_TRANSIENT, DYN_META_CAP, DYN_META_NEXT, DYN_PHYS_LIMIT_PAGES, DYN_POOLS_ADDED, DYN_POOL_BYTES_PEAK, DYN_READERS,
  DYN_READERS_USED, DYN_SCHEDULED, DYN_SCHEDULE_NOOP, DYN_STOP, DYN_TRANSIENT_BYTES_LIVE, DYN_TRANSIENT_CREATED,
  DYN_TRANSIENT_FAILED, DYN_TRANSIENT_FAIL_NOMEM, DYN_TRANSIENT_FAIL_SEARCH, DYN_TRANSIENT_FAIL_TABLE,
  DYN_TRANSIENT_FREED, DYN_TRANSIENT_LIVE, DYN_TRANSIENT_PEAK, DYN_TRANSIENT_RETIRED, DYN_TRIGGER_MS,
  DYN_TRIGGER_TO_POOL_MS_MAX, DYN_TRIGGER_TO_POOL_MS_SUM, DYN_TR_HWM, DYN_WORK_PENDING, DYN_WORK_SEQ, GROW_SIZE_SLOTS,
  MEM_DEFAULT_NAREAS, MEM_MAX_POOLS, MEM_NPOOLS, MEM_NSLABS, MEM_POOL_TABLE, MEM_TOTAL_USED, MEM_TRANSIENT_NSLABS,
  POOL_ADDED_MS, POOL_DATA_PAGE, POOL_DESC_INTS, POOL_KIND, POOL_KIND_DYNAMIC, POOL_KIND_TRANSIENT, POOL_META_OFFSET,
  POOL_NAREAS, POOL_NSLABS, POOL_START_HI, POOL_START_LO, READER_INTS, TR_ARENA_OFFSET, TR_DEVICE, TR_FREE, TR_FREES,
  TR_GEN, TR_INTS, TR_LIVE, TR_META_BYTES, TR_NEXT, TR_NSLABS, TR_RECLAIMING, TR_RETIRED, TR_RETIRE_EPOCH, TR_START,
  TR_STATE, areasBytes, dynPoolMetaBytes, dynRegionBytes, dynTransientTable,
} from './layout.js';
import { IoTlbPool } from './pool.js';
import { dmaPoolWarning } from '../memory/atomic-pool.js';
import type { SwiotlbEventSink } from './mem.js';
import { limitNareas } from './sizing.js';
import { type GrowLimitStats, growLimitSlabs, growLimitStats, growthRefused, releaseGrowth, reserveGrowth } from './grow-limit.js';
import { formatBytes } from '../util/units.js';
import { CopyRegion } from '../memory/copy.js';
import {
  P_GROWTH_SCHEDULED, P_POOL_PUBLISHED, P_TRANSIENT_DEL, P_TRANSIENT_FREE, P_TRANSIENT_LINKED, P_TRANSIENT_RECLAIM,
  P_TRANSIENT_RETIRED, hook,
} from './instrument.js';
import {
  M_NSLABS_TRANSIENT, M_POOL_HALF_PAGES, M_PUBLISH_BEFORE_INIT, M_TRANSIENT_DOUBLE_FREE, M_TRANSIENT_USED_LEAK, mutant,
} from './mutants.js';

// --- what dynamic swiotlb needs of guest memory (memory/: phys.ts, arena.ts, atomic-pool.ts) -------

/** The buddy allocator (memory/phys.ts GuestPhysMem). */
export interface PhysPageAllocator {
  /** alloc_pages restricted to below physLimit: the address, or -1; never waits. */
  allocPages(order: number, physLimit: number): number;
  freePages(addr: number, order: number): void;
}
/** The decrypted arena (memory/arena.ts DecryptedArena). */
export interface DecryptedBytes {
  carve(bytes: number): number;
  readonly data: Uint8Array;
}
/** The atomic DMA coherent pool (memory/atomic-pool.ts AtomicPool). */
export interface AtomicDmaPool {
  /** dma_alloc_from_pool; `physOk` is dma_coherent_ok (a block it rejects goes back, the next pool is tried). */
  alloc(bytes: number, physOk?: (phys: number, bytes: number) => boolean): { phys: number; arenaOffset: number } | null;
  free(phys: number, bytes: number): void;
  /** dma_alloc_from_pool's pool_found: some atomic pool exists. */
  hasPools(): boolean;
}
/** set_memory_decrypted (memory/arena.ts), with its modelled cost. */
export type SetMemoryDecrypted = (addr: number, bytes: number) => void;

/** This thread's handles on guest memory, for the dynamic paths that use them. */
export interface DynamicMemory {
  /** The growth worker's (swiotlb_dyn_alloc) source of pages. */
  phys?: PhysPageAllocator;
  arena: DecryptedBytes;
  /** The growth worker: set_memory_decrypted on a new pool's pages. */
  setMemoryDecrypted?: SetMemoryDecrypted;
  /** Mapping threads: transient pools in a CoCo VM (force_dma_unencrypted, GFP_NOWAIT). */
  atomicPool?: AtomicDmaPool | null;
}

/** What a thread needs to rebuild the dynamic state's handle: the region, the metadata arena and the decrypted arena's SAB. */
export interface DynamicShared {
  region: SharedArrayBuffer;
  meta: SharedArrayBuffer;
  arena: SharedArrayBuffer;
}

/** Limits of the dynamic state, fixed at boot and reported. */
export interface DynamicLimits {
  /** Pool table entries, the default pool included. */
  max_pools: number;
  /** Transient pools that can exist at once (live or in their grace period). */
  max_transient: number;
  /** Threads that can walk a device's transient list (reader slots of the grace period). */
  max_readers: number;
  /** Devices with a transient list. */
  max_devices: number;
  /** Bytes of the dynamic pools' metadata arena (areas and slots). */
  meta_arena_bytes: number;
}

/** The cap of a dynamic pool: SLABS_PER_PAGE << MAX_PAGE_ORDER (4 MiB, 2048 slots on x86). */
export const MAX_PAGE_ORDER = 10;
export const DYN_POOL_MAX_SLABS = SLABS_PER_PAGE << MAX_PAGE_ORDER;
/** An x86 CoCo guest gets SWIOTLB_FORCE without SWIOTLB_ANY: phys_limit = ARCH_LOW_ADDRESS_LIMIT (below 4 GiB). */
export const X86_COCO_PHYS_LIMIT = 2 ** 32;
/** Reader slots: every thread that maps, unmaps or syncs (vCPUs up to 256, stress threads, the main thread and the worker). */
export const DEFAULT_MAX_READERS = 512;

/**
 * Pool table entries for `headroomBytes` of memory that growth could turn into pools: one per
 * IO_TLB_MIN_SLABS (1 MiB), the smallest pool swiotlb_alloc_pool makes, plus the default pool. For
 * 1 GiB that is 1,025; a run cannot add more pools than that whatever it does.
 */
export function maxPoolsFor(headroomBytes: number): number {
  return 1 + Math.floor(headroomBytes / (IO_TLB_MIN_SLABS * IO_TLB_SIZE));
}

/** Metadata arena bytes for dynamic pools over `headroomBytes`: slots of every byte, areas of every pool (at most 16 each at 2048 slots). */
export function metaArenaBytes(maxPools: number, headroomBytes: number): number {
  const maxAreas = DYN_POOL_MAX_SLABS / IO_TLB_SEGSIZE;
  return alignUp((maxPools - 1) * (areasBytes(maxAreas) + 8) + dynPoolMetaBytes(Math.floor(headroomBytes / IO_TLB_SIZE), 0), 8);
}

export interface DynamicCreateOptions {
  /** Memory below phys_limit that growth may use (the decrypted arena's capacity for pools). */
  headroomBytes: number;
  /** default_nslabs: what the growth worker asks for before the 4 MiB cap. */
  defaultNslabs: number;
  physLimit?: number;
  /** Transient pools at once (live plus in their grace period); default one per page of the atomic pool's budget. */
  maxTransient: number;
  maxReaders?: number;
  /** [proposal] --grow-limit in slots: default + dynamic pools may not pass it (grow-limit.ts); absent or 0: none. */
  growLimitSlabs?: number;
  /**
   * [proposal] --policy cma: slots reserved at boot for growth (the CMA area, memory/cma.ts), committed
   * whether pools use them or not: the swiotlb memory figures count them from boot.
   */
  reservedSlabs?: number;
}

export interface DynamicStats {
  grow_runs: number;
  grow_failed: number;
  pools_added: number;
  scheduled: number;
  schedule_noop: number;
  /** Growth attempts by requested size (bytes): swiotlb_alloc_pool's halving steps. */
  attempts: { bytes: number; attempts: number; ok: number; failed: number }[];
  trigger_to_pool_ms_avg: number;
  trigger_to_pool_ms_max: number;
  transient_created: number;
  transient_failed: number;
  transient_fail_nomem: number;
  transient_fail_table: number;
  transient_fail_search: number;
  transient_live: number;
  transient_peak: number;
  transient_freed: number;
  transient_retired: number;
  /** Peak of the bytes of every swiotlb pool at once (default, dynamic and live transient). */
  pool_bytes_peak: number;
  /** [proposal] --grow-limit (grow-limit.ts). */
  grow_limit: GrowLimitStats;
  limits: DynamicLimits;
}

/** Create the region of an allocator's dynamic state (boot). */
export function createDynamicRegion(opts: DynamicCreateOptions, arena: SharedArrayBuffer): { shared: DynamicShared; maxPools: number } {
  const maxReaders = opts.maxReaders ?? DEFAULT_MAX_READERS;
  const maxPools = maxPoolsFor(opts.headroomBytes);
  const metaDyn = metaArenaBytes(maxPools, opts.headroomBytes);
  const metaTransient = opts.maxTransient * TR_META_BYTES;
  const region = new SharedArrayBuffer(dynRegionBytes(maxReaders, opts.maxTransient));
  const r = new Int32Array(region);
  r[DYN_MAGIC] = DYN_MAGIC_VALUE;
  r[DYN_EPOCH] = 1;
  r[DYN_MAX_READERS] = maxReaders;
  r[DYN_MAX_TRANSIENT] = opts.maxTransient;
  r[DYN_META_NEXT] = metaTransient; // transient blocks first, dynamic pools' metadata after them
  r[DYN_META_CAP] = metaTransient + metaDyn;
  r[DYN_DEFAULT_NSLABS] = opts.defaultNslabs;
  r[DYN_GROW_LIMIT_SLABS] = opts.growLimitSlabs ?? 0;
  r[DYN_RESERVED_SLABS] = opts.reservedSlabs ?? 0;
  r[DYN_GROW_COMMITTED_SLABS] = opts.defaultNslabs; // the default pool (default_nslabs is its size)
  r[DYN_PHYS_LIMIT_PAGES] = Math.floor((opts.physLimit ?? X86_COCO_PHYS_LIMIT) / PAGE_SIZE);
  new Float64Array(region)[DYN_CREATED_AT_MS >> 1] = nowMs();
  assert(metaTransient + metaDyn < 2 ** 31, 'the metadata arena is addressable by Int32 offsets');
  return { shared: { region, meta: new SharedArrayBuffer(metaTransient + metaDyn), arena }, maxPools };
}

/** What one run of the growth work did: a pool added (its table index, size, address, trigger-to-pool time) or why not. */
export type GrowResult =
  | { ok: true; pool: number; nslabs: number; nareas: number; start: number; tookMs: number }
  // limited: [proposal] --grow-limit refused it (grow-limit.ts): not the kernel's "Failed to allocate new pool".
  | { ok: false; reason: string; limited?: { limit_bytes: number; committed_bytes: number } };

interface TransientView {
  gen: number;
  pool: IoTlbPool;
}

/** This thread's handle on an allocator's dynamic state. */
export class DynamicSwiotlb {
  readonly r: Int32Array;
  readonly f: Float64Array;
  readonly shared: DynamicShared;
  private readonly header: Int32Array;
  private readonly trBase: number;
  private readonly maxTransient: number;
  private readerSlot = -1;
  /** Cached views of transient pools, by record; stale when the record's generation moved on. */
  private readonly trViews: (TransientView | undefined)[] = [];
  private trHint = 0;
  memory: DynamicMemory | null;
  /** The allocator's event sink and the calling CPU (set by IoTlbMem). */
  events: SwiotlbEventSink | null = null;
  cpu = 0;

  constructor(header: Int32Array, shared: DynamicShared, memory: DynamicMemory | null) {
    this.header = header;
    this.shared = shared;
    this.r = new Int32Array(shared.region);
    this.f = new Float64Array(shared.region);
    assert(this.r[DYN_MAGIC] === DYN_MAGIC_VALUE, 'the dynamic region is initialised');
    this.trBase = dynTransientTable(this.r[DYN_MAX_READERS]!);
    this.maxTransient = this.r[DYN_MAX_TRANSIENT]!;
    this.memory = memory;
  }

  private now(): number {
    return nowMs() - this.f[DYN_CREATED_AT_MS >> 1]!;
  }

  // --- devices: dma_io_tlb_pools, dma_io_tlb_lock, dma_uses_io_tlb ------------------------------

  /** The shared record of `dev` (registered by name under mem->lock on first use; cached on the device object of this thread). */
  deviceRecord(dev: DmaDevice): number {
    if (dev.ioTlbRecord >= 0) return dev.ioTlbRecord;
    const name = new TextEncoder().encode(dev.name).subarray(0, DEVREC_NAME_BYTES);
    const r = this.r;
    const u8 = new Uint8Array(this.shared.region);
    areaLock(r, DYN_LOCK_RECORD, 64, 100);
    let rec = -1;
    const used = r[DYN_DEVICES_USED]!;
    for (let d = 0; d < used && rec < 0; d++) {
      const b = DYN_DEVICES + d * DEVREC_INTS;
      if (r[b + DEVREC_NAME_LEN] !== name.length) continue;
      const at = (b + DEVREC_NAME) * 4;
      if (name.every((c, i) => u8[at + i] === c)) rec = d;
    }
    if (rec < 0) {
      assert(used < DYN_MAX_DEVICES, `at most ${DYN_MAX_DEVICES} devices use dynamic swiotlb`);
      rec = used;
      const b = DYN_DEVICES + rec * DEVREC_INTS;
      u8.set(name, (b + DEVREC_NAME) * 4);
      r[b + DEVREC_NAME_LEN] = name.length;
      Atomics.store(r, DYN_DEVICES_USED, used + 1);
    }
    areaUnlock(r, DYN_LOCK_RECORD);
    dev.ioTlbRecord = rec;
    return rec;
  }

  /** The name of device record `rec`. */
  deviceName(rec: number): string {
    const b = DYN_DEVICES + rec * DEVREC_INTS;
    return new TextDecoder().decode(new Uint8Array(this.shared.region, (b + DEVREC_NAME) * 4, this.r[b + DEVREC_NAME_LEN]!));
  }

  /** dev->dma_uses_io_tlb (pairs with setUsesIoTlb; never reset, so a thread caches a true). */
  usesIoTlb(dev: DmaDevice): boolean {
    if (dev.ioTlbUsed) return true;
    const used = Atomics.load(this.r, DYN_DEVICES + this.deviceRecord(dev) * DEVREC_INTS + DEVREC_USES_IO_TLB) === 1;
    if (used) dev.ioTlbUsed = true;
    return used;
  }

  /** WRITE_ONCE(dev->dma_uses_io_tlb, true) + smp_mb() after a successful search (an Atomics store is the barrier). */
  setUsesIoTlb(dev: DmaDevice): void {
    if (dev.ioTlbUsed) return;
    Atomics.store(this.r, DYN_DEVICES + this.deviceRecord(dev) * DEVREC_INTS + DEVREC_USES_IO_TLB, 1);
    dev.ioTlbUsed = true;
  }

  // --- the pool list ------------------------------------------------------------------------------

  /** Views of the dynamic pools published in table entries [from, to), oldest first. */
  poolViews(from: number, to: number): IoTlbPool[] {
    const h = this.header;
    const out: IoTlbPool[] = [];
    for (let p = from; p < to; p++) {
      const d = MEM_POOL_TABLE + p * POOL_DESC_INTS;
      const nslabs = h[d + POOL_NSLABS]!;
      const nareas = h[d + POOL_NAREAS]!;
      const meta = h[d + POOL_META_OFFSET]!;
      const pool = new IoTlbPool({
        start: (h[d + POOL_START_HI]! >>> 0) * 2 ** 32 + (h[d + POOL_START_LO]! >>> 0), nslabs, nareas, kind: POOL_KIND_DYNAMIC,
      }, {
        areas: this.shared.meta, areasOffset: meta, slots: this.shared.meta, slotsOffset: meta + areasBytes(nareas),
        data: this.shared.arena, dataOffset: h[d + POOL_DATA_PAGE]! * PAGE_SIZE,
      });
      // The RCU rule: a published pool is whole (its metadata was initialised before MEM_NPOOLS was stored).
      assert(pool.ready(), `swiotlb: pool ${p} is published but its metadata is not initialised (a thread saw it half-initialised)`);
      out.push(pool);
    }
    return out;
  }

  // --- search failed: schedule_work, then a transient pool ---------------------------------------

  /** schedule_work(&mem->dyn_alloc): queue the growth work unless it is already pending. */
  scheduleWork(): void {
    const r = this.r;
    if (Atomics.compareExchange(r, DYN_WORK_PENDING, 0, 1) !== 0) {
      Atomics.add(r, DYN_SCHEDULE_NOOP, 1);
      return;
    }
    this.f[DYN_TRIGGER_MS >> 1] = this.now();
    if (hook !== null) hook(P_GROWTH_SCHEDULED, 0);
    Atomics.add(r, DYN_SCHEDULED, 1);
    Atomics.add(r, DYN_WORK_SEQ, 1);
    Atomics.notify(r, DYN_WORK_SEQ);
  }

  /**
   * The transient pool of swiotlb_find_slots: swiotlb_alloc_pool(dev, nslabs, nslabs, 1, phys_limit,
   * GFP_NOWAIT) with nslabs = nr_slots(alloc_size), searched once in area 0 by `search`, then linked
   * on the device's list. In a CoCo VM the memory is the atomic pool's (swiotlb_alloc_tlb ->
   * dma_alloc_from_pool). Returns the pool and leaves the search's index in `lastIndex`, or null.
   */
  lastIndex = -1;
  transientPool(dev: DmaDevice, allocSize: number, search: (pool: IoTlbPool) => number): IoTlbPool | null {
    const r = this.r;
    const atomic = this.memory?.atomicPool ?? null;
    const nslabs = nrSlots(allocSize);
    assert(nslabs <= IO_TLB_SEGSIZE, 'a transient pool holds one mapping of at most one segment');
    if (atomic === null) return this.transientFailed(DYN_TRANSIENT_FAIL_NOMEM); // no CONFIG_DMA_COHERENT_POOL
    const rec = this.claimRecord();
    if (rec < 0) return this.transientFailed(DYN_TRANSIENT_FAIL_TABLE);
    const bytes = nslabs * IO_TLB_SIZE;
    // dma_coherent_ok: a block above the device's mask goes back and the next atomic pool is tried.
    const a = atomic.alloc(bytes, (phys, n) => phys + n - 1 <= dev.dmaMask);
    if (a === null) {
      this.releaseRecord(rec);
      // dma_alloc_from_pool's WARN; the transient pool's GFP_NOWAIT | __GFP_NOWARN silences "DMA pool exhausted".
      const warn = dmaPoolWarning(dev.name, atomic.hasPools(), true);
      if (warn !== null) this.events?.({ event: 'swiotlb_warn', msg: warn, device: dev.name, vcpu: this.cpu });
      return this.transientFailed(DYN_TRANSIENT_FAIL_NOMEM);
    }
    const t = this.trBase + rec * TR_INTS;
    const meta = rec * TR_META_BYTES;
    const pool = new IoTlbPool({ start: a.phys, nslabs, nareas: 1, kind: POOL_KIND_TRANSIENT }, {
      areas: this.shared.meta, areasOffset: meta, slots: this.shared.meta, slotsOffset: meta + AREA_BYTES,
      data: this.shared.arena, dataOffset: a.arenaOffset,
    }).init(); // the atomic pool already zeroed the block (dma_alloc_from_pool's memset)
    const index = search(pool);
    if (index < 0) {
      atomic.free(a.phys, bytes); // never published: no grace period needed
      this.releaseRecord(rec);
      return this.transientFailed(DYN_TRANSIENT_FAIL_SEARCH);
    }
    this.lastIndex = index;
    r[t + TR_NSLABS] = nslabs;
    r[t + TR_DEVICE] = this.deviceRecord(dev);
    r[t + TR_FREES] = 0;
    this.f[(t + TR_START) >> 1] = a.phys;
    this.f[(t + TR_ARENA_OFFSET) >> 1] = a.arenaOffset;
    this.trViews[rec] = { gen: r[t + TR_GEN]!, pool };
    // list_add_rcu(&pool->node, &dev->dma_io_tlb_pools) under dev->dma_io_tlb_lock: the record is
    // whole before the head is stored.
    const d = DYN_DEVICES + r[t + TR_DEVICE]! * DEVREC_INTS;
    areaLock(r, d + DEVREC_LOCK, 64, 100);
    r[t + TR_NEXT] = r[d + DEVREC_HEAD]!;
    Atomics.store(r, t + TR_STATE, TR_LIVE);
    Atomics.store(r, d + DEVREC_HEAD, rec + 1);
    if (hook !== null) hook(P_TRANSIENT_LINKED, rec);
    areaUnlock(r, d + DEVREC_LOCK);
    Atomics.add(this.header, MEM_TRANSIENT_NSLABS, nslabs); // inc_transient_used
    if (mutant === M_NSLABS_TRANSIENT) Atomics.add(this.header, MEM_NSLABS, nslabs); // stress-harness mutant only
    Atomics.add(r, DYN_TRANSIENT_CREATED, 1);
    const live = Atomics.add(r, DYN_TRANSIENT_LIVE, 1) + 1;
    raiseMax(r, DYN_TRANSIENT_PEAK, live);
    this.addTransientBytes(bytes);
    this.events?.({ event: 'transient_created', msg: '', device: dev.name, vcpu: this.cpu, start: a.phys, nslabs });
    return pool;
  }

  private transientFailed(cause: number): null {
    Atomics.add(this.r, DYN_TRANSIENT_FAILED, 1);
    Atomics.add(this.r, cause, 1);
    return null;
  }

  private claimRecord(): number {
    const r = this.r;
    for (let k = 0; k < this.maxTransient; k++) {
      const rec = (this.trHint + k) % this.maxTransient;
      const t = this.trBase + rec * TR_INTS;
      if (Atomics.load(r, t + TR_STATE) !== TR_FREE) continue;
      if (Atomics.compareExchange(r, t + TR_STATE, TR_FREE, TR_RECLAIMING) !== TR_FREE) continue;
      Atomics.add(r, t + TR_GEN, 1);
      this.trHint = rec + 1;
      raiseMax(r, DYN_TR_HWM, rec + 1);
      return rec;
    }
    return -1;
  }

  private releaseRecord(rec: number): void {
    Atomics.store(this.r, this.trBase + rec * TR_INTS + TR_STATE, TR_FREE);
  }

  /** Bytes of every swiotlb pool right now: mem->nslabs slots and the transient pools' atomic-pool bytes; raises the peak. */
  private addTransientBytes(delta: number): void {
    const f = this.f;
    const t = (f[DYN_TRANSIENT_BYTES_LIVE >> 1] = f[DYN_TRANSIENT_BYTES_LIVE >> 1]! + delta); // racy by design: a report figure
    this.notePoolBytes(t);
  }

  notePoolBytes(transientBytes = this.f[DYN_TRANSIENT_BYTES_LIVE >> 1]!): void {
    const bytes = this.committedSlabs() * IO_TLB_SIZE + Math.max(0, transientBytes);
    if (bytes > this.f[DYN_POOL_BYTES_PEAK >> 1]!) this.f[DYN_POOL_BYTES_PEAK >> 1] = bytes;
  }

  /**
   * The transient pools live right now (records in TR_LIVE, every device), read without any lock:
   * a checking aid (a record's range is only read while it says live; one that is deleted and reused
   * meanwhile names a pool that was also live).
   */
  liveTransientPools(): { rec: number; start: number; end: number }[] {
    const r = this.r;
    const out: { rec: number; start: number; end: number }[] = [];
    const hwm = Atomics.load(r, DYN_TR_HWM);
    for (let rec = 0; rec < hwm; rec++) {
      const t = this.trBase + rec * TR_INTS;
      if (Atomics.load(r, t + TR_STATE) !== TR_LIVE) continue;
      const start = this.f[(t + TR_START) >> 1]!;
      out.push({ rec, start, end: start + r[t + TR_NSLABS]! * IO_TLB_SIZE });
    }
    return out;
  }

  /** Slots of swiotlb memory committed besides transient pools: io_tlb_nslabs, or default + the CMA area (cma) when more. */
  committedSlabs(): number {
    const n = Atomics.load(this.header, MEM_NSLABS);
    const reserved = this.r[DYN_RESERVED_SLABS]!;
    return reserved === 0 ? n : Math.max(n, this.r[DYN_DEFAULT_NSLABS]! + reserved);
  }

  // --- swiotlb_find_pool's second half: the device's transient pools ------------------------------

  /** The transient pool of `dev` holding `addr`, walking dev->dma_io_tlb_pools under "RCU". */
  findTransient(dev: DmaDevice, addr: number): IoTlbPool | null {
    const r = this.r;
    const f = this.f;
    const d = DYN_DEVICES + this.deviceRecord(dev) * DEVREC_INTS;
    if (Atomics.load(r, d + DEVREC_HEAD) === 0) return null;
    const slot = this.enterReader();
    let e = Atomics.load(r, d + DEVREC_HEAD);
    let found = -1;
    while (e !== 0) {
      const t = this.trBase + (e - 1) * TR_INTS;
      const start = f[(t + TR_START) >> 1]!;
      if (addr >= start && addr < start + r[t + TR_NSLABS]! * IO_TLB_SIZE) {
        found = e - 1;
        break;
      }
      e = Atomics.load(r, t + TR_NEXT);
    }
    const pool = found < 0 ? null : this.transientView(found);
    Atomics.store(r, slot, 0); // rcu_read_unlock
    return pool;
  }

  /** rcu_read_lock: publish the epoch this walk started in. */
  private enterReader(): number {
    const r = this.r;
    if (this.readerSlot < 0) {
      const s = Atomics.add(r, DYN_READERS_USED, 1);
      assert(s < r[DYN_MAX_READERS]!, `at most ${r[DYN_MAX_READERS]} threads walk transient pool lists`);
      this.readerSlot = DYN_READERS + s * READER_INTS;
    }
    Atomics.store(r, this.readerSlot, Atomics.load(r, DYN_EPOCH));
    return this.readerSlot;
  }

  private transientView(rec: number): IoTlbPool {
    const r = this.r;
    const t = this.trBase + rec * TR_INTS;
    const gen = r[t + TR_GEN]!;
    const v = this.trViews[rec];
    if (v !== undefined && v.gen === gen) return v.pool;
    const meta = rec * TR_META_BYTES;
    const pool = new IoTlbPool({ start: this.f[(t + TR_START) >> 1]!, nslabs: r[t + TR_NSLABS]!, nareas: 1, kind: POOL_KIND_TRANSIENT }, {
      areas: this.shared.meta, areasOffset: meta, slots: this.shared.meta, slotsOffset: meta + AREA_BYTES,
      data: this.shared.arena, dataOffset: this.f[(t + TR_ARENA_OFFSET) >> 1]!,
    });
    // The RCU rule for transient pools: a record on a device's list is whole.
    assert(pool.ready(), `swiotlb: transient pool ${rec} is on its device's list but its metadata is not initialised`);
    this.trViews[rec] = { gen, pool };
    return pool;
  }

  /** The record of a transient pool view (its metadata block's place). */
  private recordOf(pool: IoTlbPool): number {
    return transientRecordOf(pool);
  }

  // --- swiotlb_del_transient ---------------------------------------------------------------------

  /**
   * swiotlb_del_transient, after the copy-back: dec_used(pool.nslabs), unlink from the device's list
   * (swiotlb_del_pool), dec_transient_used; the memory goes back to the atomic pool after the grace
   * period (reclaim).
   */
  delTransient(dev: DmaDevice, pool: IoTlbPool): void {
    const r = this.r;
    const rec = this.recordOf(pool);
    const t = this.trBase + rec * TR_INTS;
    assert(Atomics.load(r, t + TR_STATE) === TR_LIVE, 'a transient pool is deleted once, while live');
    if (hook !== null) hook(P_TRANSIENT_DEL, pool.nslabs);
    if (mutant !== M_TRANSIENT_USED_LEAK) Atomics.sub(this.header, MEM_TOTAL_USED, pool.nslabs); // dec_used (the mutant: stress harness only)
    const d = DYN_DEVICES + this.deviceRecord(dev) * DEVREC_INTS;
    areaLock(r, d + DEVREC_LOCK, 64, 100);
    let prev = d + DEVREC_HEAD;
    let e = r[prev]!;
    while (e !== 0 && e !== rec + 1) {
      prev = this.trBase + (e - 1) * TR_INTS + TR_NEXT;
      e = r[prev]!;
    }
    assert(e === rec + 1, 'a live transient pool is on its device\'s list');
    Atomics.store(r, prev, r[t + TR_NEXT]!); // list_del_rcu: the record keeps its own next
    areaUnlock(r, d + DEVREC_LOCK);
    r[t + TR_RETIRE_EPOCH] = Atomics.add(r, DYN_EPOCH, 1) + 1;
    Atomics.store(r, t + TR_STATE, TR_RETIRED);
    if (hook !== null) hook(P_TRANSIENT_RETIRED, rec);
    Atomics.add(r, DYN_TRANSIENT_RETIRED, 1);
    Atomics.sub(this.header, MEM_TRANSIENT_NSLABS, pool.nslabs); // dec_transient_used
    if (mutant === M_NSLABS_TRANSIENT) Atomics.sub(this.header, MEM_NSLABS, pool.nslabs); // stress-harness mutant only
    Atomics.sub(r, DYN_TRANSIENT_LIVE, 1);
    this.reclaim();
  }

  /**
   * Free the memory of every retired transient pool whose grace period has ended (the RCU callback).
   * Never waits. Returns how many it freed.
   */
  reclaim(): number {
    const r = this.r;
    const atomic = this.memory?.atomicPool ?? null;
    if (Atomics.load(r, DYN_TRANSIENT_RETIRED) === 0 || atomic === null) return 0;
    const hwm = Atomics.load(r, DYN_TR_HWM);
    const readers = Math.min(Atomics.load(r, DYN_READERS_USED), r[DYN_MAX_READERS]!);
    let freed = 0;
    let oldest = Infinity;
    for (let s = 0; s < readers; s++) {
      const e = Atomics.load(r, DYN_READERS + s * READER_INTS);
      if (e !== 0 && e < oldest) oldest = e;
    }
    for (let rec = 0; rec < hwm; rec++) {
      const t = this.trBase + rec * TR_INTS;
      if (Atomics.load(r, t + TR_STATE) !== TR_RETIRED) continue;
      // Grace: every reader slot was 0 or at least the retire epoch (the invariant at the top).
      if (oldest < r[t + TR_RETIRE_EPOCH]!) continue;
      if (mutant === M_TRANSIENT_DOUBLE_FREE && hook !== null) { // stress-harness mutant only: a load, then a store, for the claim
        if (Atomics.load(r, t + TR_STATE) !== TR_RETIRED) continue;
        hook(P_TRANSIENT_RECLAIM, rec);
        Atomics.store(r, t + TR_STATE, TR_RECLAIMING);
      } else {
        if (hook !== null) hook(P_TRANSIENT_RECLAIM, rec);
        if (Atomics.compareExchange(r, t + TR_STATE, TR_RETIRED, TR_RECLAIMING) !== TR_RETIRED) continue;
      }
      if (hook !== null) hook(P_TRANSIENT_FREE, rec);
      const bytes = r[t + TR_NSLABS]! * IO_TLB_SIZE;
      const frees = Atomics.add(r, t + TR_FREES, 1) + 1;
      assert(frees === 1, 'a transient pool\'s memory is freed exactly once');
      atomic.free(this.f[(t + TR_START) >> 1]!, bytes);
      this.addTransientBytes(-bytes);
      Atomics.sub(r, DYN_TRANSIENT_RETIRED, 1);
      Atomics.add(r, DYN_TRANSIENT_FREED, 1);
      Atomics.store(r, t + TR_STATE, TR_FREE);
      freed++;
      this.events?.({ event: 'transient_freed', msg: '', device: this.deviceName(r[t + TR_DEVICE]!), vcpu: this.cpu, start: this.f[(t + TR_START) >> 1]!, nslabs: r[t + TR_NSLABS]! });
    }
    return freed;
  }

  // --- the growth work: swiotlb_dyn_alloc (the worker thread) ------------------------------------

  /** Claim the pending work item (the workqueue clears PENDING as the work starts). */
  takeWork(): boolean {
    return Atomics.compareExchange(this.r, DYN_WORK_PENDING, 1, 0) === 1;
  }

  stopRequested(): boolean {
    return Atomics.load(this.r, DYN_STOP) !== 0;
  }

  /** Teardown: the worker exits at its next wake-up. */
  stop(): void {
    Atomics.store(this.r, DYN_STOP, 1);
    Atomics.add(this.r, DYN_WORK_SEQ, 1);
    Atomics.notify(this.r, DYN_WORK_SEQ);
  }

  /** Park the worker until schedule_work rings or `timeoutMs` passes. */
  parkWorker(timeoutMs: number): void {
    const seq = Atomics.load(this.r, DYN_WORK_SEQ);
    if (Atomics.load(this.r, DYN_WORK_PENDING) !== 0 || this.stopRequested()) return;
    Atomics.wait(this.r, DYN_WORK_SEQ, seq, timeoutMs);
  }

  /**
   * swiotlb_dyn_alloc: swiotlb_alloc_pool(NULL, IO_TLB_MIN_SLABS, default_nslabs, default_nareas,
   * mem->phys_limit, GFP_KERNEL), then add_mem_pool, counted as one run of the growth work with its
   * trigger-to-pool time. Returns the new pool, or why not after "Failed to allocate new pool"
   * (the caller prints it, ratelimited).
   */
  dynAlloc(): GrowResult {
    const r = this.r;
    Atomics.add(r, DYN_GROW_RUNS, 1);
    const res = this.addPool();
    if (!res.ok) {
      if (res.limited === undefined) Atomics.add(r, DYN_GROW_FAILED, 1); // a refusal of the limit is counted there
      return res;
    }
    const tookMs = Math.max(0, this.now() - this.f[DYN_TRIGGER_MS >> 1]!);
    this.f[DYN_TRIGGER_TO_POOL_MS_SUM >> 1] = this.f[DYN_TRIGGER_TO_POOL_MS_SUM >> 1]! + tookMs;
    if (tookMs > this.f[DYN_TRIGGER_TO_POOL_MS_MAX >> 1]!) this.f[DYN_TRIGGER_TO_POOL_MS_MAX >> 1] = tookMs;
    return { ...res, tookMs };
  }

  /**
   * swiotlb_alloc_pool + add_mem_pool: a pool of default_nslabs slots (capped at 4 MiB), halving down
   * to IO_TLB_MIN_SLABS while no block of that order is free below phys_limit, published at the head
   * of the pool list. The growth worker calls it (dynAlloc), and so does the hybrid policy's
   * synchronous growth from a mapping thread (hybrid.ts): several threads may add pools at once. Each
   * takes its own pages and metadata; the table entry is taken under mem->lock at publication, where
   * a table that filled meanwhile gives the pages back. tookMs: how long this call took.
   */
  addPool(): GrowResult {
    const r = this.r;
    const mem = this.memory;
    assert(mem !== null && mem.phys !== undefined, 'a thread that grows the pool has the page allocator');
    const t0 = nowMs();
    const physLimit = r[DYN_PHYS_LIMIT_PAGES]! * PAGE_SIZE;
    let nslabs = r[DYN_DEFAULT_NSLABS]!;
    let nareas = this.header[MEM_DEFAULT_NAREAS]!;
    if (nslabs > DYN_POOL_MAX_SLABS) {
      nslabs = DYN_POOL_MAX_SLABS;
      nareas = limitNareas(nareas, nslabs);
    }
    // A full table is known before any page is taken (it leaked the pages and counted a successful
    // attempt when checked after them); publication checks again, as other threads may add pools.
    if (Atomics.load(this.header, MEM_NPOOLS) >= this.header[MEM_MAX_POOLS]!) {
      return { ok: false, reason: `the pool table is full (${this.header[MEM_MAX_POOLS]} pools)` };
    }
    let reason = '';
    let start = -1;
    let arenaOffset = -1;
    let limited = false;
    for (;;) {
      // [proposal] --grow-limit: a size that would pass it is halved like one no free block serves.
      if (reserveGrowth(r, nslabs)) {
        this.countAttempt(nslabs, DYN_ATTEMPTS);
        const got = this.allocTlb(nslabs, physLimit);
        if (got !== null) {
          start = got.start;
          arenaOffset = got.arenaOffset;
          break;
        }
        releaseGrowth(r, nslabs);
        reason = `no free block of order ${orderOf(nslabs * IO_TLB_SIZE)} below ${physLimit / 2 ** 30} GiB`;
        limited = false;
      } else {
        limited = true;
        reason = `[proposal] --grow-limit ${formatBytes(growLimitSlabs(r) * IO_TLB_SIZE)}: a ${formatBytes(nslabs * IO_TLB_SIZE)} pool would take the default and dynamic pools to ${formatBytes((Atomics.load(r, DYN_GROW_COMMITTED_SLABS) + nslabs) * IO_TLB_SIZE)}`;
      }
      if (nslabs <= IO_TLB_MIN_SLABS) {
        if (!limited) return { ok: false, reason };
        growthRefused(r);
        return { ok: false, reason, limited: { limit_bytes: growLimitSlabs(r) * IO_TLB_SIZE, committed_bytes: Atomics.load(r, DYN_GROW_COMMITTED_SLABS) * IO_TLB_SIZE } };
      }
      nslabs = alignUp(nslabs >> 1, IO_TLB_SEGSIZE);
      nareas = limitNareas(nareas, nslabs);
    }
    this.countAttempt(nslabs, DYN_ATTEMPTS_OK);
    const metaBytes = dynPoolMetaBytes(nslabs, nareas);
    const meta = Atomics.add(r, DYN_META_NEXT, metaBytes);
    if (meta + metaBytes > r[DYN_META_CAP]!) {
      Atomics.sub(r, DYN_META_NEXT, metaBytes);
      releaseGrowth(r, nslabs);
      mem.phys!.freePages(start, orderOf(nslabs * IO_TLB_SIZE)); // the arena's bytes stay carved: it never frees
      return { ok: false, reason: 'the metadata arena is full' };
    }
    const pool = new IoTlbPool({ start, nslabs, nareas, kind: POOL_KIND_DYNAMIC }, {
      areas: this.shared.meta, areasOffset: meta, slots: this.shared.meta, slotsOffset: meta + areasBytes(nareas),
      data: this.shared.arena, dataOffset: arenaOffset,
    });
    const publishFirst = hook !== null && mutant === M_PUBLISH_BEFORE_INIT; // stress-harness mutant only (mutants.ts)
    if (!publishFirst) pool.init();
    // add_mem_pool: under mem->lock, list_add_rcu at the head and mem->nslabs += nslabs.
    const h = this.header;
    areaLock(r, DYN_LOCK_RECORD, 64, 100);
    const p = h[MEM_NPOOLS]!;
    if (p >= h[MEM_MAX_POOLS]!) {
      areaUnlock(r, DYN_LOCK_RECORD);
      releaseGrowth(r, nslabs);
      mem.phys!.freePages(start, orderOf(nslabs * IO_TLB_SIZE)); // the metadata and arena bytes stay carved (bump arenas)
      return { ok: false, reason: `the pool table is full (${h[MEM_MAX_POOLS]} pools)` };
    }
    const d = MEM_POOL_TABLE + p * POOL_DESC_INTS;
    h[d + POOL_START_LO] = start % 2 ** 32;
    h[d + POOL_START_HI] = Math.floor(start / 2 ** 32);
    h[d + POOL_NSLABS] = nslabs;
    h[d + POOL_NAREAS] = nareas;
    h[d + POOL_KIND] = POOL_KIND_DYNAMIC;
    h[d + POOL_META_OFFSET] = meta;
    h[d + POOL_DATA_PAGE] = arenaOffset / PAGE_SIZE;
    h[d + POOL_ADDED_MS] = Math.round(this.now());
    Atomics.add(h, MEM_NSLABS, nslabs);
    Atomics.store(h, MEM_NPOOLS, p + 1); // published: every field above is visible to whoever sees p + 1
    areaUnlock(r, DYN_LOCK_RECORD);
    if (hook !== null) hook(P_POOL_PUBLISHED, p);
    if (publishFirst) pool.init();
    Atomics.add(r, DYN_POOLS_ADDED, 1);
    this.notePoolBytes();
    return { ok: true, pool: p, nslabs, nareas, start, tookMs: nowMs() - t0 };
  }

  /** swiotlb_alloc_tlb(NULL, bytes, phys_limit, GFP_KERNEL): alloc_pages below phys_limit, then set_memory_decrypted. */
  private allocTlb(nslabs: number, physLimit: number): { start: number; arenaOffset: number } | null {
    const mem = this.memory!;
    const bytes = nslabs * IO_TLB_SIZE;
    // Stress-harness mutant only: get_order one too small, so the pool's upper half is memory the buddy allocator hands out again.
    const order = mutant === M_POOL_HALF_PAGES && hook !== null ? orderOf(bytes) - 1 : orderOf(bytes);
    const start = mem.phys!.allocPages(order, physLimit);
    if (start < 0) return null;
    const arenaOffset = mem.arena.carve(bytes);
    if (arenaOffset < 0) {
      mem.phys!.freePages(start, order);
      return null;
    }
    assert(arenaOffset % PAGE_SIZE === 0, 'the arena carves whole pages');
    mem.setMemoryDecrypted?.(start, bytes);
    return { start, arenaOffset };
  }

  private countAttempt(nslabs: number, base: number): void {
    const k = GROW_SIZE_SLOTS.indexOf(nslabs as (typeof GROW_SIZE_SLOTS)[number]);
    if (k >= 0) Atomics.add(this.r, base + k, 1);
  }

  // --- the report ---------------------------------------------------------------------------------

  stats(): DynamicStats {
    const r = this.r;
    const f = this.f;
    const added = r[DYN_POOLS_ADDED]!;
    return {
      grow_runs: r[DYN_GROW_RUNS]!, grow_failed: r[DYN_GROW_FAILED]!, pools_added: added,
      scheduled: r[DYN_SCHEDULED]!, schedule_noop: r[DYN_SCHEDULE_NOOP]!,
      attempts: GROW_SIZE_SLOTS.map((slots, k) => {
        const attempts = r[DYN_ATTEMPTS + k]!;
        const ok = r[DYN_ATTEMPTS_OK + k]!;
        return { bytes: slots * IO_TLB_SIZE, attempts, ok, failed: attempts - ok };
      }),
      trigger_to_pool_ms_avg: added === 0 ? 0 : f[DYN_TRIGGER_TO_POOL_MS_SUM >> 1]! / added,
      trigger_to_pool_ms_max: f[DYN_TRIGGER_TO_POOL_MS_MAX >> 1]!,
      transient_created: r[DYN_TRANSIENT_CREATED]!, transient_failed: r[DYN_TRANSIENT_FAILED]!,
      transient_fail_nomem: r[DYN_TRANSIENT_FAIL_NOMEM]!, transient_fail_table: r[DYN_TRANSIENT_FAIL_TABLE]!,
      transient_fail_search: r[DYN_TRANSIENT_FAIL_SEARCH]!, transient_live: r[DYN_TRANSIENT_LIVE]!,
      transient_peak: r[DYN_TRANSIENT_PEAK]!, transient_freed: r[DYN_TRANSIENT_FREED]!, transient_retired: r[DYN_TRANSIENT_RETIRED]!,
      pool_bytes_peak: Math.max(f[DYN_POOL_BYTES_PEAK >> 1]!, this.committedSlabs() * IO_TLB_SIZE),
      grow_limit: growLimitStats(r, IO_TLB_SIZE),
      limits: this.limits(),
    };
  }

  limits(): DynamicLimits {
    const r = this.r;
    return {
      max_pools: this.header[MEM_MAX_POOLS]!, max_transient: this.maxTransient, max_readers: r[DYN_MAX_READERS]!,
      max_devices: DYN_MAX_DEVICES, meta_arena_bytes: r[DYN_META_CAP]!,
    };
  }

  /** Table entries of pools added at run time with when each was added (ms since boot). */
  addedPools(): { pool: number; nslabs: number; nareas: number; start: number; at_ms: number }[] {
    const h = this.header;
    const n = Atomics.load(h, MEM_NPOOLS);
    const out = [];
    for (let p = 0; p < n; p++) {
      const d = MEM_POOL_TABLE + p * POOL_DESC_INTS;
      if (h[d + POOL_KIND] !== POOL_KIND_DYNAMIC) continue;
      out.push({
        pool: p, nslabs: h[d + POOL_NSLABS]!, nareas: h[d + POOL_NAREAS]!,
        start: (h[d + POOL_START_HI]! >>> 0) * 2 ** 32 + (h[d + POOL_START_LO]! >>> 0), at_ms: h[d + POOL_ADDED_MS]!,
      });
    }
    return out;
  }
}

/** The record of a transient pool view: its metadata block's place in the metadata arena. */
export function transientRecordOf(pool: IoTlbPool): number {
  const off = pool.areas.byteOffset;
  assert(pool.kind === POOL_KIND_TRANSIENT && off % TR_META_BYTES === 0, 'a transient pool sits in its record\'s metadata block');
  return off / TR_META_BYTES;
}

/** get_order(bytes): the buddy order of a block of at least `bytes`. */
export function orderOf(bytes: number): number {
  return Math.max(0, Math.ceil(Math.log2(Math.ceil(bytes / PAGE_SIZE))));
}

function raiseMax(a: Int32Array, i: number, v: number): void {
  let old = Atomics.load(a, i);
  while (v > old) {
    const seen = Atomics.compareExchange(a, i, old, v);
    if (seen === old) return;
    old = seen;
  }
}

/** What a device thread is given to reach the bounce buffers: the default pool, and with dynamic swiotlb the pool table and transient records (never slot metadata). */
export interface BounceWindowShared {
  data: SharedArrayBuffer;
  start: number;
  header?: SharedArrayBuffer;
  dyn?: DynamicShared;
}

/**
 * The host's view of the memory the guest shared for DMA: the default pool, the dynamic pools
 * (pool table) and the live transient pools (their records), each an address range backed by bytes
 * every thread holds. resolve() finds the bytes of [addr, addr + len), or -1 when the range is not
 * wholly inside one shared pool (a DMA error). A device only touches a buffer between map and unmap,
 * so a transient pool cannot go away under it.
 */
export class BounceWindow {
  /** The bytes the last resolve() answered in, as the bounce copy names them (memory/copy.ts). */
  region: CopyRegion;
  private readonly def: CopyRegion;
  private readonly defStart: number;
  private readonly header: Int32Array | null;
  private readonly arena: CopyRegion | null;
  private readonly r: Int32Array | null;
  private readonly f: Float64Array | null;
  private readonly trBase: number;

  constructor(w: BounceWindowShared) {
    this.def = new CopyRegion(new Uint8Array(w.data));
    this.region = this.def;
    this.defStart = w.start;
    this.header = w.header === undefined ? null : new Int32Array(w.header);
    this.arena = w.dyn === undefined ? null : new CopyRegion(new Uint8Array(w.dyn.arena));
    this.r = w.dyn === undefined ? null : new Int32Array(w.dyn.region);
    this.f = w.dyn === undefined ? null : new Float64Array(w.dyn.region);
    this.trBase = this.r === null ? 0 : dynTransientTable(this.r[DYN_MAX_READERS]!);
  }

  resolve(addr: number, len: number): number {
    if (addr >= this.defStart && addr + len <= this.defStart + this.def.length) {
      this.region = this.def;
      return addr - this.defStart;
    }
    const h = this.header;
    const r = this.r;
    if (h === null || r === null) return -1;
    this.region = this.arena!;
    const n = Atomics.load(h, MEM_NPOOLS);
    for (let p = n - 1; p >= 1; p--) {
      const d = MEM_POOL_TABLE + p * POOL_DESC_INTS;
      const start = (h[d + POOL_START_HI]! >>> 0) * 2 ** 32 + (h[d + POOL_START_LO]! >>> 0);
      if (addr >= start && addr + len <= start + h[d + POOL_NSLABS]! * IO_TLB_SIZE) return h[d + POOL_DATA_PAGE]! * PAGE_SIZE + (addr - start);
    }
    const hwm = Atomics.load(r, DYN_TR_HWM);
    for (let rec = 0; rec < hwm; rec++) {
      const t = this.trBase + rec * TR_INTS;
      if (Atomics.load(r, t + TR_STATE) !== TR_LIVE) continue;
      const start = this.f![(t + TR_START) >> 1]!;
      if (addr >= start && addr + len <= start + r[t + TR_NSLABS]! * IO_TLB_SIZE) return this.f![(t + TR_ARENA_OFFSET) >> 1]! + (addr - start);
    }
    return -1;
  }
}
