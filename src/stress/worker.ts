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
//
// Every pool counts: total_used is checked against area.used of the default pool, of every
// published dynamic pool and of every live transient pool (TR_LIVE). A transient pool's slots enter
// total_used at its search but its area is a live pool's only from its link (P_TRANSIENT_LINKED),
// and leave total_used at swiotlb_del_transient before it stops being live (P_TRANSIENT_RETIRED):
// those windows are in-flight changes like the others (pending, and the begun/done counters).
// Dynamic swiotlb adds, with the checks stated where they are made:
//   - between operations, with no growth in progress (the growth worker's seqcount even and
//     unchanged): mem->nslabs equals the sum of the non-transient pools' nslabs (the pool table);
//   - pct, at a moment when every vCPU is between operations (or has not started, or is done) and
//     the growth worker is idle: total_used equals the slots of every live mapping of every thread
//     (transient ones included), and io_tlb_transient_nslabs the slots of the live transient ones;
//   - the transient shadow (layout.ts TS_*): a transient pool is freed exactly once, only after its
//     mapping's unmap began and, if it copies back, after the copy-back (P_TRANSIENT_COPIED);
//   - a mapping lies wholly in one pool (the exerciser), and a thread never takes in a published
//     pool whose ready word is not set (the core's own check, dynamic.ts poolViews).
// The growth worker of a dynamic trial is a thread of this module too (role 'grower'): it runs the
// growth work and the reclaim passes of workers/swiotlb-dyn.ts with the hook installed, so its
// points are perturbed (chaos) or scheduled (pct) like the vCPUs'.
import { runExerciser, type ExerciserConfig, type ExerciserResult } from '../swiotlb/exerciser.js';
import { type ExerciserMapping } from '../swiotlb/exerciser.js';
import {
  P_AREA_LOCK_ACQUIRED, P_AREA_LOCK_ENTER, P_AREA_LOCK_PARK, P_AREA_LOCK_SPIN, P_AREA_LOCK_UNPARK, P_AREA_UNLOCK,
  P_AREA_UNLOCKED, P_AREA_USED, P_EXERCISER_OP, P_HIWATER_UPDATE, P_SLOTS_FREED, P_THROTTLE_ACQUIRED, P_THROTTLE_GRANTED,
  P_THROTTLE_QUEUED, P_THROTTLE_WAIT, P_GROWTH_IDLE, P_GROWTH_SCHEDULED, P_TRANSIENT_COPIED, P_TRANSIENT_DEL,
  P_POOL_PUBLISHED, P_TRANSIENT_FREE, P_TRANSIENT_LINKED, P_TRANSIENT_RECLAIM, P_TRANSIENT_RETIRED, setInstrumentHook,
} from '../swiotlb/instrument.js';
import {
  AREA_INDEX, AREA_INTS, AREA_LOCK, AREA_USED, MEM_NPOOLS, MEM_NSLABS, MEM_TOTAL_USED, MEM_TRANSIENT_NSLABS,
  MEM_USED_HIWATER, TR_META_BYTES, WAITER_QUEUED, DYN_MAX_READERS, TR_GEN, TR_INTS, dynTransientTable,
} from '../swiotlb/layout.js';
import { IoTlbMem } from '../swiotlb/mem.js';
import { DMA_BIDIRECTIONAL, DMA_FROM_DEVICE } from '../swiotlb/constants.js';
import { AtomicPool } from '../memory/atomic-pool.js';
import { DecryptedArena } from '../memory/arena.js';
import { GuestPhysMem } from '../memory/phys.js';
import { PoolCounters, WATCH_AREAS, WATCH_CTL, WATCH_THROTTLE, ctlThreads, watchOf, watchedArrays } from './pools.js';
import { setMutant } from '../swiotlb/mutants.js';
import { debugOn } from '../cli/main.js';
import { Rng } from '../util/rng.js';
import type { TrialConfig } from './config.js';
import {
  AREA_SHADOW_INDEX, AREA_SHADOW_USED, CTL_ABORT, CTL_ALLOC_BEGUN, CTL_ALLOC_DONE, CTL_GROWER_SEQ, CTL_GROWER_WAKE,
  CTL_NSLABS_CHECKS, CTL_QUIESCENT_CHECKS, CTL_READY, CTL_RELEASE_BEGUN, CTL_RELEASE_DONE, CTL_RESET_GEN, CTL_SEM_GRANTS,
  CTL_SEM_JOINS, CTL_STOP, CTL_THROTTLED_HOLDER, CTL_TR_FREES, CTL_VCPUS_DONE, CTL_VIOLATIONS, T_DONE, T_HOLDING,
  T_LIVE_SLOTS, T_LIVE_TRANSIENT, T_PARKED, T_PARK_EPISODE, T_PENDING_USED, T_POINT, T_PROGRESS, T_SEM_WAIT, T_STARTED,
  T_STEPS, T_TAKING, TS_COPY_PENDING, TS_CPU, TS_FREED, TS_FREED_GEN, TS_GEN, TS_MAPPED, TS_NAMES, TS_NONE, TS_STATE, TS_UNMAPPING,
  areaShadowIndex, holderIndex, lockName, threadBase, transientShadowIndex,
} from './layout.js';
import { BLOCK_UNTIL_EQUAL, BLOCK_WHILE_EQUAL, PctThread, StressAbort } from './pct.js';


export interface StressThreadPayload {
  trial: TrialConfig;
  /** A vCPU running the checked workload, or (dynamic trials) the growth worker. */
  role: 'vcpu' | 'grower';
  cpu: number;
  /** 0 for the real core, else the mutant's id (src/swiotlb/mutants.ts). */
  mutantId: number;
  exerciser: ExerciserConfig;
  control: SharedArrayBuffer;
  /** Dynamic trials: the lock and area shadows of the pools in the metadata arena (3 Int32 per metadata word), else null. */
  metaShadow: SharedArrayBuffer | null;
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
  /** The growth worker's runs of the growth work and the pools it added (role 'grower'). */
  grower: { runs: number; pools: number } | null;
}

/** Most violations a thread streams to the main thread (the rest are counted). */
const MAX_STREAMED = 5;

export function runStressThread(p: StressThreadPayload, report: (msg: string) => void): StressThreadResult {
  const { trial, cpu } = p;
  const ctl = new Int32Array(p.control);
  const tb = threadBase(cpu);
  const nthreads = ctlThreads(trial);
  const nvcpus = trial.vcpus;
  const shared = p.exerciser.shared;
  const memory = p.exerciser.memory;
  const growerRole = p.role === 'grower';
  let dynMemory;
  if (growerRole && memory !== undefined) {
    const phys = GuestPhysMem.attach(memory.phys);
    const arena = DecryptedArena.attach(memory.arena);
    dynMemory = { phys, arena, atomicPool: AtomicPool.attach(memory.atomicPool, phys, arena), setMemoryDecrypted: () => {} };
  }
  const mem = IoTlbMem.attach(shared, { cpu, ...(dynMemory !== undefined ? { memory: dynMemory } : {}) });
  const areas = mem.defpool.areas;
  const thr = mem.throttle.i32;
  const header = mem.header;
  const nareas = trial.nareas;
  const counters = new PoolCounters(header, shared, nareas);
  const dynOn = shared.dyn !== undefined;
  const metaSab = shared.dyn?.meta;
  /** Transient pools' metadata blocks come first in the metadata arena (dynamic.ts). */
  const transientMetaEnd = (trial.dynamic?.maxTransient ?? 0) * TR_META_BYTES;
  const tshadow = (rec: number) => transientShadowIndex(nthreads, nareas, rec);
  const dynRegion = shared.dyn !== undefined ? new Int32Array(shared.dyn.region) : null;
  const trTable = dynRegion !== null ? dynTransientTable(dynRegion[DYN_MAX_READERS]!) : 0;
  const rng = new Rng((trial.seed ^ Math.imul(cpu + 1, 0x9e3779b1)) >>> 0);
  const rates = Float64Array.from(trial.perturb.rates);
  const [kSpin, kYield, kPark] = trial.perturb.kinds;
  const kTotal = kSpin + kYield + kPark;
  const scratch = new Int32Array(new SharedArrayBuffer(4));
  const aborted = () => Atomics.load(ctl, CTL_ABORT) === 1;
  const watched = watchedArrays(shared, memory, ctl);
  const sched = p.pct !== null ? new PctThread(p.pct, cpu, watched, aborted) : null;
  const res: StressThreadResult = {
    cpu, exerciser: null, aborted: false, error: null, perturbations: 0, allocUsedMax: 0, allocUsedGen: 0, grower: null,
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
  const areaUsedSum = () => counters.areaUsedSum();
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
  // Dynamic swiotlb: a transient pool's creation (its slots in total_used before the pool is live)
  // and deletion (out of total_used before it stops being live) in progress, their slots.
  let trCreate = 0;
  let trDel = 0;
  let trDelApply = false; // dec_used follows the P_TRANSIENT_DEL hook: pending from the next point on
  /**
   * mem->nslabs equals the sum of the non-transient pools' nslabs. Exact only with no growth in
   * progress: the growth worker's seqcount is even and unchanged across the reads (add_mem_pool adds
   * to nslabs and publishes inside an odd stretch). Stress trials never run the hybrid policy, whose
   * mapping threads may add pools too (hybrid.ts): the growth worker is the only one that grows.
   */
  const checkNslabs = () => {
    const s1 = Atomics.load(ctl, CTL_GROWER_SEQ);
    if ((s1 & 1) !== 0) return;
    const n = Atomics.load(header, MEM_NPOOLS);
    const nslabs = Atomics.load(header, MEM_NSLABS);
    const sum = counters.tableNslabs(n);
    if (Atomics.load(ctl, CTL_GROWER_SEQ) !== s1 || Atomics.load(header, MEM_NPOOLS) !== n) return;
    Atomics.add(ctl, CTL_NSLABS_CHECKS, 1);
    if (nslabs !== sum) violation(`cpu ${cpu}: mem->nslabs ${nslabs}, but the ${n} pools of the pool table (default and dynamic) hold ${sum} slots (no growth in progress): nslabs counts a transient pool, or missed a growth`);
  };
  /**
   * pct, every vCPU between operations (or not started, or done) and the growth worker idle: nothing
   * is in flight, so total_used equals the slots of every thread's live mappings, and
   * io_tlb_transient_nslabs those in transient pools.
   */
  const checkQuiescentSums = () => {
    if (pending !== 0 || trCreate !== 0 || trDel !== 0) return;
    for (let t = 0; t < nthreads; t++) {
      if (t === cpu) continue;
      const b = threadBase(t);
      if (Atomics.load(ctl, b + T_DONE) === 1) continue;
      const pt = Atomics.load(ctl, b + T_POINT);
      if (pt !== 0 && pt !== (t < nvcpus ? P_EXERCISER_OP : P_GROWTH_IDLE)) return;
    }
    let live = 0;
    let liveTr = 0;
    for (let t = 0; t < nvcpus; t++) {
      live += Atomics.load(ctl, threadBase(t) + T_LIVE_SLOTS);
      liveTr += Atomics.load(ctl, threadBase(t) + T_LIVE_TRANSIENT);
    }
    Atomics.add(ctl, CTL_QUIESCENT_CHECKS, 1);
    const total = Atomics.load(header, MEM_TOTAL_USED);
    const tr = Atomics.load(header, MEM_TRANSIENT_NSLABS);
    if (total !== live) violation(`cpu ${cpu}: total_used ${total} with every thread between operations, but their live mappings hold ${live} slots (transient ones included: ${liveTr})`);
    else if (tr !== liveTr) violation(`cpu ${cpu}: io_tlb_transient_nslabs ${tr} with every thread between operations, but live mappings in transient pools hold ${liveTr} slots`);
  };
  /** The core's generation of transient record `rec` (TR_GEN: bumped at each reuse, stable from its claim to its free). */
  const trGen = (rec: number) => Atomics.load(dynRegion!, trTable + rec * TR_INTS + TR_GEN);
  /** The transient shadow at a free of record `rec`'s memory: once per generation, after the unmap and its copy-back. */
  const transientFreed = (rec: number) => {
    const b = tshadow(rec);
    const gen = trGen(rec);
    if (Atomics.exchange(ctl, b + TS_FREED_GEN, gen) === gen) {
      violation(`cpu ${cpu}: transient pool ${rec} (generation ${gen})'s memory went back to the atomic pool a second time (a transient pool is freed exactly once)`);
      return;
    }
    Atomics.add(ctl, CTL_TR_FREES, 1);
    if (Atomics.load(ctl, b + TS_GEN) !== gen) return; // never seen mapped (an SG list rolled back): only the once applies
    const st = Atomics.exchange(ctl, b + TS_STATE, TS_FREED);
    if (st === TS_UNMAPPING) return;
    const owner = Atomics.load(ctl, b + TS_CPU) - 1;
    const why = st === TS_COPY_PENDING ? `before its mapping's copy-back (cpu ${owner}'s unmap has not copied back yet)`
      : st === TS_MAPPED ? `while cpu ${owner}'s mapping in it is live` : `in state ${TS_NAMES[st]}`;
    violation(`cpu ${cpu}: transient pool ${rec}'s memory went back to the atomic pool ${why}`);
  };
  // The lock and area shadows of the pools in the metadata arena (dynamic and transient pools), as
  // the default pool's above: three words per metadata word w (the area record's lock word): the
  // holder (cpu + 1), and area.used and area.index as the last unlock left them. The area shadow
  // is kept for dynamic pools only: a transient pool's areas are reset by its (unlocked) init at
  // each reuse, before it is published.
  const metaShadow = p.metaShadow !== null ? new Int32Array(p.metaShadow) : null;
  const metaAcquired = (words: Int32Array, arg: number) => {
    const w = words.byteOffset / 4 + arg;
    const prev = Atomics.compareExchange(metaShadow!, 3 * w, 0, cpu + 1);
    const what = words.byteOffset < transientMetaEnd ? 'a transient pool\'s area lock' : `the area lock at word ${w} of a dynamic pool`;
    if (prev !== 0) violation(`cpu ${cpu}: took ${what} while cpu ${prev - 1} holds it (two threads in one critical section)`);
    if (words.byteOffset < transientMetaEnd) return;
    const used = words[arg + AREA_USED]!;
    const index = words[arg + AREA_INDEX]!;
    const u0 = Atomics.load(metaShadow!, 3 * w + 1);
    const i0 = Atomics.load(metaShadow!, 3 * w + 2);
    if (used !== u0 || index !== i0) violation(`cpu ${cpu}: took ${what} and found area.used ${used}, area.index ${index}; its last unlock left ${u0}, ${i0} (written outside the lock)`);
  };
  const metaUnlock = (words: Int32Array, arg: number) => {
    const w = words.byteOffset / 4 + arg;
    if (words.byteOffset >= transientMetaEnd) { // still under the lock
      Atomics.store(metaShadow!, 3 * w + 1, words[arg + AREA_USED]!);
      Atomics.store(metaShadow!, 3 * w + 2, words[arg + AREA_INDEX]!);
    }
    const prev = Atomics.compareExchange(metaShadow!, 3 * w, cpu + 1, 0);
    if (prev !== cpu + 1) violation(`cpu ${cpu}: released the area lock at metadata word ${w}, which ${prev === 0 ? 'nobody' : `cpu ${prev - 1}`} held`);
  };
  /** A pool's areas whose lock this is, with no lock shadow: a dynamic or transient pool, mem->lock, a device list, the atomic pool. */
  const knownRegion = (words: Int32Array | undefined) => watchOf(watched, words) !== null;
  const hookFn = (point: number, arg: number, words?: Int32Array): void => {
    ctl[tb + T_POINT] = point;
    if (releaseUnlocked) applyRelease();
    if (trDelApply) {
      trDelApply = false;
      setPending(trDel); // total_used is trDel below Σ area.used until the pool stops being live
    }
    switch (point) {
      case P_AREA_LOCK_ENTER:
        ctl[tb + T_TAKING] = lockIndex(arg, words);
        break;
      case P_AREA_LOCK_SPIN:
        // pct: blocked until the lock word is free; chaos: a perturbation point like the others.
        // (Not progress: T_STEPS counts only points a waiting thread does not pass over and over.)
        if (sched !== null) {
          const w = watchOf(watched, words);
          if (w === null) {
            violation(`cpu ${cpu}: spins on a lock in a region the harness does not watch (record ${arg})`);
            sched.pointBlocked(point, arg, WATCH_AREAS, arg + AREA_LOCK, BLOCK_UNTIL_EQUAL, 0);
          } else sched.pointBlocked(point, arg, w.array, w.base + arg + AREA_LOCK, BLOCK_UNTIL_EQUAL, 0);
          return;
        }
        break;
      case P_AREA_LOCK_ACQUIRED: {
        const k = lockIndex(arg, words);
        ctl[tb + T_TAKING] = -1;
        ctl[tb + T_HOLDING] = k;
        if (k < 0) {
          if (metaShadow !== null && words!.buffer === metaSab) metaAcquired(words!, arg);
          else if (!knownRegion(words)) violation(`cpu ${cpu}: a lock on a region the harness does not know (record ${arg})`);
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
        if (k < 0) {
          if (metaShadow !== null && words!.buffer === metaSab) metaUnlock(words!, arg);
          break;
        }
        if (k < nareas) { // still under the lock
          Atomics.store(ctl, shadow(k) + AREA_SHADOW_USED, areas[arg + AREA_USED]!);
          Atomics.store(ctl, shadow(k) + AREA_SHADOW_INDEX, areas[arg + AREA_INDEX]!);
        }
        const prev = Atomics.compareExchange(ctl, holderIndex(nthreads, k), cpu + 1, 0);
        if (prev !== cpu + 1) violation(`cpu ${cpu}: released ${lockName(k, nareas)}, which ${prev === 0 ? 'nobody' : `cpu ${prev - 1}`} held`);
        break;
      }
      case P_AREA_UNLOCKED:
        // A release's area lock (the default pool's, or a dynamic pool's in the metadata arena).
        if (pending < 0 && trCreate === 0 && (words?.buffer === areasSab || (metaSab !== undefined && words?.buffer === metaSab))) releaseUnlocked = true;
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
      case P_AREA_USED: {
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
        // A transient pool's search: its area is no live pool's yet (the record is linked later), so
        // Σ area.used does not move now; total_used will rise first, and Σ at P_TRANSIENT_LINKED.
        // Its change is counted in both classes of the chaos bounds: they read total_used before Σ,
        // which brackets a change that moves Σ first in one direction only, and this one moves
        // total_used first (so does a deletion).
        if (words !== undefined && words.buffer === metaSab && words.byteOffset < transientMetaEnd) {
          Atomics.add(ctl, CTL_RELEASE_BEGUN, arg);
          Atomics.add(ctl, CTL_ALLOC_BEGUN, arg);
          trCreate = arg;
          return;
        }
        Atomics.add(ctl, arg > 0 ? CTL_ALLOC_BEGUN : CTL_RELEASE_BEGUN, Math.abs(arg));
        setPending(arg);
        return;
      }
      case P_HIWATER_UPDATE:
        // total_used has been raised: the allocation's pending change is applied.
        if (arg > opUsedMax) opUsedMax = arg;
        if (pending > 0) {
          Atomics.add(ctl, CTL_ALLOC_DONE, pending);
          setPending(0);
        }
        if (trCreate > 0) setPending(-trCreate); // a transient pool's: total_used is above Σ until it is linked
        break;
      case P_TRANSIENT_LINKED:
        if (trCreate > 0) { // the pool is live: Σ area.used has its slots now
          Atomics.add(ctl, CTL_ALLOC_DONE, trCreate);
          Atomics.add(ctl, CTL_RELEASE_DONE, trCreate);
          setPending(0);
          trCreate = 0;
        }
        break;
      case P_TRANSIENT_DEL:
        // dec_used follows: total_used falls arg below Σ until the pool stops being live (both classes, as above).
        Atomics.add(ctl, CTL_ALLOC_BEGUN, arg);
        Atomics.add(ctl, CTL_RELEASE_BEGUN, arg);
        trDel = arg;
        trDelApply = true;
        break;
      case P_TRANSIENT_RETIRED:
        if (trDel > 0) {
          Atomics.add(ctl, CTL_ALLOC_DONE, trDel);
          Atomics.add(ctl, CTL_RELEASE_DONE, trDel);
          setPending(0);
          trDel = 0;
        }
        break;
      case P_TRANSIENT_FREE:
        transientFreed(arg);
        break;
      case P_TRANSIENT_COPIED: {
        // The copy-back of a transient mapping's unmap (the CPU sync): it may be freed from now on.
        const i = tshadow(arg) + TS_STATE;
        const st = Atomics.compareExchange(ctl, i, TS_COPY_PENDING, TS_UNMAPPING);
        if (st === TS_FREED) violation(`cpu ${cpu}: copy-back from transient pool ${arg} after its memory went back to the atomic pool`);
        break;
      }
      case P_GROWTH_SCHEDULED:
        Atomics.store(ctl, CTL_GROWER_WAKE, 1); // pct: the growth worker is runnable
        break;
      case P_POOL_PUBLISHED:
      case P_TRANSIENT_RECLAIM:
        sched?.demote(); // pct: a forced change point (pct.ts), so other threads run in the window after it
        break;
      case P_EXERCISER_OP:
        if (dynOn) checkNslabs();
        if (sched !== null) checkQuiescentSums();
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
          // (A transient pool's metadata is not reset at its deletion: its entries are checked by the transient shadow.)
          const live = m.dataSlot.filter((s, i) => m.rec[i]! < 0 && m.pools[i]!.origAddr[s] === m.orig[i]);
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
      // Slots of this thread's live mappings (the quiescent sums), and the transient shadow.
      let slots = 0;
      let trSlots = 0;
      for (let i = 0; i < m.nslots.length; i++) {
        slots += m.nslots[i]!;
        const rec = m.rec[i]!;
        if (rec < 0) continue;
        trSlots += m.nslots[i]!;
        const st = Atomics.load(ctl, tshadow(rec) + TS_STATE);
        if (st !== TS_NONE && st !== TS_FREED) {
          violation(`cpu ${cpu}: a map came back in transient pool ${rec} while its last mapping (cpu ${Atomics.load(ctl, tshadow(rec) + TS_CPU) - 1}) is ${TS_NAMES[st]}: the pool was handed out again before it was freed`);
        }
        Atomics.store(ctl, tshadow(rec) + TS_CPU, cpu + 1);
        Atomics.store(ctl, tshadow(rec) + TS_GEN, trGen(rec));
        Atomics.store(ctl, tshadow(rec) + TS_STATE, TS_MAPPED);
      }
      Atomics.add(ctl, tb + T_LIVE_SLOTS, slots);
      Atomics.add(ctl, tb + T_LIVE_TRANSIENT, trSlots);
      if (!m.throttled) return;
      const prev = Atomics.compareExchange(ctl, CTL_THROTTLED_HOLDER, 0, cpu + 1);
      if (prev !== 0) violation(`cpu ${cpu}: a mapping came back flagged throttled while cpu ${prev - 1} has a live throttled mapping (two holders of throttle_sem)`);
    },
    unmapping: (m: ExerciserMapping): void => {
      unmapping = m;
      const copies = m.dir === DMA_FROM_DEVICE || m.dir === DMA_BIDIRECTIONAL;
      for (const rec of m.rec) {
        if (rec >= 0) Atomics.compareExchange(ctl, tshadow(rec) + TS_STATE, TS_MAPPED, copies ? TS_COPY_PENDING : TS_UNMAPPING);
      }
      if (m.throttled) Atomics.compareExchange(ctl, CTL_THROTTLED_HOLDER, cpu + 1, 0);
    },
    unmapped: (): void => {
      const m = unmapping;
      if (m !== null) {
        let slots = 0;
        let trSlots = 0;
        for (let i = 0; i < m.nslots.length; i++) {
          slots += m.nslots[i]!;
          if (m.rec[i]! >= 0) trSlots += m.nslots[i]!;
        }
        Atomics.sub(ctl, tb + T_LIVE_SLOTS, slots);
        Atomics.sub(ctl, tb + T_LIVE_TRANSIENT, trSlots);
      }
      unmapping = null;
    },
  };

  /**
   * The growth worker of a dynamic trial (workers/swiotlb-dyn.ts's loop, with the hook installed):
   * the growth work when a failed search queued it, else a reclaim pass, then a wait for work (pct:
   * blocked on CTL_GROWER_WAKE; chaos: parked on the work item's doorbell, 2 ms at most). The
   * seqcount CTL_GROWER_SEQ is odd while swiotlb_dyn_alloc runs. It exits once every vCPU is done,
   * after a last reclaim pass (no reader is left, so every retired transient pool is freed).
   */
  const growthWorker = () => {
    const dyn = mem.dyn!;
    const g = { runs: 0, pools: 0 };
    res.grower = g;
    for (;;) {
      if (aborted()) throw new StressAbort();
      if (dyn.takeWork()) {
        Atomics.add(ctl, CTL_GROWER_SEQ, 1);
        try {
          g.runs++;
          if (dyn.dynAlloc().ok) g.pools++;
        } finally {
          Atomics.add(ctl, CTL_GROWER_SEQ, 1);
        }
        continue;
      }
      dyn.reclaim();
      if (Atomics.load(ctl, CTL_VCPUS_DONE) >= nvcpus) break;
      ctl[tb + T_POINT] = P_GROWTH_IDLE;
      if (sched !== null) {
        sched.pointBlocked(P_GROWTH_IDLE, 0, WATCH_CTL, CTL_GROWER_WAKE, BLOCK_WHILE_EQUAL, 0);
        Atomics.store(ctl, CTL_GROWER_WAKE, 0);
      } else dyn.parkWorker(2);
    }
    dyn.reclaim();
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
    if (growerRole) growthWorker();
    else res.exerciser = runExerciser(p.exerciser, probe);
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
    if (!growerRole) {
      Atomics.add(ctl, CTL_VCPUS_DONE, 1);
      Atomics.store(ctl, CTL_GROWER_WAKE, 1); // pct: the growth worker looks again (and exits after the last vCPU)
    }
    Atomics.store(ctl, tb + T_DONE, 1); // before the turn is passed on: what the next thread sees of us is fixed (pct replays exactly)
    sched?.finish();
    if (spinSink === 0.5) report('unreachable'); // keeps the perturbation spin from being optimised away
  }
  return res;
}
