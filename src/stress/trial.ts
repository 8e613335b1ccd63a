// One stress trial, main-thread side: build the pool and the shared memory from the configuration,
// run the vCPU threads (kept alive between trials in a StressWorkerPool), watch them, and check the
// quiescent state when they are done.
//
// The watchdog polls the control block every POLL_MS:
//   - a stall: no unfinished thread has made progress (operations, and instrumentation points other
//     than spins, parks and waits) for watchdogMs (chaos), or the pct schedule has made no step for
//     watchdogMs; or one thread has made none for STARVED_FACTOR x watchdogMs while others went on.
//     (One thread alone may wait a while: the area lock lets spinners barge past a woken waiter, and
//     a 2-core machine shared with 64 threads and other work can leave a thread unscheduled for
//     seconds.) It reports who holds which lock, who is taking or parked on which, then aborts;
//   - every unfinished thread parked on an area lock, each in the same park, for LOST_WAKEUP_GRACE_MS,
//     is a lost wakeup. Sound because a parked thread waits for a holder, a holder is not parked,
//     and the unlock that frees a lock word with waiters wakes one of them: when nobody is left to
//     unlock, a correct lock has already woken everybody (the grace covers the OS getting round to
//     running a woken thread; the stress park timeout, COCO_STRESS_PARK_TIMEOUT, is far longer);
//     [RFC] A thread waiting for throttle_sem counts as parked: a waiter waits for the holder's unmap,
//     and the harness's workload never waits while it holds the semaphore itself;
//   - pct: a thread that found nobody runnable (a deadlock of the schedule).
import { Worker } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ExerciserConfig } from '../swiotlb/exerciser.js';
import { POINT_NAMES } from '../swiotlb/instrument.js';
import {
  AREA_INTS, AREA_LOCK, THR_HOLDER_KIND, THR_HOLDER_VCPU, THR_QUEUE_LEN, THR_SEM_COUNT, THR_SEM_LOCK_RECORD,
  THROTTLE_HOLDER_MAPPING, THROTTLE_HOLDER_NONE,
} from '../swiotlb/layout.js';
import { IoTlbMem } from '../swiotlb/mem.js';
import { IO_TLB_SEGSIZE, IO_TLB_SIZE, PAGE_SIZE, POOL_START } from '../swiotlb/constants.js';
import { DYN_POOL_MAX_SLABS } from '../swiotlb/dynamic.js';
import { bootGuestMemory } from '../memory/boot.js';
import { PHYS_4G } from '../memory/phys.js';
import { ctlThreads, watchedArrays } from './pools.js';
import { GUEST_BASE } from '../memory/guest.js';
import { mutantByName } from '../swiotlb/mutants.js';
import { quiescenceViolations } from '../swiotlb/quiesce.js';
import { workerFile } from '../util/worker-file.js';
import { DYN_TRIAL_MEM_BYTES, type TrialConfig, regionBytes } from './config.js';
import {
  CTL_ABORT, CTL_ALLOC_BEGUN, CTL_ALLOC_DONE, CTL_NSLABS_CHECKS, CTL_QUIESCENT_CHECKS, CTL_RELEASE_BEGUN, CTL_RELEASE_DONE, CTL_RESET_GEN,
  CTL_SEM_GRANTS, CTL_SEM_JOINS, CTL_STOP, CTL_THROTTLED_HOLDER, CTL_TR_FREES, CTL_VIOLATIONS, TS_FREED, TS_NAMES, TS_NONE, TS_STATE, T_DONE,
  T_HOLDING, T_PARKED, T_PARK_EPISODE, T_POINT, T_PROGRESS, T_SEM_WAIT, T_STARTED, T_STEPS, T_TAKING, createControl,
  holderIndex, lockName, threadBase, transientShadowIndex,
} from './layout.js';
import { type PctSummary, createPctState, pctDescribe, pctSummary, pctTryStart } from './pct.js';
import type { StressThreadPayload, StressThreadResult } from './worker.js';

const POLL_MS = 20;
/** How long every unfinished thread may sit parked before it is a lost wakeup. */
export const LOST_WAKEUP_GRACE_MS = 2000;
/** One thread without progress this many watchdog periods, while others go on, is stuck (or starved). */
const STARVED_FACTOR = 6;
/** After the first broken check, how long the other threads get to stop before they are ended. */
const FAILURE_GRACE_MS = 3000;
/** How long after an abort the threads get to return before they are terminated. */
const ABORT_GRACE_MS = 500;
const MAX_FAILURES = 24;

export interface TrialOptions {
  /** A thread without progress this long is a stall. */
  watchdogMs: number;
  /** performance.now() at which the run ends: a trial still running is told to stop (and is still checked). */
  deadline: number;
  /** Longest trial: one running longer is told to stop. */
  maxTrialMs: number;
}

export interface TrialOutcome {
  config: TrialConfig;
  /** Every broken check, one line each; empty when the trial passed. */
  failures: string[];
  /** Map attempts plus unmaps. */
  ops: number;
  maps: number;
  mapFailures: number;
  /** chaos: perturbations inserted; pct: turns handed from one thread to another. */
  perturbations: number;
  durationMs: number;
  pct: PctSummary | null;
  /** The watchdog ended the trial. */
  stalled: boolean;
  /** [RFC] Maps that came back flagged throttled, and throttle_sem waits. */
  throttledMaps: number;
  throttleWaits: number;
  /** Dynamic swiotlb (null when off): what the trial reached, so a run can show its pressure was real. */
  dynamic: DynamicTrialOutcome | null;
}

export interface DynamicTrialOutcome {
  /** Growth work runs, pools added, growth that failed (the arena, or the pages, ran out). */
  growRuns: number;
  poolsAdded: number;
  growFailed: number;
  transientCreated: number;
  transientFailed: number;
  /** Atomic-pool allocations no pool could serve (the atomic pool ran dry). */
  atomicExhaustions: number;
  /** pct moments at which the live-mapping sums were checked; moments at which nslabs was checked. */
  quiescentChecks: number;
  nslabsChecks: number;
}

interface Slot {
  worker: Worker;
  onMessage: ((m: WorkerMessage) => void) | null;
  onGone: ((why: string) => void) | null;
}

type WorkerMessage = { type: 'violation'; msg: string } | { type: 'result'; result: StressThreadResult };

interface TrialRun {
  readonly results: (StressThreadResult | null)[];
  pending(): number;
  readonly done: Promise<void>;
  /** Terminate the threads that have not reported (they are replaced by the next trial). */
  kill(): Promise<void>;
}

/** vCPU threads kept up between trials; a thread that is terminated or dies is respawned on demand. */
export class StressWorkerPool {
  private readonly slots: (Slot | null)[] = [];
  private readonly file = workerFile('stress');

  private slot(i: number): Slot {
    const existing = this.slots[i];
    if (existing) return existing;
    const s: Slot = { worker: new Worker(this.file), onMessage: null, onGone: null };
    s.worker.on('message', (m: WorkerMessage) => s.onMessage?.(m));
    s.worker.on('error', (e) => s.onGone?.(`failed: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`));
    s.worker.on('exit', (code) => {
      if (this.slots[i] === s) this.slots[i] = null;
      s.onGone?.(`exited (code ${code}) before reporting`);
    });
    this.slots[i] = s;
    return s;
  }

  run(payloads: readonly StressThreadPayload[], onViolation: (cpu: number, msg: string) => void): TrialRun {
    const results: (StressThreadResult | null)[] = payloads.map(() => null);
    let pending = payloads.length;
    let resolve!: () => void;
    const done = new Promise<void>((r) => {
      resolve = r;
    });
    const used: Slot[] = [];
    payloads.forEach((payload, i) => {
      const s = this.slot(i);
      used.push(s);
      const settle = (r: StressThreadResult) => {
        if (results[i] !== null) return;
        results[i] = r;
        s.onMessage = null;
        s.onGone = null;
        if (--pending === 0) resolve();
      };
      s.onMessage = (m) => {
        if (m.type === 'violation') onViolation(i, m.msg);
        else settle(m.result);
      };
      s.onGone = (why) => settle({
        cpu: i, exerciser: null, aborted: false, error: `thread ${why}`, perturbations: 0, allocUsedMax: 0, allocUsedGen: 0, grower: null,
      });
      s.worker.postMessage({ type: 'trial', payload });
    });
    return {
      results,
      pending: () => pending,
      done,
      kill: async () => {
        await Promise.all(used.map((s, i) => {
          if (results[i] !== null) return undefined;
          const gone = s.onGone;
          s.onGone = () => gone?.('did not return after the trial was aborted, and was ended');
          return s.worker.terminate();
        }));
        await done;
      },
    };
  }

  async close(): Promise<void> {
    const all = this.slots.filter((s): s is Slot => s !== null);
    this.slots.length = 0;
    await Promise.all(all.map((s) => s.worker.terminate()));
  }
}


export async function runTrial(cfg: TrialConfig, pool: StressWorkerPool, opts: TrialOptions): Promise<TrialOutcome> {
  const t0 = performance.now();
  const n = cfg.vcpus;
  const mutant = cfg.mutant === null ? undefined : mutantByName(cfg.mutant);
  if (cfg.mutant !== null && mutant === undefined) throw new Error(`unknown mutant ${cfg.mutant}`);
  // Dynamic swiotlb: guest physical memory (the default pool reserved at memblock time, as the VM
  // does), an atomic pool of coherent_pool= (its expansion thread is not run: it runs dry), and a
  // decrypted arena with room for growPools pools of the default pool's size (4 MiB at most).
  const dyn = cfg.dynamic;
  const growNslabs = Math.min(cfg.nslabs, DYN_POOL_MAX_SLABS);
  const g = dyn === null ? null : bootGuestMemory({
    memBytes: DYN_TRIAL_MEM_BYTES, cmdline: `coherent_pool=${dyn.coherentPoolKiB}K`, fragmentation: 'none', decryptLatencyNsPerMiB: 0,
    decryptedArenaBytes: dyn.coherentPoolKiB * 1024 + dyn.growPools * growNslabs * IO_TLB_SIZE,
  }, (phys) => phys.memblockAllocLow(cfg.nslabs * IO_TLB_SIZE, PAGE_SIZE, PHYS_4G));
  const mem = IoTlbMem.create({
    nslabs: cfg.nslabs, nareas: cfg.nareas, start: g === null ? POOL_START : g.reserved, forceBounce: true, lockSpins: cfg.lockSpins,
    parkTimeoutMs: cfg.parkTimeoutMs,
    ...(cfg.throttle !== null ? { throttle: { enabled: true, highThrottle: cfg.throttle.high, lowThrottle: cfg.throttle.low } } : {}),
    ...(g !== null && dyn !== null ? {
      canGrow: true,
      dynamic: { headroomBytes: dyn.growPools * growNslabs * IO_TLB_SIZE, defaultNslabs: cfg.nslabs, maxTransient: dyn.maxTransient, arena: g.arena.shared.data },
    } : {}),
  });
  const areas = mem.defpool.areas;
  const thr = mem.throttle.i32;
  const region = regionBytes(cfg);
  const guest = new SharedArrayBuffer(region * n);
  const shared = mem.shared();
  // The ownership shadow: the default pool's slots, then one per Uint16 of the metadata arena (exerciser.ts).
  const ownersSab = new SharedArrayBuffer((cfg.nslabs + (shared.dyn !== undefined ? shared.dyn.meta.byteLength / 2 : 0)) * 4);
  const nthreads = ctlThreads(cfg);
  const ctl = createControl(nthreads, cfg.nareas, dyn?.maxTransient ?? 0);
  const pct = cfg.mode === 'pct' ? createPctState(nthreads, cfg.pct, cfg.seed) : null;
  const watched = watchedArrays(shared, g?.shared, ctl);
  const metaShadow = shared.dyn !== undefined ? new SharedArrayBuffer(shared.dyn.meta.byteLength * 3) : null;
  const payloads: StressThreadPayload[] = Array.from({ length: nthreads }, (_, cpu) => {
    const exerciser: ExerciserConfig = {
      shared, owners: ownersSab, guest, guestBase: GUEST_BASE, regionOffset: Math.min(cpu, n - 1) * region, regionBytes: region,
      cpu, ops: cfg.opsPerThread, seed: (Math.imul(cfg.seed, 31) + Math.imul(cpu + 1, 0x6d2b79f5)) >>> 0,
      maxLive: cfg.maxLive, maxSize: cfg.maxMappingBytes, minAlignMask: cfg.minAlignMask,
      allocAlignMasks: cfg.allocAlignMasks, allocAlignShare: cfg.allocAlignShare, sgShare: cfg.sgShare,
      sgMaxEntries: cfg.sgMaxEntries, dirWeights: cfg.dirWeights, mayBlockShare: cfg.mayBlockShare,
      ...(g !== null && dyn !== null ? { memory: g.shared, device: `exerciser${cpu % dyn.devices}` } : {}),
    };
    return {
      trial: cfg, role: cpu < n ? 'vcpu' : 'grower', cpu, mutantId: mutant?.id ?? 0, exerciser, control: ctl.buffer as SharedArrayBuffer, pct, metaShadow,
    };
  });

  const failures: string[] = [];
  const seen = new Set<string>();
  const fail = (msg: string) => {
    if (seen.has(msg)) return;
    seen.add(msg);
    if (failures.length < MAX_FAILURES) failures.push(msg);
  };
  let firstFailureAt = -1;
  const run = pool.run(payloads, (_cpu, msg) => {
    fail(msg);
    Atomics.store(ctl, CTL_STOP, 1);
    if (firstFailureAt < 0) firstFailureAt = performance.now();
  });

  // --- the watchdog ---------------------------------------------------------------------------
  const lastProgress = new Float64Array(n).fill(-1);
  const lastChange = new Float64Array(n).fill(t0);
  let lastStep = -1;
  let lastStepAt = t0;
  let pctStarted = pct === null;
  let parkedSig = '';
  let parkedSince = 0;
  let stalled = false;
  /** End the trial: the headline, then the state of every thread and lock (those lines do not count against MAX_FAILURES). */
  const abortTrial = async (headline: string) => {
    stalled = true;
    fail(headline);
    failures.push(...describeState(ctl, areas, thr, nthreads, cfg.nareas, pct));
    Atomics.store(ctl, CTL_STOP, 1);
    Atomics.store(ctl, CTL_ABORT, 1);
    await Promise.race([run.done, sleep(ABORT_GRACE_MS)]);
    if (run.pending() > 0) await run.kill();
  };
  while (run.pending() > 0) {
    await Promise.race([run.done, sleep(POLL_MS)]);
    if (run.pending() === 0) break;
    const t = performance.now();
    if (!pctStarted) {
      pctStarted = pctTryStart(pct!, watched);
      if (pctStarted) lastStepAt = t;
    }
    if (t > opts.deadline || t - t0 > opts.maxTrialMs) Atomics.store(ctl, CTL_STOP, 1);
    if (firstFailureAt >= 0 && t - firstFailureAt > FAILURE_GRACE_MS) {
      await abortTrial(`(threads still running ${FAILURE_GRACE_MS} ms after the first broken check were ended)`);
      break;
    }
    // Progress.
    const live: number[] = [];
    for (let i = 0; i < n; i++) {
      const b = threadBase(i);
      if (ctl[b + T_DONE] === 1) continue;
      live.push(i);
      const p = ctl[b + T_PROGRESS]! + ctl[b + T_STEPS]!;
      if (p !== lastProgress[i]) {
        lastProgress[i] = p;
        lastChange[i] = t;
      }
    }
    if (pct !== null) {
      const s = pctSummary(pct);
      if (s.steps !== lastStep) {
        lastStep = s.steps;
        lastStepAt = t;
      }
      if (s.deadlock !== 0) {
        await abortTrial(`pct: cpu ${s.deadlock - 1} found no runnable thread (the schedule deadlocked)`);
        break;
      }
      if (pctStarted && t - lastStepAt > opts.watchdogMs) {
        await abortTrial(`watchdog: the pct schedule made no step for ${Math.round(t - lastStepAt)} ms`);
        break;
      }
    } else {
      const started = live.filter((i) => ctl[threadBase(i) + T_STARTED] === 1);
      const quiet = started.filter((i) => t - lastChange[i]! > opts.watchdogMs);
      const starved = started.filter((i) => t - lastChange[i]! > STARVED_FACTOR * opts.watchdogMs);
      if (started.length > 0 && (quiet.length === live.length || starved.length > 0)) {
        const headline = starved.length > 0
          ? `watchdog: ${starved.map((i) => `cpu ${i}`).join(', ')} made no progress for ${STARVED_FACTOR * opts.watchdogMs} ms while other threads went on`
          : `watchdog: no thread made progress for ${opts.watchdogMs} ms (${quiet.map((i) => `cpu ${i}`).join(', ')})`;
        await abortTrial(headline);
        break;
      }
    }
    // Lost wakeup: every unfinished thread parked (on a lock, or for throttle_sem), in the same parks,
    // for the grace period.
    const parkedOrWaiting = (i: number) => Atomics.load(ctl, threadBase(i) + T_PARKED) >= 0 || Atomics.load(ctl, threadBase(i) + T_SEM_WAIT) === 1;
    if (live.length > 0 && live.every(parkedOrWaiting)) {
      const sig = live.map((i) => `${i}:${ctl[threadBase(i) + T_PARK_EPISODE]}:${ctl[threadBase(i) + T_SEM_WAIT]}`).join(',');
      if (sig !== parkedSig) {
        parkedSig = sig;
        parkedSince = t;
      } else if (t - parkedSince >= LOST_WAKEUP_GRACE_MS) {
        // Every live thread is parked, so a holder in the lock shadow has finished: it died holding
        // the lock. Without one, the lock was released and nobody was woken (allParkedHeadline).
        const parked = live.map((i) => ({ cpu: i, lock: ctl[threadBase(i) + T_PARKED]!, semWait: ctl[threadBase(i) + T_SEM_WAIT] === 1 }));
        const kind = Atomics.load(thr, THR_HOLDER_KIND);
        await abortTrial(allParkedHeadline(
          parked, (k) => Atomics.load(ctl, holderIndex(nthreads, k)), kind === THROTTLE_HOLDER_NONE ? null : { cpu: Atomics.load(thr, THR_HOLDER_VCPU), kind },
          cfg.nareas, t - parkedSince,
        ));
        break;
      }
    } else parkedSig = '';
  }
  await run.done;

  // --- results and quiescence -------------------------------------------------------------------
  const results = run.results;
  let ops = 0;
  let maps = 0;
  let mapFailures = 0;
  let perturbations = 0;
  let throttledMaps = 0;
  let throttleWaits = 0;
  let boundViolations = 0;
  let clean = !stalled;
  for (const r of results) {
    if (r === null) {
      clean = false;
      continue;
    }
    if (r.error !== null) fail(`${r.cpu < n ? 'cpu' : 'the growth worker, cpu'} ${r.cpu}: ${r.error}`);
    if (r.error !== null || r.aborted || (r.exerciser === null && r.grower === null)) clean = false;
    perturbations += r.perturbations;
    if (r.exerciser !== null) {
      ops += r.exerciser.ops;
      maps += r.exerciser.maps;
      mapFailures += r.exerciser.mapFailures;
      throttledMaps += r.exerciser.throttledMaps;
      throttleWaits += r.exerciser.throttleWaits;
      boundViolations += r.exerciser.throttleBoundViolations;
      for (const v of r.exerciser.violations) fail(v);
    }
  }
  if (Atomics.load(ctl, CTL_VIOLATIONS) > 0 && failures.length === 0) fail('a thread reported a broken check (not streamed)');
  if (boundViolations > 0) {
    fail(`throttle slop: ${boundViolations} admitted MAY_BLOCK request(s) saw total_used grow by more than every allocation under way could add (broken accounting)`);
  }
  if (clean) {
    const ok = results as StressThreadResult[];
    const finalGen = Atomics.load(ctl, CTL_RESET_GEN);
    const allocUsedMax = Math.max(0, ...ok.filter((r) => r.allocUsedGen === finalGen).map((r) => r.allocUsedMax));
    const observed = cfg.hiwaterResetEvery === 0 ? Math.max(0, ...ok.map((r) => r.exerciser?.maxUsedSeen ?? 0)) : undefined;
    const after = IoTlbMem.attach(shared); // its pool list: every pool published during the trial
    const transientSlotsMax = (dyn?.maxTransient ?? 0) * IO_TLB_SEGSIZE; // total_used counts transient pools, nslabs does not
    for (const v of quiescenceViolations(after, { allocUsedMax, observedUsedMax: observed, threads: n, noParkTimeouts: true, transientSlotsMax })) fail(`quiescence: ${v}`);
    if (after.dyn !== null) for (const v of dynamicQuiescenceViolations(after, ctl, nthreads, cfg.nareas, dyn!.maxTransient)) fail(`quiescence: ${v}`);
    const owners = new Int32Array(ownersSab);
    const owned = owners.findIndex((o) => o !== 0);
    if (owned >= 0) fail(`quiescence: slot ${owned} is still owned by cpu ${owners[owned]! - 1} in the ownership shadow`);
    for (let a = 0; a <= cfg.nareas; a++) { // the areas' locks, then throttle_sem's
      const h = ctl[holderIndex(nthreads, a)]!;
      if (h !== 0) fail(`quiescence: the lock shadow says cpu ${h - 1} still holds ${lockName(a, cfg.nareas)}`);
    }
    const unmaps = ok.reduce((s, r) => s + (r.exerciser?.unmaps ?? 0), 0);
    if (unmaps !== maps) fail(`quiescence: ${maps} maps but ${unmaps} unmaps`);
    if (metaShadow !== null) {
      const ms = new Int32Array(metaShadow);
      for (let w = 0; w < ms.length; w += 3) {
        if (ms[w] !== 0) {
          fail(`quiescence: the lock shadow says cpu ${ms[w]! - 1} still holds the area lock at metadata word ${w / 3} (a dynamic or transient pool)`);
          break;
        }
      }
    }
    const th = Atomics.load(ctl, CTL_THROTTLED_HOLDER);
    if (th !== 0) fail(`quiescence: cpu ${th - 1}'s throttled mapping is still recorded as live`);
    const allocs = (Atomics.load(ctl, CTL_ALLOC_BEGUN) - Atomics.load(ctl, CTL_ALLOC_DONE)) | 0;
    const releases = (Atomics.load(ctl, CTL_RELEASE_BEGUN) - Atomics.load(ctl, CTL_RELEASE_DONE)) | 0;
    if (allocs !== 0 || releases !== 0) {
      fail(`quiescence: ${allocs} slot(s) of allocations and ${releases} of releases changed area.used but never reached total_used in that order`);
    }
    const joins = Atomics.load(ctl, CTL_SEM_JOINS);
    const grants = Atomics.load(ctl, CTL_SEM_GRANTS);
    if (joins !== grants) fail(`quiescence: ${joins} waiters queued for throttle_sem but ${grants} were handed it`);
  }
  const pctInfo = pct === null ? null : pctSummary(pct);
  if (pctInfo !== null) perturbations = pctInfo.switches;
  let dynamic: DynamicTrialOutcome | null = null;
  if (mem.dyn !== null && g !== null) {
    const st = mem.dyn.stats();
    dynamic = {
      growRuns: st.grow_runs, poolsAdded: st.pools_added, growFailed: st.grow_failed, transientCreated: st.transient_created,
      transientFailed: st.transient_failed, atomicExhaustions: g.atomicPool.stats().exhaustions,
      quiescentChecks: Atomics.load(ctl, CTL_QUIESCENT_CHECKS), nslabsChecks: Atomics.load(ctl, CTL_NSLABS_CHECKS),
    };
  }
  return {
    config: cfg, failures, ops, maps, mapFailures, perturbations, durationMs: performance.now() - t0, pct: pctInfo, stalled,
    throttledMaps, throttleWaits, dynamic,
  };
}

/**
 * Dynamic swiotlb at quiescence (every vCPU and the growth worker done), on top of quiescence.ts's
 * checks of every pool:
 * - io_tlb_transient_nslabs 0, no transient pool live or retired (all freed), and every one created
 *   was freed exactly once: the core's count, and the transient shadow's (each free it saw came
 *   after the mapping's unmap and copy-back; a record it saw mapped ends freed);
 * - mem->nslabs equals the sum of the non-transient pools' nslabs (the pool table);
 * - a mapping lies wholly in one pool, so the pools must be disjoint: no two pools' address ranges
 *   overlap.
 */
export function dynamicQuiescenceViolations(mem: IoTlbMem, ctl: Int32Array, nthreads: number, nareas: number, maxTransient: number): string[] {
  const out: string[] = [];
  const d = mem.debugfs();
  const st = mem.dyn!.stats();
  if (d.io_tlb_transient_nslabs !== 0) out.push(`io_tlb_transient_nslabs ${d.io_tlb_transient_nslabs} at quiescence, expected 0`);
  if (st.transient_live !== 0 || st.transient_retired !== 0) out.push(`${st.transient_live} transient pool(s) live and ${st.transient_retired} retired at quiescence; all must be freed`);
  if (st.transient_freed !== st.transient_created) out.push(`${st.transient_created} transient pools created but ${st.transient_freed} freed (each is freed exactly once)`);
  const shadowFrees = Atomics.load(ctl, CTL_TR_FREES);
  if (shadowFrees !== st.transient_created) out.push(`the transient shadow saw ${shadowFrees} transient pools freed, of ${st.transient_created} created (each is freed exactly once)`);
  for (let rec = 0; rec < maxTransient; rec++) {
    const s = Atomics.load(ctl, transientShadowIndex(nthreads, nareas, rec) + TS_STATE);
    if (s !== TS_NONE && s !== TS_FREED) out.push(`transient pool ${rec} is ${TS_NAMES[s]} in the transient shadow at quiescence, expected freed`);
  }
  const sum = mem.pools.reduce((a, p) => a + p.nslabs, 0);
  if (d.io_tlb_nslabs !== sum) out.push(`mem->nslabs ${d.io_tlb_nslabs}, but the ${mem.pools.length} pools (default and dynamic) hold ${sum} slots`);
  const byStart = [...mem.pools].sort((a, b) => a.start - b.start);
  for (let i = 1; i < byStart.length; i++) {
    const a = byStart[i - 1]!;
    const b = byStart[i]!;
    if (b.start < a.end) out.push(`pools 0x${a.start.toString(16)}..0x${a.end.toString(16)} and 0x${b.start.toString(16)}..0x${b.end.toString(16)} overlap (a mapping lies wholly in one pool)`);
  }
  return out;
}

/** An unfinished thread as the lost-wakeup check sees it: the lock it is parked on (-1 none), or waiting for throttle_sem. */
export interface ParkedThread {
  cpu: number;
  lock: number;
  semWait: boolean;
}

/**
 * The headline when every unfinished thread has sat in the same park for the grace period:
 *   - a lock whose holder in the lock shadow (`shadowHolder`: cpu + 1, 0 none) is a finished thread:
 *     it died holding the lock;
 *   - [RFC] throttle_sem self-deadlock (§15.9): the semaphore is held through a live throttled
 *     mapping (THROTTLE_HOLDER_MAPPING) by a thread that is itself waiting for throttle_sem, so only
 *     its own unmap, which it can never reach, would release it. A holder parked on an area lock is
 *     not that: it waits for the lock's unlock, and if every thread is parked, that wakeup was lost;
 *   - else a lost wakeup.
 */
export function allParkedHeadline(
  parked: readonly ParkedThread[], shadowHolder: (lock: number) => number, semHolder: { cpu: number; kind: number } | null,
  nareas: number, parkedMs: number,
): string {
  const where = (p: ParkedThread) => (p.lock >= 0 ? `cpu ${p.cpu} on ${lockName(p.lock, nareas)}` : `cpu ${p.cpu} for throttle_sem`);
  const parkedOn = parked.map(where).join(', ');
  const dead = [...new Set(parked.map((p) => p.lock).filter((k) => k >= 0))]
    .map((k) => ({ k, h: shadowHolder(k) })).filter((x) => x.h !== 0);
  if (dead.length > 0) {
    return `${dead.map((x) => `cpu ${x.h - 1} ended while holding ${lockName(x.k, nareas)}`).join('; ')}: every unfinished thread (${parkedOn}) waits for it`;
  }
  const holder = semHolder === null ? undefined : parked.find((p) => p.cpu === semHolder.cpu);
  if (holder !== undefined && holder.semWait && semHolder!.kind === THROTTLE_HOLDER_MAPPING) {
    return `throttle_sem self-deadlock (§15.9): every unfinished thread (${parkedOn}) waits, and the holder, cpu ${holder.cpu}, waits for throttle_sem itself while its live throttled mapping holds it`;
  }
  return `lost wakeup: every unfinished thread (${parkedOn}) has been parked for ${Math.round(parkedMs)} ms, and no thread is left to wake it`;
}

/** Who holds which area lock, who is taking or parked on which, and where every thread is. */
export function describeState(ctl: Int32Array, areas: Int32Array, thr: Int32Array, n: number, nareas: number, pct: SharedArrayBuffer | null): string[] {
  const lines: string[] = [];
  for (let a = 0; a <= nareas; a++) {
    const word = a < nareas ? Atomics.load(areas, a * AREA_INTS + AREA_LOCK) : Atomics.load(thr, THR_SEM_LOCK_RECORD + AREA_LOCK);
    const holder = Atomics.load(ctl, holderIndex(n, a));
    if (word === 0 && holder === 0) continue;
    const state = word === 0 ? 'free' : word === 1 ? 'held' : 'held, waiters may be parked';
    lines.push(`  ${lockName(a, nareas)}: word ${word} (${state}), ${holder === 0 ? 'no holder in the lock shadow' : `held by cpu ${holder - 1}`}`);
  }
  // [RFC] throttle_sem, read without its lock (a report must not wait for a lock a dead thread holds).
  const count = Atomics.load(thr, THR_SEM_COUNT);
  const kind = Atomics.load(thr, THR_HOLDER_KIND);
  if (count !== 1 || Atomics.load(thr, THR_QUEUE_LEN) !== 0) {
    const holder = kind === THROTTLE_HOLDER_NONE ? 'no holder' : `held by ${kind === THROTTLE_HOLDER_MAPPING ? 'a live mapping' : 'a request'} of cpu ${Atomics.load(thr, THR_HOLDER_VCPU)}`;
    lines.push(`  throttle_sem: count ${count}, ${holder}, ${Atomics.load(thr, THR_QUEUE_LEN)} waiter(s) queued`);
  }
  for (let i = 0; i < n; i++) {
    const b = threadBase(i);
    if (ctl[b + T_DONE] === 1) continue;
    const parts = [`op ${ctl[b + T_PROGRESS]}`, `last point ${POINT_NAMES[ctl[b + T_POINT]!] ?? '?'}`];
    if (ctl[b + T_STARTED] !== 1) parts.push('not started');
    if (ctl[b + T_TAKING]! >= 0) parts.push(`taking ${lockName(ctl[b + T_TAKING]!, nareas)}`);
    if (ctl[b + T_HOLDING]! >= 0) parts.push(`holding ${lockName(ctl[b + T_HOLDING]!, nareas)}`);
    if (ctl[b + T_PARKED]! >= 0) parts.push(`parked on ${lockName(ctl[b + T_PARKED]!, nareas)} (park ${ctl[b + T_PARK_EPISODE]})`);
    if (ctl[b + T_SEM_WAIT] === 1) parts.push('waiting for throttle_sem');
    lines.push(`  cpu ${i}: ${parts.join(', ')}`);
  }
  if (pct !== null) lines.push(`  ${pctDescribe(pct)}`);
  return lines;
}
