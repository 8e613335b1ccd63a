// Instrumentation points of the swiotlb core, for the race stress harness (npm run stress).
//
// A point is one line in the core: `if (hook !== null) hook(P_X, arg)`. In every normal run `hook`
// is null and the line is a load and a compare that the branch predictor always gets right (npm run
// bench measures it against a build with the lines compiled out). Only the stress harness's worker
// threads (src/stress/worker.ts) install a hook, which may record who holds which lock, insert
// spins, yields or short parks (chaos mode) or run the threads one at a time under a seeded
// scheduler (pct mode).
//
// Rules for a hook: it runs on the thread that reached the point, possibly with an area lock held;
// it must not call back into the allocator, and it may only block in bounded waits.

/** `arg` is the point's datum: an area record's base index, a slot index or a slot count. */
export type InstrumentHook = (point: number, arg: number) => void;

/** The installed hook; null except in the stress harness's workers. */
export let hook: InstrumentHook | null = null;

/** Install (or with null remove) this thread's hook. Only the stress harness calls this. */
export function setInstrumentHook(h: InstrumentHook | null): void {
  hook = h;
}

// --- the points -----------------------------------------------------------------------------------
// Area lock (area-lock.ts); arg = the area record's base index in pool.areas.
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
/** inc_used_and_hiwater: total_used raised, used_hiwater read, before the compare-exchange; arg = the new total_used. */
export const P_HIWATER_UPDATE = 9;
// [RFC] throttling (reserved: placed by the throttle work).
/** Between the throttle decision and the slot search. */
export const P_THROTTLE_CHECKED = 10;
/** Between freeing a throttled mapping's slots and releasing the semaphore. */
export const P_SLOTS_FREED = 11;
// The checked workload (exerciser.ts).
/** Start of one map or unmap operation of the exerciser; arg = the operation's number. */
export const P_EXERCISER_OP = 12;

export const POINT_COUNT = 13;

/** Names for reports, indexed by point id. */
export const POINT_NAMES: readonly string[] = [
  '(none)', 'area_lock_enter', 'area_lock_spin', 'area_lock_acquired', 'area_lock_park', 'area_lock_unpark',
  'area_unlock', 'area_unlocked', 'slots_found', 'hiwater_update', 'throttle_checked', 'slots_freed', 'exerciser_op',
];
