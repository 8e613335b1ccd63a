// Instrumentation points of the swiotlb core, for the race stress harness (npm run stress).
//
// A point is one line in the core: `if (hook !== null) hook(P_X, arg)`. In every normal run `hook`
// is null and the line is a load and a compare that the branch predictor always gets right (npm run
// bench measures it against a build with the lines compiled out). The stress harness's worker
// threads (src/stress/worker.ts) install a hook, which may record who holds which lock, insert
// spins, yields or short parks (chaos mode) or run the threads one at a time under a seeded
// scheduler (pct mode). Two experiments count with one, on their own thread and only while they
// count (src/experiment/tesarik-dynamic-cost.ts, lan-areas.ts: area-lock acquisitions).
//
// Rules for a hook: it runs on the thread that reached the point, possibly with an area lock held;
// it must not call back into the allocator, and it may only block in bounded waits.

/**
 * `arg` is the point's datum: a lock record's base index, a slot index, a slot count. `words` is the
 * Int32Array that holds the lock or wait word the point is about (pool.areas for an area lock, the
 * throttle region for throttle_sem's own lock and its waiters), else undefined.
 */
export type InstrumentHook = (point: number, arg: number, words?: Int32Array) => void;

/** The installed hook; null except in the stress harness's workers. */
export let hook: InstrumentHook | null = null;

/** Install (or with null remove) this thread's hook: the stress harness, and the experiments that count lock acquisitions. */
export function setInstrumentHook(h: InstrumentHook | null): void {
  hook = h;
}

// --- the points -----------------------------------------------------------------------------------
// Area lock (area-lock.ts): the io_tlb_area locks, and throttle_sem's own lock, which is the same
// lock on a record in the throttle region. arg = the record's base index; words = its Int32Array.
/** areaLock entered, before the first compare-exchange. */
export const P_AREA_LOCK_ENTER = 1;
/** One spin on a held lock word (slow path), before re-reading it. */
export const P_AREA_LOCK_SPIN = 2;
/** The lock is taken; the critical section starts. */
export const P_AREA_LOCK_ACQUIRED = 3;
/** About to park on the lock word (Atomics.wait). */
export const P_AREA_LOCK_PARK = 4;
/** Back from a park, woken or timed out. */
export const P_AREA_LOCK_UNPARK = 5;
/** areaUnlock entered: the critical section ends here. */
export const P_AREA_UNLOCK = 6;
/** The lock word is released (and a waiter notified, if any). */
export const P_AREA_UNLOCKED = 7;
// The allocator (mem.ts).
/** swiotlb_search_pool_area found a free run, under the lock, before claiming it; arg = slot. */
export const P_SLOTS_FOUND = 8;
/**
 * inc_used_and_hiwater: total_used raised by the allocation's slots (after its area lock), used_hiwater
 * read, before the compare-exchange; arg = the new total_used.
 */
export const P_HIWATER_UPDATE = 9;
// [RFC] throttling (mem.ts, throttle.ts).
/** Between the throttle decision (and any wait) and the slot search; arg = the decision (THROTTLE_*). */
export const P_THROTTLE_CHECKED = 10;
/** A throttled mapping's slots are free and throttle_sem is about to be released (up()). */
export const P_SLOTS_FREED = 11;
// The checked workload (exerciser.ts).
/** Start of one map or unmap operation of the exerciser; arg = the operation's number. */
export const P_EXERCISER_OP = 12;
// [RFC] throttle_sem (throttle.ts); words = the throttle region.
/** down() took the free semaphore at once, under its lock. */
export const P_THROTTLE_ACQUIRED = 13;
/** down() joined the wait queue, under its lock; arg = the waiter's record number. */
export const P_THROTTLE_QUEUED = 14;
/** A queued waiter is about to park until up() hands it the semaphore; arg = its wait word's index. */
export const P_THROTTLE_WAIT = 15;
/** The waiter was handed the semaphore (it is the holder now); arg = its record number. */
export const P_THROTTLE_GRANTED = 16;

// Accounting (mem.ts): area.used changes under the area lock, total_used after it (§9), so between
// the two a thread's change is in one and not yet in the other. An allocation's total_used add is
// followed by P_HIWATER_UPDATE; a release's subtract by the thread's next point, whatever it is (no
// point of its own: the release path is hot, and nothing races there).
/** Under the area lock, just before area.used changes; arg = the change: +nslots (search), -nslots (release); words = the pool's areas. */
export const P_AREA_USED = 17;
// [RFC] throttling (throttle.ts).
/** The throttle decision read high_throttle_count or low_throttle_count and is about to store it + 1 (a racy increment); arg = the value read. */
export const P_THROTTLE_COUNT = 18;

// Dynamic swiotlb (dynamic.ts, mem.ts). A transient pool's slots are counted in total_used from its
// search on, but belong to a live pool only from its link to its unlink: these points bracket the
// windows where the two differ, so the harness can check total_used against every pool's area.used.
/** transientPool: the record is linked on the device's list and TR_LIVE; arg = the record. */
export const P_TRANSIENT_LINKED = 19;
/** swiotlb_del_transient, before dec_used; arg = the pool's nslabs. */
export const P_TRANSIENT_DEL = 20;
/** swiotlb_del_transient: unlinked and TR_RETIRED (no longer a live pool); arg = the record. */
export const P_TRANSIENT_RETIRED = 21;
/** reclaim: about to claim a retired record for freeing (before its compare-and-exchange); arg = the record. */
export const P_TRANSIENT_RECLAIM = 22;
/** reclaim: the record is claimed and its memory is about to go back to the atomic pool; arg = the record. */
export const P_TRANSIENT_FREE = 23;
/** swiotlb_bounce from a transient pool to the original (the unmap's copy-back); arg = the record. */
export const P_TRANSIENT_COPIED = 24;
/** add_mem_pool: the growth worker's new pool is published (MEM_NPOOLS stored); arg = its table index. */
export const P_POOL_PUBLISHED = 25;
/** schedule_work(&mem->dyn_alloc) queued the growth work (it was not pending). */
export const P_GROWTH_SCHEDULED = 26;
/** The growth worker is about to wait for work (idle: not inside swiotlb_dyn_alloc or a reclaim pass). */
export const P_GROWTH_IDLE = 27;

export const POINT_COUNT = 28;

/** Names for reports, indexed by point id. */
export const POINT_NAMES: readonly string[] = [
  '(none)', 'area_lock_enter', 'area_lock_spin', 'area_lock_acquired', 'area_lock_park', 'area_lock_unpark',
  'area_unlock', 'area_unlocked', 'slots_found', 'hiwater_update', 'throttle_checked', 'slots_freed', 'exerciser_op',
  'throttle_acquired', 'throttle_queued', 'throttle_wait', 'throttle_granted', 'area_used', 'throttle_count',
  'transient_linked', 'transient_del', 'transient_retired', 'transient_reclaim', 'transient_free', 'transient_copied',
  'pool_published', 'growth_scheduled', 'growth_idle',
];
