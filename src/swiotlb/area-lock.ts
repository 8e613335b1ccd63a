// The io_tlb_area spinlock, on an Int32 lock word in shared memory.
//
// Departure from the kernel: the kernel's spin_lock disables preemption, so a holder is never
// descheduled. Here 32 vCPU threads share 2 cores and the OS preempts lock holders freely, so a lock
// that only spins burns whole time slices waiting for a holder that is not running. We spin a bounded
// number of times and then park on the lock word with Atomics.wait (Drepper's three-state futex
// mutex: 0 free, 1 held, 2 held and someone may be parked). Unlock notifies only when the word says 2,
// so the uncontended path is one compare-exchange to lock and one exchange to unlock.
//
// Invariant: a thread returns from areaLock only with the word non-zero and owned by it; every parked
// thread is woken by the unlock that follows its park or by its own timeout (a lost wakeup costs at
// most MEM_PARK_TIMEOUT_MS and is counted in AREA_PARK_TIMEOUTS, never a hang).
//
// The `hook` lines are the stress harness's instrumentation points and the `mutant` tests its
// deliberately broken variants (instrument.ts, mutants.ts); both are inert in normal runs.
import {
  P_AREA_LOCK_ACQUIRED, P_AREA_LOCK_ENTER, P_AREA_LOCK_PARK, P_AREA_LOCK_SPIN, P_AREA_LOCK_UNPARK, P_AREA_UNLOCK,
  P_AREA_UNLOCKED, hook,
} from './instrument.js';
import {
  AREA_ACQUIRED, AREA_CONTENDED, AREA_LOCK, AREA_PARK_TIMEOUTS, AREA_PARKED,
} from './layout.js';
import { M_AREA_LOCK_NO_EXCLUDE, M_LOST_WAKEUP, mutant, plainStoreLock } from './mutants.js';

const FREE = 0;
const HELD = 1;
const HELD_WAITERS = 2;

/** Take the lock of the area record at `base` in `areas`. */
export function areaLock(areas: Int32Array, base: number, spins: number, parkTimeoutMs: number): void {
  if (hook !== null) hook(P_AREA_LOCK_ENTER, base, areas);
  if (mutant === M_AREA_LOCK_NO_EXCLUDE ? plainStoreLock(areas, base + AREA_LOCK) : Atomics.compareExchange(areas, base + AREA_LOCK, FREE, HELD) === FREE) {
    areas[base + AREA_ACQUIRED]!++;
    if (hook !== null) hook(P_AREA_LOCK_ACQUIRED, base, areas);
    return;
  }
  areaLockSlow(areas, base, spins, parkTimeoutMs);
}

function areaLockSlow(areas: Int32Array, base: number, spins: number, parkTimeoutMs: number): void {
  const word = base + AREA_LOCK;
  for (let i = 0; i < spins; i++) {
    if (hook !== null) hook(P_AREA_LOCK_SPIN, base, areas);
    // Read before the compare-exchange so spinning does not keep stealing the cache line.
    if (Atomics.load(areas, word) === FREE && Atomics.compareExchange(areas, word, FREE, HELD) === FREE) {
      areas[base + AREA_ACQUIRED]!++;
      areas[base + AREA_CONTENDED]!++;
      if (hook !== null) hook(P_AREA_LOCK_ACQUIRED, base, areas);
      return;
    }
  }
  let parks = 0;
  let timeouts = 0;
  // From here on we may have parked, so we take the lock in state 2: our unlock must wake the others.
  while (Atomics.exchange(areas, word, HELD_WAITERS) !== FREE) {
    parks++;
    if (hook !== null) hook(P_AREA_LOCK_PARK, base, areas);
    if (Atomics.wait(areas, word, HELD_WAITERS, parkTimeoutMs) === 'timed-out') timeouts++;
    if (hook !== null) hook(P_AREA_LOCK_UNPARK, base, areas);
  }
  areas[base + AREA_ACQUIRED]!++;
  areas[base + AREA_CONTENDED]!++;
  areas[base + AREA_PARKED]! += parks;
  areas[base + AREA_PARK_TIMEOUTS]! += timeouts;
  if (hook !== null) hook(P_AREA_LOCK_ACQUIRED, base, areas);
}

/** Release the lock; wake one parked thread if the word says someone may be parked. */
export function areaUnlock(areas: Int32Array, base: number): void {
  if (hook !== null) hook(P_AREA_UNLOCK, base, areas);
  if (Atomics.exchange(areas, base + AREA_LOCK, FREE) === HELD_WAITERS && mutant !== M_LOST_WAKEUP) {
    Atomics.notify(areas, base + AREA_LOCK, 1);
  }
  if (hook !== null) hook(P_AREA_UNLOCKED, base, areas);
}
