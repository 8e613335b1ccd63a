// Every SharedArrayBuffer region of the swiotlb and every offset in it, named in one place.
//
// An allocator (io_tlb_mem) is one header SAB plus, for each pool (io_tlb_pool), three SABs:
// areas, slot metadata and bounce data. Any thread rebuilds its handles from these SABs alone
// (see IoTlbMem.attach). All sizes are fixed when the pool is created; nothing grows later except
// the pool list, which has a fixed number of descriptor entries in the header.
import { assert } from '../errors.js';
import { HISTOGRAM_BYTES } from '../report/histogram.js';
import { IO_TLB_SEGSIZE, IO_TLB_SIZE } from './constants.js';

export const CACHE_LINE_BYTES = 64;
const I32 = 4;

// --- allocator header (Int32Array over MEM_HEADER_BYTES) ------------------------------------------
// Read-mostly configuration on the first cache line, the hot atomics (total_used, used_hiwater) on
// their own line, the throttle state on another, then the pool table.
export const MEM_MAGIC = 0;
export const MEM_NSLABS = 1; // mem->nslabs: slots of all non-transient pools
export const MEM_DEFAULT_NAREAS = 2; // default_nareas: the k-loop bound of the pool search
export const MEM_FORCE_BOUNCE = 3; // io_tlb_mem.force_bounce
export const MEM_CAN_GROW = 4; // io_tlb_mem.can_grow (dynamic swiotlb)
export const MEM_NPOOLS = 5; // pools published in the pool table
export const MEM_LOCK_SPINS = 6; // spins on a contended area lock before parking
export const MEM_PARK_TIMEOUT_MS = 7; // longest single park on a lock word
export const MEM_ENCRYPTION_WARNED = 8; // "Memory encryption is active ..." printed once per boot
export const MEM_ALIGN_WARNED = 9; // "Alloc alignment may prevent ..." WARN once
export const MEM_OVERFLOW_WARNED = 10; // "Buffer overflow detected ..." WARN once
export const MEM_ADDR_OVERFLOW_WARNED = 11; // "swiotlb addr ... overflow" WARN once
export const MEM_MEM_ENCRYPT = 12; // cc_platform_has(CC_ATTR_MEM_ENCRYPT): the first bounce says so
// 13: MEM_MAX_POOLS (with the pool table, below)
export const MEM_DYNAMIC = 14; // CONFIG_SWIOTLB_DYNAMIC: the allocator has a dynamic region (DYN_*)

export const MEM_TOTAL_USED = 16; // total_used: atomic, outside the area locks
export const MEM_USED_HIWATER = 17; // used_hiwater: raised by compare-and-exchange, reset only to 0
export const MEM_TRANSIENT_NSLABS = 18; // transient_nslabs
export const MEM_MAP_FAILURES = 19; // failed maps, all causes (cheap cross-thread total)

// [RFC] Room 32..47 was reserved for the throttle state. It now lives in a region of its own (THR_*
// below), because the FIFO wait queue does not fit a header line; the room stays free.
export const MEM_THROTTLE_RESERVED_END = 48;

// Pool table: one descriptor per pool, in creation order (the search walks it newest first). Its
// capacity, MEM_MAX_POOLS, is fixed when the allocator is created and sized from the configuration
// (dynamic.ts maxPoolsFor: one entry per 1 MiB of growth headroom, plus the default pool), so the
// header's length is memHeaderBytes(maxPools). A descriptor is written whole, then published by an
// Atomics.store of MEM_NPOOLS (the RCU rule: a reader sees a pool whole or not at all).
export const MEM_MAX_POOLS = 13; // capacity of the pool table
export const MEM_POOL_TABLE = 48;
/** Pool table entries of an allocator that cannot grow: the default pool (or a restricted pool). */
export const STATIC_MAX_POOLS = 1;
export const POOL_DESC_INTS = 8;
export const POOL_START_LO = 0; // pool.start, low 32 bits
export const POOL_START_HI = 1; // pool.start, high bits
export const POOL_NSLABS = 2;
export const POOL_NAREAS = 3;
export const POOL_KIND = 4; // PoolKind
export const POOL_META_OFFSET = 5; // dynamic pools: byte offset of its areas, then slots, in the metadata arena (DYN_META_*)
export const POOL_DATA_PAGE = 6; // dynamic pools: page number of its bounce data in the decrypted arena
export const POOL_ADDED_MS = 7; // dynamic pools: when it was added, ms since the allocator was created
export function memHeaderInts(maxPools: number): number {
  return MEM_POOL_TABLE + maxPools * POOL_DESC_INTS;
}
export function memHeaderBytes(maxPools: number): number {
  return memHeaderInts(maxPools) * I32;
}
export const MEM_MAGIC_VALUE = 0x534f4954; // "SOIT"

export const POOL_KIND_DEFAULT = 0;
export const POOL_KIND_DYNAMIC = 1;
export const POOL_KIND_TRANSIENT = 2;
export const POOL_KIND_RESTRICTED = 3;
export type PoolKind = 0 | 1 | 2 | 3;
export const POOL_KIND_NAMES = ['default', 'dynamic', 'transient', 'restricted'] as const;

// --- areas (Int32Array; one cache line per io_tlb_area so that areas do not false-share) --------
export const AREA_INTS = CACHE_LINE_BYTES / I32;
export const AREA_LOCK = 0; // 0 free, 1 held, 2 held with parked waiters
export const AREA_USED = 1; // area->used, under the lock
export const AREA_INDEX = 2; // area->index, the next-fit cursor, under the lock
export const AREA_ACQUIRED = 3; // lock acquisitions, counted under the lock
export const AREA_CONTENDED = 4; // acquisitions that found the lock held
export const AREA_PARKED = 5; // Atomics.wait parks on the lock word
export const AREA_PARK_TIMEOUTS = 6; // parks that timed out (a lost wakeup would show here)
// The area's high-water mark of area->used: raised under the lock, in the same critical section
// that raises area->used, so it is exact (never below any value area->used held) and costs one
// compare. Not in the kernel (which keeps only the pool-wide used_hiwater): it shows which area
// fills first, the one whose failures the pool-wide figures hide. Never reset during a run.
export const AREA_USED_HIWATER = 7;
// Area 0 only: 1 once the pool's metadata (areas and slots) is whole. Written last by
// IoTlbPool.init (swiotlb_init_io_tlb_pool), checked by every thread that takes in a published pool
// (the RCU rule: a reader never sees a pool half-initialised). Not in the kernel, whose
// rcu_assign_pointer makes the rule true by construction; here a cheap check that it holds.
export const AREA_POOL_READY = 8;
export const AREA_BYTES = AREA_INTS * I32;

export function areasBytes(nareas: number): number {
  return nareas * AREA_BYTES;
}

// --- slot metadata, struct of arrays in one SAB: 16 bytes per slot ------------------------------
//   list       u16   free slots from here to the segment end; 0 = in use
//   pad_slots  u8    padding slots in front (meaningful in the first data slot)
//   throttled  u8    [RFC] mapping holds the throttle semaphore (first data slot)
//   alloc_size u32   bytes from this slot's mirror point to the allocation end (wraps like size_t)
//   orig_addr  f64   original physical address mirrored here, or INVALID_PHYS_ADDR
// A f64 holds every physical address below 2^53 exactly; JS has no cheap u64.
export const SLOT_BYTES = 16;
export function slotListOffset(_nslabs: number): number {
  return 0;
}
export function slotPadSlotsOffset(nslabs: number): number {
  return 2 * nslabs;
}
export function slotThrottledOffset(nslabs: number): number {
  return 3 * nslabs;
}
export function slotAllocSizeOffset(nslabs: number): number {
  return 4 * nslabs;
}
export function slotOrigAddrOffset(nslabs: number): number {
  return 8 * nslabs;
}
export function slotsBytes(nslabs: number): number {
  return SLOT_BYTES * nslabs;
}

// --- bounce data: nslabs x 2 KiB ---------------------------------------------------------------
export function dataBytes(nslabs: number): number {
  return nslabs * IO_TLB_SIZE;
}

// --- per-thread swiotlb statistics (Float64Array; one writer each, summed by the reader) ---------
export const STAT_MAP_ATTEMPTS = 0; // swiotlb_map calls (the swiotlb_bounced tracepoint count)
export const STAT_MAP_OK = 1;
export const STAT_MAP_FAIL_FULL = 2; // no slots found
export const STAT_MAP_FAIL_OVERSIZE = 3; // larger than a segment
export const STAT_MAP_FAIL_NO_POOL = 4; // swiotlb absent or empty
export const STAT_MAP_FAIL_NOT_CAPABLE = 5; // bounce address beyond the device's DMA mask
export const STAT_UNMAPS = 6;
export const STAT_UNMAP_PASSTHROUGH = 7; // unmap of an address that is not a bounce buffer
export const STAT_DOUBLE_UNMAPS = 8;
export const STAT_BYTES_TO_DEVICE = 9; // original -> bounce
export const STAT_BYTES_FROM_DEVICE = 10; // bounce -> original
export const STAT_BOUNCE_OVERFLOWS = 11; // truncated syncs
export const STAT_SYNC_FOR_DEVICE = 12;
export const STAT_SYNC_FOR_CPU = 13;
export const STAT_SLOTS_MAPPED = 14;
export const STAT_PAST_END_READS = 15; // §19: release seed read past a partial pool
export const STAT_MAP_FAIL_THROTTLE_ABORTED = 16; // [RFC] a throttle_sem wait aborted (stall watchdog)
export const STATS_FIELDS = 17;
/** Float64s from one thread's block to the next in a shared statistics buffer: whole cache lines, so no false sharing. */
export const STATS_STRIDE = Math.ceil((STATS_FIELDS * 8) / CACHE_LINE_BYTES) * (CACHE_LINE_BYTES / 8);
export const STAT_NAMES = [
  'map_attempts', 'map_ok', 'map_fail_full', 'map_fail_oversize', 'map_fail_no_pool', 'map_fail_not_capable',
  'unmaps', 'unmap_passthrough', 'double_unmaps', 'bytes_to_device', 'bytes_from_device', 'bounce_overflows',
  'sync_for_device', 'sync_for_cpu', 'slots_mapped', 'past_end_reads', 'map_fail_throttle_aborted',
] as const;

// --- [RFC] swiotlb throttling: one region per allocator (Int32Array and Float64Array views) ------
// Indices are Int32 indices. A field marked "f64" is 8 bytes at an even Int32 index and is read
// through the Float64Array view at index >> 1. Lines: configuration and tunables; the racy counters;
// the internal lock of throttle_sem; the semaphore and its holder; four slop counters on lines of
// their own; the queue ring; the waiter records; the device-name table.
export const THR_MAGIC = 0;
export const THR_ENABLED = 1; // CONFIG_SWIOTLB_THROTTLE for this allocator, fixed at boot
export const THR_HIGH_THROTTLE = 2; // high_throttle, slots (tunable, read racily by every decision)
export const THR_LOW_THROTTLE = 3; // low_throttle, slots (tunable)
export const THR_WAIT_SLICE_MS = 4; // longest single park of a waiter before it re-checks THR_ABORT
export const THR_ABORT = 5; // set by a watchdog or the VM to tear the run down: waiters give up
export const THR_MAGIC_VALUE = 0x54485254; // "THRT"

export const THR_HIGH_THROTTLE_COUNT = 16; // high_throttle_count: plain load + store, as in the RFC
export const THR_LOW_THROTTLE_COUNT = 17; // low_throttle_count: plain load + store

// throttle_sem->lock: an io_tlb_area-shaped record so that areaLock/areaUnlock can take it.
export const THR_SEM_LOCK_RECORD = 32;

// throttle_sem and its holder, all under THR_SEM_LOCK_RECORD.
export const THR_SEM_COUNT = 48; // sem->count: 1 free, 0 held (invariant 14: never above 1)
export const THR_QUEUE_HEAD = 49; // ring index of the first waiter
export const THR_QUEUE_LEN = 50; // waiters in the ring
export const THR_QUEUE_LEN_MAX = 51; // longest queue seen
export const THR_HOLDER_KIND = 52; // THROTTLE_HOLDER_*
export const THR_HOLDER_VCPU = 53; // cpu of the request that took the semaphore
export const THR_HOLDER_DEVICE = 54; // device-name id of that request
export const THR_HOLDER_SIZE_BYTES = 55; // its mapping size
export const THR_DEVICE_NAMES_USED = 56; // entries of the device-name table in use
export const THR_DEADLOCKS = 57; // self-deadlocks detected (§15.9)
export const THR_ABORTED_WAITS = 58; // down()s that gave up because THR_ABORT was set
export const THR_RECORD_HINT = 59; // where the next free-record scan starts
export const THR_HOLDER_SINCE_MS = 60; // f64: when the holder took the semaphore (nowMs)

// Slop measurement: slots allocated, counted by class, "begun" just before the total_used add and
// "done" just after it (mem.ts incUsedAndHiwater explains why both are needed for a sound bound).
export const THR_ALLOC_BEGUN_MAY_BLOCK = 64;
export const THR_ALLOC_DONE_MAY_BLOCK = 80;
export const THR_ALLOC_BEGUN_NON_BLOCK = 96;
export const THR_ALLOC_DONE_NON_BLOCK = 112;
/** Distance from a class's "begun" counter to its "done" counter. */
export const THR_ALLOC_DONE_DELTA = THR_ALLOC_DONE_MAY_BLOCK - THR_ALLOC_BEGUN_MAY_BLOCK;

/** Waiters the queue holds at once. A thread owns at most one record, so this bounds threads. */
export const THROTTLE_WAITERS_MAX = 512;
// The FIFO: a ring of record numbers, THROTTLE_WAITERS_MAX entries from THR_QUEUE_RING.
export const THR_QUEUE_RING = 128;
// Waiter records: one cache line each; a waiter parks on its own WAITER_STATE word.
export const THR_WAITERS = THR_QUEUE_RING + THROTTLE_WAITERS_MAX;
export const WAITER_INTS = CACHE_LINE_BYTES / I32;
export const WAITER_STATE = 0; // WAITER_FREE / WAITER_QUEUED / WAITER_GRANTED
export const WAITER_VCPU = 1;
export const WAITER_DEVICE = 2; // device-name id
export const WAITER_SIZE_BYTES = 3;
export const WAITER_ENQUEUED_MS = 4; // f64: when it joined the queue (nowMs)
export const WAITER_FREE = 0;
export const WAITER_QUEUED = 1;
export const WAITER_GRANTED = 2;

export const THROTTLE_HOLDER_NONE = 0;
export const THROTTLE_HOLDER_REQUEST = 1; // between a successful down() and the end of its slot search
export const THROTTLE_HOLDER_MAPPING = 2; // a live mapping flagged throttled

// Device names, so that the watchdog can say who holds and who waits: a length byte and UTF-8.
export const THR_DEVICE_NAMES = THR_WAITERS + THROTTLE_WAITERS_MAX * WAITER_INTS;
export const THROTTLE_DEVICE_NAMES_MAX = 64;
export const THROTTLE_DEVICE_NAME_BYTES = 32;
export const THROTTLE_INTS = THR_DEVICE_NAMES + (THROTTLE_DEVICE_NAMES_MAX * THROTTLE_DEVICE_NAME_BYTES) / I32;
export const THROTTLE_BYTES = THROTTLE_INTS * I32;

// --- [RFC] per-thread throttle statistics: fields (Float64), then two LatencyHistograms ----------
// One writer each (the thread that maps); summed by throttle.ts sumThrottleStats.
export const TSTAT_HIGH_THROTTLED = 0; // this thread's requests throttled because used > high_throttle
export const TSTAT_LOW_THROTTLED = 1; // ... because used > low_throttle with the semaphore held
export const TSTAT_WAITS = 2; // throttled requests that parked
export const TSTAT_WAIT_NS_TOTAL = 3;
export const TSTAT_WAIT_NS_MAX = 4;
export const TSTAT_ABORTED = 5; // throttled requests that gave up on THR_ABORT (map failed)
export const TSTAT_DEADLOCKS = 6; // self-deadlocks this thread walked into
export const TSTAT_FAILED_RELEASES = 7; // throttled requests whose slot search failed: up() at once
export const TSTAT_UNMAP_RELEASES = 8; // up() from the unmap of a throttled mapping
export const TSTAT_ADMITTED = 9; // MAY_BLOCK requests admitted without throttling and allocated
export const TSTAT_OVERSHOOTS = 10; // ... whose used1 exceeded high_throttle
export const TSTAT_OVERSHOOT_SLOTS_MAX = 11; // largest used1 - high_throttle
export const TSTAT_BOUND_SLOTS_AT_MAX = 12; // the design's bound for that request
export const TSTAT_OWN_SLOTS_AT_MAX = 13; // its own nslots
export const TSTAT_OTHER_MAY_BLOCK_SLOTS_AT_MAX = 14; // other MAY_BLOCK slots in its window
export const TSTAT_NON_BLOCK_SLOTS_AT_MAX = 15; // non-MAY_BLOCK slots in its window
export const TSTAT_BOUND_VIOLATIONS = 16; // used1 - used0 above the bound: must stay 0
export const TSTAT_CONCURRENT_SLOP = 17; // admitted requests with used1 - used0 above their own nslots
export const TSTAT_USED_SLOTS_PEAK_THROTTLED = 18; // highest used1 reached by a throttled allocation
export const TSTAT_FIELDS = 19;
export const TSTAT_NAMES = [
  'high_throttled', 'low_throttled', 'waits', 'wait_ns_total', 'wait_ns_max', 'aborted', 'deadlocks',
  'failed_releases', 'unmap_releases', 'admitted', 'overshoots', 'overshoot_slots_max', 'bound_slots_at_max',
  'own_slots_at_max', 'other_may_block_slots_at_max', 'non_block_slots_at_max', 'bound_violations',
  'concurrent_slop', 'used_slots_peak_throttled',
] as const;
/** Field bytes, padded to whole cache lines so the histograms start on a line. */
export const TSTAT_FIELDS_BYTES = Math.ceil((TSTAT_FIELDS * 8) / CACHE_LINE_BYTES) * CACHE_LINE_BYTES;
export const TSTAT_WAIT_HIST_OFFSET = TSTAT_FIELDS_BYTES; // wait time per parked request, ns
export const TSTAT_OVERSHOOT_HIST_OFFSET = TSTAT_WAIT_HIST_OFFSET + HISTOGRAM_BYTES; // overshoot, slots
export const TSTAT_BYTES = TSTAT_OVERSHOOT_HIST_OFFSET + HISTOGRAM_BYTES;

// --- dynamic swiotlb (CONFIG_SWIOTLB_DYNAMIC): one region per allocator (Int32Array, Float64Array) ----
// Everything a pool added while threads run needs is here from boot, because a running worker thread
// cannot receive a new SharedArrayBuffer without a message and the data path never waits for one:
// - the control line: the work item (schedule_work's pending bit and the worker's doorbell), the
//   teardown word, mem->lock (an io_tlb_area-shaped record, so areaLock takes it), the grace-period
//   epoch;
// - the metadata arena: areas and slots of every dynamic pool, carved by a bump pointer (pools are
//   never freed); its capacity is dynamic.ts metaArenaBytes(maxPools, headroom);
// - the counters the report reads (growth attempts by size, transient pools, trigger-to-pool time);
// - per-device records (dev->dma_io_tlb_pools, dma_io_tlb_lock, dma_uses_io_tlb) and names;
// - reader slots for the grace period of transient pools (dynamic.ts states the invariant);
// - the transient-pool table: one record per transient pool that can exist at once, each with a fixed
//   metadata block (one area, at most IO_TLB_SEGSIZE slots).
// f64 fields are at even Int32 indices, read through the Float64Array view at index >> 1.
export const DYN_MAGIC = 0;
export const DYN_MAGIC_VALUE = 0x44594e31; // "DYN1"
export const DYN_WORK_PENDING = 1; // mem->dyn_alloc queued and not yet started (schedule_work's bit)
export const DYN_WORK_SEQ = 2; // the worker's doorbell: bumped and notified by schedule_work
export const DYN_STOP = 3; // teardown: the worker exits
export const DYN_EPOCH = 4; // grace-period epoch (starts at 1; 0 in a reader slot means "not reading")
export const DYN_READERS_USED = 5; // reader slots claimed
export const DYN_MAX_READERS = 6; // reader slot capacity
export const DYN_MAX_TRANSIENT = 7; // transient-pool table capacity
export const DYN_META_NEXT = 8; // bump pointer of the metadata arena (bytes)
export const DYN_META_CAP = 9; // metadata arena capacity (bytes)
export const DYN_DEFAULT_NSLABS = 10; // default_nslabs: what the worker asks for (before the 4 MiB cap)
export const DYN_PHYS_LIMIT_PAGES = 11; // mem->phys_limit in pages (4 GiB: SWIOTLB_FORCE without SWIOTLB_ANY)
export const DYN_DEVICES_USED = 12; // device records registered
export const DYN_WORKER_ALIVE = 13; // the growth worker thread is parked or working
export const DYN_TR_HWM = 14; // transient records ever claimed: reclaim passes scan below it
export const DYN_LOCK_RECORD = 16; // mem->lock (protects the pool list), one io_tlb_area-shaped line

// Counters (Int32 unless f64), one line each group.
export const DYN_GROW_RUNS = 32; // swiotlb_dyn_alloc runs
export const DYN_GROW_FAILED = 33; // runs that ended in "Failed to allocate new pool"
export const DYN_POOLS_ADDED = 34; // dynamic pools inserted
export const DYN_SCHEDULED = 35; // schedule_work calls that queued the work (not already pending)
export const DYN_SCHEDULE_NOOP = 36; // schedule_work calls that found it pending
export const DYN_TRANSIENT_CREATED = 37;
export const DYN_TRANSIENT_FAILED = 38; // no transient pool (atomic pool exhausted, table full, or alignment)
export const DYN_TRANSIENT_LIVE = 39; // linked on a device list
export const DYN_TRANSIENT_PEAK = 40;
export const DYN_TRANSIENT_FREED = 41; // memory returned to the atomic pool after the grace period
export const DYN_TRANSIENT_RETIRED = 42; // unlinked, waiting for the grace period
export const DYN_TRANSIENT_FAIL_NOMEM = 43; // the atomic pool had nothing suitable
export const DYN_TRANSIENT_FAIL_TABLE = 44; // the transient-pool table was full
export const DYN_TRANSIENT_FAIL_SEARCH = 45; // made, but the request's alignment did not fit it
export const DYN_POOL_BYTES_PEAK = 46; // f64 at 46: peak of (default + dynamic + live transient) pool bytes
export const DYN_TRIGGER_MS = 48; // f64: when the pending work was queued (ms since the allocator was created)
export const DYN_TRIGGER_TO_POOL_MS_SUM = 50; // f64
export const DYN_TRIGGER_TO_POOL_MS_MAX = 52; // f64
export const DYN_CREATED_AT_MS = 54; // f64: the allocator's creation time (nowMs), the origin of the *_MS fields
export const DYN_TRANSIENT_BYTES_LIVE = 56; // f64: atomic-pool bytes held by live and retired transient pools
// [proposal] --grow-limit (Michael Kelley's objection, seed 000): grow-limit.ts.
export const DYN_GROW_LIMIT_SLABS = 58; // the limit on default + dynamic pools, slots; 0: none
export const DYN_GROW_COMMITTED_SLABS = 59; // default + dynamic pools' slots, reserved before a pool is allocated
export const DYN_GROW_LIMIT_REFUSED = 60; // growths the limit refused (after halving to IO_TLB_MIN_SLABS)
export const DYN_RESERVED_SLABS = 61; // [proposal] cma: slots of the CMA area reserved at boot for growth (counted as committed)
// Growth attempts by requested size: swiotlb_alloc_pool's halving, 4 MiB, 2 MiB, 1 MiB (IO_TLB_MIN_SLABS).
export const DYN_ATTEMPTS = 64; // GROW_SIZES entries: attempts
export const DYN_ATTEMPTS_OK = 72; // GROW_SIZES entries: successes
export const GROW_SIZE_SLOTS = [2048, 1024, 512] as const;

// Device records: DYN_MAX_DEVICES records of two lines: the dma_io_tlb_lock record, then the state.
export const DYN_DEVICES = 128;
export const DYN_MAX_DEVICES = 16;
export const DEVREC_INTS = 2 * AREA_INTS;
export const DEVREC_LOCK = 0; // dev->dma_io_tlb_lock: an io_tlb_area-shaped record (AREA_INTS)
export const DEVREC_HEAD = AREA_INTS; // dev->dma_io_tlb_pools: first transient record + 1, 0 = empty
export const DEVREC_USES_IO_TLB = AREA_INTS + 1; // dev->dma_uses_io_tlb
export const DEVREC_NAME_LEN = AREA_INTS + 2; // UTF-8 bytes of the name, then the name at DEVREC_NAME
export const DEVREC_NAME = AREA_INTS + 4; // up to DEVREC_NAME_BYTES
export const DEVREC_NAME_BYTES = (AREA_INTS - 4) * I32;
// Reader slots: DYN_MAX_READERS lines from DYN_READERS (0: not reading; else the epoch it entered in).
export const DYN_READERS = DYN_DEVICES + DYN_MAX_DEVICES * DEVREC_INTS;
export const READER_INTS = AREA_INTS;
export function dynTransientTable(maxReaders: number): number {
  return DYN_READERS + maxReaders * READER_INTS;
}
// Transient-pool records: one line each (TR_*), from dynTransientTable(maxReaders).
export const TR_INTS = AREA_INTS;
export const TR_STATE = 0; // TR_FREE / TR_LIVE / TR_RETIRED / TR_RECLAIMING
export const TR_NEXT = 1; // next record on the device list + 1, 0 = end (never changed after unlink)
export const TR_DEVICE = 2; // device record
export const TR_NSLABS = 3;
export const TR_GEN = 4; // bumped at each reuse: a thread's cached view of an older pool is stale
export const TR_RETIRE_EPOCH = 5; // the epoch its unlink began (grace: every reader slot 0 or >= this)
export const TR_FREES = 6; // times its memory went back to the atomic pool for this generation (1 at most)
export const TR_START = 8; // f64: pool.start (physical)
export const TR_ARENA_OFFSET = 10; // f64: byte offset of its memory in the decrypted arena
export const TR_FREE = 0;
export const TR_LIVE = 1;
export const TR_RETIRED = 2;
export const TR_RECLAIMING = 3; // being freed by one reclaimer, or being set up by its creator
/** Metadata block of one transient pool: one area record and IO_TLB_SEGSIZE slots (a mapping is at most one segment). */
export const TR_META_BYTES = AREA_BYTES + slotsBytes(IO_TLB_SEGSIZE);
export function dynRegionInts(maxReaders: number, maxTransient: number): number {
  return dynTransientTable(maxReaders) + maxTransient * TR_INTS;
}
export function dynRegionBytes(maxReaders: number, maxTransient: number): number {
  return dynRegionInts(maxReaders, maxTransient) * I32;
}
/** Bytes of the metadata of a dynamic pool: its area records, then its slots (8-byte aligned: the f64 orig_addr array). */
export function dynPoolMetaBytes(nslabs: number, nareas: number): number {
  return areasBytes(nareas) + slotsBytes(nslabs);
}

// Relationships the rest of the code relies on, asserted once.
assert(AREA_BYTES === CACHE_LINE_BYTES, 'an io_tlb_area record is one cache line');
assert(MEM_THROTTLE_RESERVED_END <= MEM_POOL_TABLE, 'the reserved room ends before the pool table');
assert(THR_ABORT < CACHE_LINE_BYTES / I32, 'throttle configuration fits its first line');
assert(THR_HIGH_THROTTLE_COUNT * I32 === CACHE_LINE_BYTES, 'racy counters are off the configuration line');
assert(THR_SEM_LOCK_RECORD + AREA_INTS <= THR_SEM_COUNT, 'the semaphore lock record is a whole line of its own');
assert(THR_SEM_COUNT % (CACHE_LINE_BYTES / I32) === 0, 'semaphore state starts a line');
assert(THR_HOLDER_SINCE_MS % 2 === 0 && THR_HOLDER_SINCE_MS + 2 <= THR_ALLOC_BEGUN_MAY_BLOCK, 'holder time is an aligned f64 on the semaphore lines');
assert([THR_ALLOC_BEGUN_MAY_BLOCK, THR_ALLOC_DONE_MAY_BLOCK, THR_ALLOC_BEGUN_NON_BLOCK, THR_ALLOC_DONE_NON_BLOCK]
  .every((w, k) => w === THR_ALLOC_BEGUN_MAY_BLOCK + k * (CACHE_LINE_BYTES / I32)), 'slop counters each own a line');
assert(THR_ALLOC_BEGUN_NON_BLOCK + THR_ALLOC_DONE_DELTA === THR_ALLOC_DONE_NON_BLOCK, 'both classes share the begun-to-done distance');
assert(THR_ALLOC_DONE_NON_BLOCK + CACHE_LINE_BYTES / I32 <= THR_QUEUE_RING, 'the queue ring follows the slop counters');
assert((THROTTLE_WAITERS_MAX & (THROTTLE_WAITERS_MAX - 1)) === 0 && THROTTLE_WAITERS_MAX >= 512, 'the queue ring is a power of two of at least 512');
assert(THR_WAITERS % (CACHE_LINE_BYTES / I32) === 0 && WAITER_INTS * I32 === CACHE_LINE_BYTES, 'waiter records are cache lines');
assert(WAITER_ENQUEUED_MS % 2 === 0 && WAITER_ENQUEUED_MS + 2 <= WAITER_INTS, 'enqueue time is an aligned f64 in the record');
assert(THROTTLE_DEVICE_NAME_BYTES <= 256, 'a device name length fits its length byte');
assert(TSTAT_NAMES.length === TSTAT_FIELDS, 'every throttle statistic is named');
assert(TSTAT_FIELDS_BYTES % CACHE_LINE_BYTES === 0 && TSTAT_BYTES % CACHE_LINE_BYTES === 0, 'throttle statistics blocks are whole lines');
assert(DYN_LOCK_RECORD % AREA_INTS === 0 && DYN_LOCK_RECORD + AREA_INTS <= DYN_GROW_RUNS, 'mem->lock is a line of its own');
assert(DYN_TRANSIENT_BYTES_LIVE + 2 <= DYN_ATTEMPTS && DYN_ATTEMPTS_OK + GROW_SIZE_SLOTS.length <= DYN_DEVICES, 'dynamic counters fit before the device records');
assert([DYN_POOL_BYTES_PEAK, DYN_TRIGGER_MS, DYN_TRIGGER_TO_POOL_MS_SUM, DYN_TRIGGER_TO_POOL_MS_MAX, DYN_CREATED_AT_MS, DYN_TRANSIENT_BYTES_LIVE, TR_START, TR_ARENA_OFFSET].every((w) => w % 2 === 0), 'f64 fields sit at even Int32 indices');
assert(TR_ARENA_OFFSET + 2 <= TR_INTS && DEVREC_NAME + DEVREC_NAME_BYTES / I32 <= DEVREC_INTS, 'records fit their lines');
assert(TR_META_BYTES % 8 === 0, 'transient metadata blocks keep the slots f64-aligned');
assert(MEM_DYNAMIC < 16 && MEM_MAX_POOLS < 16, 'header configuration fits its first line');
assert(MEM_USED_HIWATER * I32 >= CACHE_LINE_BYTES, 'hot counters are off the configuration line');
assert(2 + 1 + 1 + 4 + 8 === SLOT_BYTES, 'slot metadata fits its 16-byte budget');
assert(STAT_NAMES.length === STATS_FIELDS, 'every statistic is named');
