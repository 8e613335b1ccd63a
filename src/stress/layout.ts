// The stress harness's own shared memory: one control block per trial (Int32Array), written by the
// worker threads' instrumentation hooks and read by the main thread's watchdog. Every offset is here.
//
//   header             stop / abort flags, the used_hiwater reset generation, the start barrier
//   per thread         progress, last point, the area it is taking / holds / is parked on, done flag
//   per area           the lock shadow: cpu + 1 of the thread inside the area's critical section; one
//                      more entry, index nareas, for throttle_sem's own lock
//   per area           the area shadow: area.used and area.index as the last unlock left them
//   per transient      dynamic swiotlb: the transient shadow, one record per transient-pool record:
//                      where its mapping is in its life (TS_*), and the cpu that mapped it
import { assert } from '../errors.js';

export const CTL_STOP = 0; // 1: finish the current operation, unmap everything and return
export const CTL_ABORT = 1; // 1: give up now (the watchdog fired); waits in the harness throw
export const CTL_RESET_GEN = 2; // used_hiwater reset generation: odd while a reset is in progress
export const CTL_READY = 3; // threads that have attached and are about to start
export const CTL_VIOLATIONS = 4; // broken checks reported by all threads
// Accounting in flight (monotonic, wrapping Int32): slots whose area.used change is about to be made
// ("begun", before the change) and whose total_used change has been made ("done", after it), by class.
export const CTL_ALLOC_BEGUN = 5;
export const CTL_ALLOC_DONE = 6;
export const CTL_RELEASE_BEGUN = 10;
export const CTL_RELEASE_DONE = 11;
// Dynamic swiotlb.
export const CTL_GROWER_WAKE = 12; // pct: the growth worker is blocked while this is 0 (set when work is queued, and at the end)
export const CTL_VCPUS_DONE = 13; // vCPU threads whose workload has returned (the growth worker exits when all have)
export const CTL_GROWER_SEQ = 14; // odd while the growth worker is inside swiotlb_dyn_alloc (a seqcount for the nslabs check)
export const CTL_TR_FREES = 15; // transient pools freed as the shadow expected (once, after the copy-back)
export const CTL_QUIESCENT_CHECKS = 16; // pct: moments with every vCPU between operations at which the live-mapping sums were checked
export const CTL_NSLABS_CHECKS = 17; // moments at which mem->nslabs was checked against the pools (no growth in progress)
// 18..31: spare.
// [RFC] throttle_sem, as the hooks see it.
export const CTL_SEM_JOINS = 7; // waiters that joined the queue (a waiter's join number is its order)
export const CTL_SEM_GRANTS = 8; // waiters that were handed the semaphore
export const CTL_THROTTLED_HOLDER = 9; // cpu + 1 of the thread whose live mapping is flagged throttled
export const CTL_HEADER_INTS = 32;

export const T_PROGRESS = 0; // operations started
export const T_POINT = 1; // the last instrumentation point passed (instrument.ts id)
export const T_TAKING = 2; // area whose lock it is taking, -1 none
export const T_HOLDING = 3; // area whose lock it holds, -1 none
export const T_PARKED = 4; // area whose lock word it is parked on, -1 none
export const T_PARK_EPISODE = 5; // parks so far (tells one long park from many short ones)
export const T_DONE = 6; // 1 once the thread's workload has returned
export const T_STARTED = 7; // 1 once the thread's workload has started
export const T_STEPS = 8; // instrumentation points passed, waits (spin, park, throttle wait) not counted
export const T_SEM_WAIT = 9; // 1 while parked in down() waiting for throttle_sem
export const T_PENDING_USED = 10; // this thread's area.used change not yet applied to total_used (+nslots, -nslots, 0)
export const T_LIVE_SLOTS = 11; // slots of this thread's live mappings (every pool), settled between operations
export const T_LIVE_TRANSIENT = 12; // of which in transient pools
// 13..15: spare.
export const THREAD_INTS = 16;

export function threadBase(cpu: number): number {
  return CTL_HEADER_INTS + cpu * THREAD_INTS;
}

/** The lock shadow's entry for area `area`; area = nareas is throttle_sem's own lock. */
export function holderIndex(nthreads: number, area: number): number {
  return CTL_HEADER_INTS + nthreads * THREAD_INTS + area;
}

/** The name of lock shadow entry `k`: an area's lock, or (k = nareas) throttle_sem's own. */
export function lockName(k: number, nareas: number): string {
  return k === nareas ? "throttle_sem's lock" : `area ${k}'s lock`;
}

/** The area shadow: area `area`'s used (and, at + AREA_SHADOW_INDEX, its index) as its last unlock left them. */
export function areaShadowIndex(nthreads: number, nareas: number, area: number): number {
  return CTL_HEADER_INTS + nthreads * THREAD_INTS + nareas + 1 + area * AREA_SHADOW_INTS;
}
export const AREA_SHADOW_USED = 0;
export const AREA_SHADOW_INDEX = 1;
const AREA_SHADOW_INTS = 2;

/**
 * The transient shadow's record for transient-pool record `rec`: TS_STATE (TS_*) and TS_CPU (cpu + 1
 * of the thread whose mapping it holds) for the record's generation TS_GEN (the core's TR_GEN, bumped
 * at each reuse), and TS_FREED_GEN, the last generation whose memory went back to the atomic pool.
 * A generation goes TS_MAPPED (the map returned in it) -> TS_COPY_PENDING (its unmap began and must
 * copy back) or TS_UNMAPPING (its unmap began with nothing to copy back) -> TS_UNMAPPING (copied
 * back) -> TS_FREED. A free of a generation already freed, or of the recorded generation from any
 * state but TS_UNMAPPING, is a broken check. (A generation the workload never saw mapped, an SG list
 * whose later entry failed and was rolled back, is only checked for the once.)
 */
export function transientShadowIndex(nthreads: number, nareas: number, rec: number): number {
  return CTL_HEADER_INTS + nthreads * THREAD_INTS + nareas + 1 + nareas * AREA_SHADOW_INTS + rec * TS_INTS;
}
export const TS_STATE = 0;
export const TS_CPU = 1;
export const TS_GEN = 2;
export const TS_FREED_GEN = 3;
const TS_INTS = 4;
export const TS_NONE = 0;
export const TS_MAPPED = 1;
export const TS_COPY_PENDING = 2;
export const TS_UNMAPPING = 3;
export const TS_FREED = 4;
export const TS_NAMES = ['never mapped', 'mapped', 'unmapping, copy-back not done', 'unmapping, copied back', 'freed'];

/** A trial's control block; the area shadow starts at a new pool's values (used 0, index 0). */
export function createControl(nthreads: number, nareas: number, maxTransient = 0): Int32Array {
  const ctl = new Int32Array(new SharedArrayBuffer(transientShadowIndex(nthreads, nareas, maxTransient) * 4));
  for (let t = 0; t < nthreads; t++) {
    const b = threadBase(t);
    ctl[b + T_TAKING] = -1;
    ctl[b + T_HOLDING] = -1;
    ctl[b + T_PARKED] = -1;
  }
  return ctl;
}

assert(THREAD_INTS > T_LIVE_TRANSIENT, 'a thread record holds every field');
assert(CTL_HEADER_INTS > CTL_NSLABS_CHECKS, 'the header holds every field');
