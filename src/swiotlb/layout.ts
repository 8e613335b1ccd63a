// Every SharedArrayBuffer region of the swiotlb and every offset in it, named in one place.
//
// An allocator (io_tlb_mem) is one header SAB plus, for each pool (io_tlb_pool), three SABs:
// areas, slot metadata and bounce data. Any thread rebuilds its handles from these SABs alone
// (see IoTlbMem.attach). All sizes are fixed when the pool is created; nothing grows later except
// the pool list, which has a fixed number of descriptor entries in the header.
import { assert } from '../errors.js';
import { IO_TLB_SIZE } from './constants.js';

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

export const MEM_TOTAL_USED = 16; // total_used: atomic, outside the area locks
export const MEM_USED_HIWATER = 17; // used_hiwater: raised by compare-and-exchange, reset only to 0
export const MEM_TRANSIENT_NSLABS = 18; // transient_nslabs
export const MEM_MAP_FAILURES = 19; // failed maps, all causes (cheap cross-thread total)

// [RFC] swiotlb throttling state: room reserved here, used by the throttle module.
export const MEM_THROTTLE_ENABLED = 32;
export const MEM_HIGH_THROTTLE = 33;
export const MEM_LOW_THROTTLE = 34;
export const MEM_THROTTLE_SEM_COUNT = 35;
export const MEM_THROTTLE_TICKET_NEXT = 36;
export const MEM_THROTTLE_TICKET_SERVING = 37;
export const MEM_HIGH_THROTTLE_COUNT = 38;
export const MEM_LOW_THROTTLE_COUNT = 39;
export const MEM_THROTTLE_RESERVED_END = 48;

// Pool table: one descriptor per pool, in creation order (the search walks it newest first).
export const MEM_POOL_TABLE = 48;
export const MAX_POOLS = 64;
export const POOL_DESC_INTS = 8;
export const POOL_START_LO = 0; // pool.start, low 32 bits
export const POOL_START_HI = 1; // pool.start, high bits
export const POOL_NSLABS = 2;
export const POOL_NAREAS = 3;
export const POOL_KIND = 4; // PoolKind
export const MEM_HEADER_INTS = MEM_POOL_TABLE + MAX_POOLS * POOL_DESC_INTS;
export const MEM_HEADER_BYTES = MEM_HEADER_INTS * I32;
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
export const STATS_FIELDS = 16;
export const STATS_BYTES = STATS_FIELDS * 8;
export const STAT_NAMES = [
  'map_attempts', 'map_ok', 'map_fail_full', 'map_fail_oversize', 'map_fail_no_pool', 'map_fail_not_capable',
  'unmaps', 'unmap_passthrough', 'double_unmaps', 'bytes_to_device', 'bytes_from_device', 'bounce_overflows',
  'sync_for_device', 'sync_for_cpu', 'slots_mapped', 'past_end_reads',
] as const;

// Relationships the rest of the code relies on, asserted once.
assert(AREA_BYTES === CACHE_LINE_BYTES, 'an io_tlb_area record is one cache line');
assert(MEM_THROTTLE_RESERVED_END <= MEM_POOL_TABLE, 'throttle state fits before the pool table');
assert(MEM_USED_HIWATER * I32 >= CACHE_LINE_BYTES, 'hot counters are off the configuration line');
assert(2 + 1 + 1 + 4 + 8 === SLOT_BYTES, 'slot metadata fits its 16-byte budget');
assert(STAT_NAMES.length === STATS_FIELDS, 'every statistic is named');
