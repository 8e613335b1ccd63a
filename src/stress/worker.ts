// One vCPU thread of a stress trial: installs the instrumentation hook (and the trial's mutant, if
// any) on this thread, runs the checked workload (src/swiotlb/exerciser.ts) against the shared pool,
// and reports. workers/stress.ts is its entry point.
//
// The hook, at every instrumentation point:
//   - keeps this thread's record in the control block (layout.ts): the last point, the area lock
//     it is taking, holds or is parked on, so the watchdog can say who holds what and who waits;
//   - keeps the lock shadow: at "acquired" it claims the area with compare-exchange (cpu + 1), at
//     "unlock" it releases it; finding it taken means two threads are inside one critical section
//     (throttle_sem's own lock, the same lock code on the throttle region, has an entry too);
//   - notes the total_used each allocation reached (the hiwater point's datum);
//   - keeps the area shadow: at unlock, with the lock still held, it records the area's used and
//     index; at the next acquire of that lock both must be unchanged (a write outside the lock shows);
//   - checks total_used against the areas (§9: area.used changes under the area lock, total_used
//     after it). A thread's change is "pending" from just before its area.used write to just after
//     its total_used write (for an allocation the hiwater point; for a release, whose total_used
//     write follows its area unlock with no point of its own, its next point), and only in that
//     order. pct (one thread runs at a time): at every point
//     total_used = Σ area.used less every thread's pending change, exactly. chaos: with the slots of
//     changes in flight counted ("begun" before the area.used write, "done" after the total_used one)
//     and read done-first, begun-last, Σ area.used - allocations in flight <= total_used <=
//     Σ area.used + releases in flight. Either breaks when total_used moves before the slots do, or
//     an update is lost;
//   - [RFC] checks throttle_sem (§15.5, §15.6, §18.14, §18.15): waiters are handed the semaphore in
//     the order they queued (join numbers taken under the semaphore's lock, against the grants seen);
//     nobody takes it at once while a waiter is queued (direct handoff, no barging); at most one live
//     mapping is flagged throttled (a shadow claimed at map, released before unmap); and when the
//     semaphore is released at unmap, every slot of the releasing mapping, or of its whole SG list, is
//     already free;
//   - chaos mode: with the trial's probability for that point, inserts a busy spin, a yield or a
//     short park; pct mode: hands the step to the scheduler (pct.ts).
// Around each map it checks used_hiwater (§18.7, §18.8): never lower than a value read before
// without a reset in between, and at least the total_used this thread's allocation reached.
import { runExerciser, type ExerciserConfig, type ExerciserResult } from '../swiotlb/exerciser.js';
import { type ExerciserMapping } from '../swiotlb/exerciser.js';
import {
  P_AREA_LOCK_ACQUIRED, P_AREA_LOCK_ENTER, P_AREA_LOCK_PARK, P_AREA_LOCK_SPIN, P_AREA_LOCK_UNPARK, P_AREA_UNLOCK,
  P_AREA_UNLOCKED, P_AREA_USED, P_EXERCISER_OP, P_HIWATER_UPDATE, P_SLOTS_FREED, P_THROTTLE_ACQUIRED, P_THROTTLE_GRANTED,
  P_THROTTLE_QUEUED, P_THROTTLE_WAIT, setInstrumentHook,
} from '../swiotlb/instrument.js';
import {
  AREA_INDEX, AREA_INTS, AREA_LOCK, AREA_USED, MEM_TOTAL_USED, MEM_USED_HIWATER, WAITER_QUEUED,
} from '../swiotlb/layout.js';
import { IoTlbMem } from '../swiotlb/mem.js';
import { setMutant } from '../swiotlb/mutants.js';
import { debugOn } from '../cli/main.js';
import { Rng } from '../util/rng.js';
import type { TrialConfig } from './config.js';
import {
  AREA_SHADOW_INDEX, AREA_SHADOW_USED, CTL_ABORT, CTL_ALLOC_BEGUN, CTL_ALLOC_DONE, CTL_READY, CTL_RELEASE_BEGUN,
  CTL_RELEASE_DONE, CTL_RESET_GEN, CTL_SEM_GRANTS, CTL_SEM_JOINS, CTL_STOP, CTL_THROTTLED_HOLDER, CTL_VIOLATIONS, T_DONE,
  T_HOLDING, T_PARKED, T_PARK_EPISODE, T_PENDING_USED, T_POINT, T_PROGRESS, T_SEM_WAIT, T_STARTED, T_STEPS, T_TAKING,
  areaShadowIndex, holderIndex, lockName, threadBase,
} from './layout.js';
import { BLOCK_UNTIL_EQUAL, BLOCK_WHILE_EQUAL, PctThread, StressAbort } from './pct.js';

/** The arrays whose words pct-blocked threads wait on, by index: the pool's areas, the throttle region. */
const WATCH_AREAS = 0;
const WATCH_THROTTLE = 1;

export interface StressThreadPayload {
  trial: TrialConfig;
  cpu: number;
  /** 0 for the real core, else the mutant's id (src/swiotlb/mutants.ts). */
  mutantId: number;
  exerciser: ExerciserConfig;
  control: SharedArrayBuffer;
  /** pct mode's scheduler state, null in chaos mode. */
  pct: SharedArrayBuffer | null;
}

export interface StressThreadResult {
  cpu: number;
  exerciser: ExerciserResult | null;
  /** The trial was aborted (the watchdog fired) while this thread was waiting. */
  aborted: boolean;
  /** An exception out of the core or the workload (an InvariantError, say). */
  error: string | null;
  /** chaos: perturbations inserted by this thread. */
  perturbations: number;
  /** The largest total_used an allocation of this thread reached in reset generation `allocUsedGen`. */
  allocUsedMax: number;
  allocUsedGen: number;
}

/** Most violations a thread streams to the main thread (the rest are counted). */
const MAX_STREAMED = 5;

export function runStressThread(p: StressThreadPayload, report: (msg: string) => void): StressThreadResult {
  const { trial, cpu } = p;
  const ctl = new Int32Array(p.control);
  const tb = threadBase(cpu);
  const nthreads = trial.vcpus;
  const mem = IoTlbMem.attach(p.exerciser.shared, { cpu });
  const areas = mem.defpool.areas;
  const thr = mem.throttle.i32;
  const header = mem.header;
  const nareas = trial.nareas;
  const pool = mem.defpool;
  const rng = new Rng((trial.seed ^ Math.imul(cpu + 1, 0x9e3779b1)) >>> 0);
  const rates = Float64Array.from(trial.perturb.rates);
  const [kSpin, kYield, kPark] = trial.perturb.kinds;
  const kTotal = kSpin + kYield + kPark;
  const scratch = new Int32Array(new SharedArrayBuffer(4));
  const aborted = () => Atomics.load(ctl, CTL_ABORT) === 1;
  const sched = p.pct !== null ? new PctThread(p.pct, cpu, [areas, thr], aborted) : null;
  const res: StressThreadResult = {
    cpu, exerciser: null, aborted: false, error: null, perturbations: 0, allocUsedMax: 0, allocUsedGen: 0,
  };
  let streamed = 0;
  const violation = (msg: string) => {
    Atomics.add(ctl, CTL_VIOLATIONS, 1);
    if (streamed++ < MAX_STREAMED) report(msg);
  };
  let spinSink = 0;
  const perturb = () => {
    res.perturbations++;
    const k = rng.below(kTotal);
    if (k < kSpin) {
      const n = 1 + rng.below(trial.perturb.spinMax);
      for (let i = 0; i < n; i++) spinSink = (spinSink * 31 + i) | 0;
    } else if (k < kSpin + kYield) {
      Atomics.wait(scratch, 0, 0, 0.02);
    } else {
      Atomics.wait(scratch, 0, 0, (1 + rng.below(trial.perturb.parkMaxUs)) / 1000);
    }
  };
  let opUsedMax = 0; // largest total_used an allocation of the current operation reached
  let myJoin = -1; // [RFC] this thread's place in throttle_sem's queue
  let unmapping: ExerciserMapping | null = null; // the mapping being unmapped, for the release check
  // The core's views of these regions belong to the workload's own allocator handle: compare buffers.
  const areasSab = areas.buffer;
  const thrSab = thr.buffer;
  /** A lock's entry in the lock shadow: its area, nareas for throttle_sem's own lock, -1 unknown. */
  const lockIndex = (arg: number, words: Int32Array | undefined) =>
    words?.buffer === areasSab ? arg / AREA_INTS : words?.buffer === thrSab ? nareas : -1;

  // --- total_used against the areas -----------------------------------------------------------
  let pending = 0; // this thread's area.used change not yet in total_used (T_PENDING_USED's copy)
  const setPending = (v: number) => {
    pending = v;
    Atomics.store(ctl, tb + T_PENDING_USED, v);
  };
  const areaUsedSum = () => {
    let sum = 0;
    for (let a = 0; a < nareas; a++) sum += Atomics.load(areas, a * AREA_INTS + AREA_USED);
    return sum;
  };
  let usedReported = false;
  /** pct: total_used = Σ area.used - Σ pending, exactly (only this thread runs, and every other is stopped at a point). */
  const checkUsedExact = () => {
    if (usedReported) return;
    const total = Atomics.load(header, MEM_TOTAL_USED);
    const sum = areaUsedSum();
    let pend = 0;
    for (let t = 0; t < nthreads; t++) pend += Atomics.load(ctl, threadBase(t) + T_PENDING_USED);
    if (total === sum - pend) return;
    usedReported = true;
    violation(`cpu ${cpu}: total_used ${total}, but the sum of area.used ${sum} less the changes not yet applied to total_used (${pend}) is ${sum - pend}: total_used ${total < sum - pend ? 'fell before the slots were freed' : 'rose before the slots were taken'}, or an update was lost`);
  };
  /** chaos: Σ area.used - allocations in flight <= total_used <= Σ area.used + releases in flight. */
  const checkUsedBounds = () => {
    if (usedReported) return;
    const allocDone = Atomics.load(ctl, CTL_ALLOC_DONE);
    const releaseDone = Atomics.load(ctl, CTL_RELEASE_DONE);
    const total = Atomics.load(header, MEM_TOTAL_USED);
    const sum = areaUsedSum();
    const allocs = (Atomics.load(ctl, CTL_ALLOC_BEGUN) - allocDone) | 0;
    const releases = (Atomics.load(ctl, CTL_RELEASE_BEGUN) - releaseDone) | 0;
    if (total < sum - allocs) {
      usedReported = true;
      violation(`cpu ${cpu}: total_used ${total} is below the sum of area.used ${sum} less the ${allocs} slot(s) of allocations in flight: total_used fell before the slots were freed, or an update was lost`);
    } else if (total > sum + releases) {
      usedReported = true;
      violation(`cpu ${cpu}: total_used ${total} is above the sum of area.used ${sum} plus the ${releases} slot(s) of releases in flight: total_used rose before the slots were taken, or an update was lost`);
    }
  };
  /** A release unlocked its area: its total_used subtract follows before this thread's next point. */
  let releaseUnlocked = false;
  const applyRelease = () => {
    releaseUnlocked = false;
    Atomics.add(ctl, CTL_RELEASE_DONE, -pending);
    setPending(0);
  };
  const shadow = (a: number) => areaShadowIndex(nthreads, nareas, a);

  const hookFn = (point: number, arg: number, words?: Int32Array): void => {
    ctl[tb + T_POINT] = point;
    if (releaseUnlocked) applyRelease();
    switch (point) {
      case P_AREA_LOCK_ENTER:
        ctl[tb + T_TAKING] = lockIndex(arg, words);
        break;
      case P_AREA_LOCK_SPIN:
        // pct: blocked until the lock word is free; chaos: a perturbation point like the others.
        // (Not progress: T_STEPS counts only points a waiting thread does not pass over and over.)
        if (sched !== null) {
          sched.pointBlocked(point, arg, words?.buffer === thrSab ? WATCH_THROTTLE : WATCH_AREAS, arg + AREA_LOCK, BLOCK_UNTIL_EQUAL, 0);
          return;
        }
        break;
      case P_AREA_LOCK_ACQUIRED: {
        const k = lockIndex(arg, words);
        ctl[tb + T_TAKING] = -1;
        ctl[tb + T_HOLDING] = k;
        if (k < 0) {
          violation(`cpu ${cpu}: a lock on a region the harness does not know (record ${arg})`);
          break;
        }
        const prev = Atomics.compareExchange(ctl, holderIndex(nthreads, k), 0, cpu + 1);
        if (prev !== 0) violation(`cpu ${cpu}: took ${lockName(k, nareas)} while cpu ${prev - 1} holds it (two threads in one critical section)`);
        if (k < nareas) {
          const sh = shadow(k);
          const used = areas[arg + AREA_USED]!;
          const index = areas[arg + AREA_INDEX]!;
          const u0 = Atomics.load(ctl, sh + AREA_SHADOW_USED);
          const i0 = Atomics.load(ctl, sh + AREA_SHADOW_INDEX);
          if (used !== u0 || index !== i0) {
            violation(`cpu ${cpu}: took ${lockName(k, nareas)} and found area.used ${used}, area.index ${index}; its last unlock left ${u0}, ${i0} (written outside the lock)`);
          }
        }
        break;
      }
      case P_AREA_UNLOCK: {
        const k = lockIndex(arg, words);
        ctl[tb + T_HOLDING] = -1;
        if (k < 0) break;
        if (k < nareas) { // still under the lock
          Atomics.store(ctl, shadow(k) + AREA_SHADOW_USED, areas[arg + AREA_USED]!);
          Atomics.store(ctl, shadow(k) + AREA_SHADOW_INDEX, areas[arg + AREA_INDEX]!);
        }
        const prev = Atomics.compareExchange(ctl, holderIndex(nthreads, k), cpu + 1, 0);
        if (prev !== cpu + 1) violation(`cpu ${cpu}: released ${lockName(k, nareas)}, which ${prev === 0 ? 'nobody' : `cpu ${prev - 1}`} held`);
        break;
      }
      case P_AREA_UNLOCKED:
        if (pending < 0 && words?.buffer === areasSab) releaseUnlocked = true;
        break;
      case P_AREA_LOCK_PARK:
        ctl[tb + T_PARK_EPISODE]++;
        Atomics.store(ctl, tb + T_PARKED, lockIndex(arg, words));
        sched?.park();
        return;
      case P_AREA_LOCK_UNPARK:
        Atomics.store(ctl, tb + T_PARKED, -1);
        sched?.unpark();
        return;
      case P_AREA_USED:
        // area.used changes right after this hook returns. In pct the step is taken first, so that no
        // other thread runs between the pending change and the area.used write.
        ctl[tb + T_STEPS]++;
        if (sched !== null) {
          checkUsedExact();
          sched.point(point, arg);
        } else {
          const r = rates[point]!;
          if (r > 0 && rng.float() < r) perturb();
        }
        Atomics.add(ctl, arg > 0 ? CTL_ALLOC_BEGUN : CTL_RELEASE_BEGUN, Math.abs(arg));
        setPending(arg);
        return;
      case P_HIWATER_UPDATE:
        // total_used has been raised: the allocation's pending change is applied.
        if (arg > opUsedMax) opUsedMax = arg;
        if (pending > 0) {
          Atomics.add(ctl, CTL_ALLOC_DONE, pending);
          setPending(0);
        }
        break;
      case P_THROTTLE_QUEUED:
        // Under throttle_sem's lock, so join numbers are the queue's order.
        myJoin = Atomics.add(ctl, CTL_SEM_JOINS, 1);
        break;
      case P_THROTTLE_ACQUIRED: {
        const waiting = Atomics.load(ctl, CTL_SEM_JOINS) - Atomics.load(ctl, CTL_SEM_GRANTS);
        if (waiting !== 0) violation(`cpu ${cpu}: took throttle_sem at once while ${waiting} waiter(s) were queued (a barge past the FIFO: no direct handoff)`);
        break;
      }
      case P_THROTTLE_WAIT:
        Atomics.store(ctl, tb + T_SEM_WAIT, 1);
        // pct: blocked while the wait record says queued, i.e. until up() hands the semaphore over.
        if (sched !== null) sched.pointBlocked(point, arg, WATCH_THROTTLE, arg, BLOCK_WHILE_EQUAL, WAITER_QUEUED);
        return;
      case P_THROTTLE_GRANTED: {
        Atomics.store(ctl, tb + T_SEM_WAIT, 0);
        // Only the holder can up(), and it must have seen its own grant first: grants are seen in order.
        const g = Atomics.add(ctl, CTL_SEM_GRANTS, 1);
        if (g !== myJoin) violation(`cpu ${cpu}: handed throttle_sem as waiter #${myJoin} in queue order, but waiter #${g} was first (FIFO broken)`);
        myJoin = -1;
        break;
      }
      case P_SLOTS_FREED:
        // up() follows: every slot of the mapping (or SG list) being unmapped must be free already.
        // A slot still holding our own original address is still ours (no other thread maps our memory).
        if (unmapping !== null) {
          const m = unmapping;
          const live = m.dataSlot.filter((s, i) => pool.origAddr[s] === m.orig[i]);
          if (live.length > 0) {
            violation(`cpu ${cpu}: throttle_sem released at unmap while ${live.length} of the ${m.dataSlot.length} entr${m.dataSlot.length === 1 ? 'y' : 'ies'} of the releasing mapping still hold slots (first data slot ${live[0]}): released before all its bounce memory is free`);
          }
        }
        break;
    }
    // A spin is a wait, not a step: the watchdog must never see a spinning thread's count move.
    if (point !== P_AREA_LOCK_SPIN) ctl[tb + T_STEPS]++;
    if (sched !== null) {
      checkUsedExact();
      sched.point(point, arg);
    } else {
      if (point === P_EXERCISER_OP || point === P_AREA_LOCK_ENTER || point === P_AREA_UNLOCKED) checkUsedBounds();
      const r = rates[point]!;
      if (r > 0 && rng.float() < r) perturb();
    }
  };

  // used_hiwater checks, with the reset rule: a generation counter (odd while a reset is under
  // way) tells whether a reset may have happened between two reads.
  let lastGen = -1;
  let lastHiwater = 0;
  let opGen = -1;
  const readHiwater = (): { gen: number; h: number } | null => {
    const g1 = Atomics.load(ctl, CTL_RESET_GEN);
    const h = Atomics.load(header, MEM_USED_HIWATER);
    const g2 = Atomics.load(ctl, CTL_RESET_GEN);
    return g1 === g2 && (g1 & 1) === 0 ? { gen: g1, h } : null;
  };
  const monotonic = (r: { gen: number; h: number }) => {
    if (r.gen === lastGen && r.h < lastHiwater) {
      violation(`cpu ${cpu}: used_hiwater fell from ${lastHiwater} to ${r.h} with no reset in between`);
    }
    lastGen = r.gen;
    lastHiwater = r.h;
  };
  const probe = {
    beforeOp: (op: number): boolean => {
      ctl[tb + T_PROGRESS] = op + 1;
      if (Atomics.load(ctl, CTL_STOP) === 1) return false;
      if (cpu === 0 && trial.hiwaterResetEvery > 0 && op > 0 && op % trial.hiwaterResetEvery === 0) {
        Atomics.add(ctl, CTL_RESET_GEN, 1);
        mem.writeUsedHiwater(0);
        Atomics.add(ctl, CTL_RESET_GEN, 1);
      }
      const r = readHiwater();
      if (r !== null) monotonic(r);
      opGen = r === null ? -1 : r.gen;
      opUsedMax = 0;
      return true;
    },
    afterMap: (ok: boolean): void => {
      if (!ok || opUsedMax === 0 || opGen < 0) return;
      const r = readHiwater();
      if (r === null || r.gen !== opGen) return;
      if (r.h < opUsedMax) {
        violation(`cpu ${cpu}: used_hiwater ${r.h} after this thread's allocation raised total_used to ${opUsedMax}`);
      }
      monotonic(r);
      if (r.gen !== res.allocUsedGen) {
        res.allocUsedGen = r.gen;
        res.allocUsedMax = 0;
      }
      if (opUsedMax > res.allocUsedMax) res.allocUsedMax = opUsedMax;
    },
    onViolation: violation,
    mapped: (m: ExerciserMapping): void => {
      if (!m.throttled) return;
      const prev = Atomics.compareExchange(ctl, CTL_THROTTLED_HOLDER, 0, cpu + 1);
      if (prev !== 0) violation(`cpu ${cpu}: a mapping came back flagged throttled while cpu ${prev - 1} has a live throttled mapping (two holders of throttle_sem)`);
    },
    unmapping: (m: ExerciserMapping): void => {
      unmapping = m;
      if (m.throttled) Atomics.compareExchange(ctl, CTL_THROTTLED_HOLDER, cpu + 1, 0);
    },
    unmapped: (): void => {
      unmapping = null;
    },
  };

  setMutant(p.mutantId);
  setInstrumentHook(hookFn);
  try {
    // Start together: pct waits for its first turn, chaos for every thread to be ready.
    if (sched !== null) sched.start();
    else {
      Atomics.add(ctl, CTL_READY, 1);
      while (Atomics.load(ctl, CTL_READY) < nthreads) {
        Atomics.wait(ctl, CTL_READY, Atomics.load(ctl, CTL_READY), 50);
        if (aborted()) throw new StressAbort();
      }
      Atomics.notify(ctl, CTL_READY);
    }
    ctl[tb + T_STARTED] = 1;
    res.exerciser = runExerciser(p.exerciser, probe);
  } catch (e) {
    if (e instanceof StressAbort) res.aborted = true;
    else {
      res.error = e instanceof Error ? (debugOn() ? (e.stack ?? e.message) : `${e.name}: ${e.message}`) : String(e);
      Atomics.store(ctl, CTL_STOP, 1);
      report(`cpu ${cpu}: ${res.error}`); // at once: the result may be long in coming if others now wait on a lock we hold
    }
  } finally {
    if (releaseUnlocked) applyRelease(); // the last unmap's (pct: this thread still holds the turn)
    setInstrumentHook(null);
    setMutant(0);
    sched?.finish();
    Atomics.store(ctl, tb + T_DONE, 1);
    if (spinSink === 0.5) report('unreachable'); // keeps the perturbation spin from being optimised away
  }
  return res;
}
