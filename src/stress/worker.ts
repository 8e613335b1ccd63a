// One vCPU thread of a stress trial: installs the instrumentation hook (and the trial's mutant, if
// any) on this thread, runs the checked workload (src/swiotlb/exerciser.ts) against the shared pool,
// and reports. workers/stress.ts is its entry point.
//
// The hook, at every instrumentation point:
//   - keeps this thread's record in the control block (layout.ts): the last point, the area lock
//     it is taking, holds or is parked on, so the watchdog can say who holds what and who waits;
//   - keeps the lock shadow: at "acquired" it claims the area with compare-exchange (cpu + 1), at
//     "unlock" it releases it; finding it taken means two threads are inside one critical section;
//   - notes the total_used each allocation reached (the hiwater point's datum);
//   - chaos mode: with the trial's probability for that point, inserts a busy spin, a yield or a
//     short park; pct mode: hands the step to the scheduler (pct.ts).
// Around each map it checks used_hiwater (§18.7, §18.8): never lower than a value read before
// without a reset in between, and at least the total_used this thread's allocation reached.
import { runExerciser, type ExerciserConfig, type ExerciserResult } from '../swiotlb/exerciser.js';
import {
  P_AREA_LOCK_ACQUIRED, P_AREA_LOCK_ENTER, P_AREA_LOCK_PARK, P_AREA_LOCK_UNPARK, P_AREA_UNLOCK, P_HIWATER_UPDATE,
  setInstrumentHook,
} from '../swiotlb/instrument.js';
import { AREA_INTS, MEM_USED_HIWATER } from '../swiotlb/layout.js';
import { IoTlbMem } from '../swiotlb/mem.js';
import { setMutant } from '../swiotlb/mutants.js';
import { Rng } from '../util/rng.js';
import type { TrialConfig } from './config.js';
import {
  CTL_ABORT, CTL_READY, CTL_RESET_GEN, CTL_STOP, CTL_VIOLATIONS, T_DONE, T_HOLDING, T_PARKED, T_PARK_EPISODE,
  T_POINT, T_PROGRESS, T_STARTED, T_STEPS, T_TAKING, holderIndex, threadBase,
} from './layout.js';
import { PctThread, StressAbort } from './pct.js';

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
  const header = mem.header;
  const rng = new Rng((trial.seed ^ Math.imul(cpu + 1, 0x9e3779b1)) >>> 0);
  const rates = Float64Array.from(trial.perturb.rates);
  const [kSpin, kYield, kPark] = trial.perturb.kinds;
  const kTotal = kSpin + kYield + kPark;
  const scratch = new Int32Array(new SharedArrayBuffer(4));
  const aborted = () => Atomics.load(ctl, CTL_ABORT) === 1;
  const sched = p.pct !== null ? new PctThread(p.pct, cpu, areas, aborted) : null;
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

  const hookFn = (point: number, arg: number): void => {
    ctl[tb + T_POINT] = point;
    ctl[tb + T_STEPS]++;
    switch (point) {
      case P_AREA_LOCK_ENTER:
        ctl[tb + T_TAKING] = arg / AREA_INTS;
        break;
      case P_AREA_LOCK_ACQUIRED: {
        const a = arg / AREA_INTS;
        ctl[tb + T_TAKING] = -1;
        ctl[tb + T_HOLDING] = a;
        const prev = Atomics.compareExchange(ctl, holderIndex(nthreads, a), 0, cpu + 1);
        if (prev !== 0) violation(`cpu ${cpu}: took area ${a}'s lock while cpu ${prev - 1} holds it (two threads in one critical section)`);
        break;
      }
      case P_AREA_UNLOCK: {
        const a = arg / AREA_INTS;
        ctl[tb + T_HOLDING] = -1;
        const prev = Atomics.compareExchange(ctl, holderIndex(nthreads, a), cpu + 1, 0);
        if (prev !== cpu + 1) violation(`cpu ${cpu}: released area ${a}'s lock, which ${prev === 0 ? 'nobody' : `cpu ${prev - 1}`} held`);
        break;
      }
      case P_AREA_LOCK_PARK:
        ctl[tb + T_PARK_EPISODE]++;
        Atomics.store(ctl, tb + T_PARKED, arg / AREA_INTS);
        sched?.park();
        return;
      case P_AREA_LOCK_UNPARK:
        Atomics.store(ctl, tb + T_PARKED, -1);
        sched?.unpark();
        return;
      case P_HIWATER_UPDATE:
        if (arg > opUsedMax) opUsedMax = arg;
        break;
    }
    if (sched !== null) sched.point(point, arg);
    else {
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
      res.error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      Atomics.store(ctl, CTL_STOP, 1);
      report(`cpu ${cpu}: ${res.error}`); // at once: the result may be long in coming if others now wait on a lock we hold
    }
  } finally {
    setInstrumentHook(null);
    setMutant(0);
    sched?.finish();
    Atomics.store(ctl, tb + T_DONE, 1);
    if (spinSink === 0.5) report('unreachable'); // keeps the perturbation spin from being optimised away
  }
  return res;
}
