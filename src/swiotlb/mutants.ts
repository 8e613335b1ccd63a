// Deliberately broken variants of the core ("mutants"), so the stress harness can prove that its
// checks catch real concurrency and bookkeeping bugs (npm run stress -- --mutants).
//
// Each mutant is one `mutant === M_X` test at the spot it breaks. `mutant` is 0 in every normal run:
// only the stress harness's worker threads set it (from their workerData, for one trial), never the
// environment, a job file or the VM's command line. A test costs a load and a compare; npm run bench
// measures them together with the instrumentation points (instrument.ts).
import type { DmaDevice } from '../dma/device.js';
import { IO_TLB_SEGSIZE, IO_TLB_SIZE } from './constants.js';
import { AREA_INDEX, AREA_USED, AREA_USED_HIWATER, MEM_USED_HIWATER } from './layout.js';
import {
  P_AREA_LOCK_ACQUIRED, P_AREA_LOCK_ENTER, P_AREA_UNLOCKED, P_AREA_USED, P_EXERCISER_OP, P_HIWATER_UPDATE, P_POOL_PUBLISHED,
  P_SLOTS_FOUND, P_TRANSIENT_RECLAIM, hook,
} from './instrument.js';
import type { IoTlbPool } from './pool.js';

export const M_NONE = 0;
/** areaLock takes the word with a plain store instead of compare-and-exchange. */
export const M_AREA_LOCK_NO_EXCLUDE = 1;
/** swiotlb_search_pool_area drops the area lock before it updates the lists, area.used and the cursor. */
export const M_LIST_AFTER_UNLOCK = 2;
/** used_hiwater raised by read-then-store instead of compare-and-exchange. */
export const M_HIWATER_NO_CAS = 3;
/** [RFC] the unmap of a throttled mapping releases throttle_sem before it frees the slots. */
export const M_SEM_BEFORE_FREE = 4;
/** areaUnlock does not notify a parked waiter. */
export const M_LOST_WAKEUP = 5;
/** [RFC] dma_unmap_sg unmaps entry 0 (which holds throttle_sem for the list) first instead of last. */
export const M_SG_UNMAP_ORDER = 6;
/** swiotlb_release_slots' merge with the free run in front stops one slot short of the segment start. */
export const M_MERGE_SHORT = 7;
/** area.index is not reset to 0 when the allocation ends at the area's end. */
export const M_CURSOR_NO_WRAP = 8;
/** swiotlb_release_slots lowers total_used before it takes the area lock and frees the slots, not after. */
export const M_TOTAL_USED_EARLY = 9;
/** swiotlb_search_pool_area writes area.index (the cursor) after it drops the area lock. */
export const M_INDEX_AFTER_UNLOCK = 10;
/** swiotlb_search_pool_area raises area.used after it drops the area lock. */
export const M_USED_AFTER_UNLOCK = 11;

// Dynamic swiotlb (dynamic.ts, mem.ts); their trials have dynamic swiotlb on.
/** swiotlb_alloc_tlb takes pages of get_order(bytes) - 1: the pool's upper half is memory handed out again (the next pool). */
export const M_POOL_HALF_PAGES = 12;
/** swiotlb_del_transient does not take the pool's slots out of total_used (no dec_used). */
export const M_TRANSIENT_USED_LEAK = 13;
/** A transient pool's slots are added to mem->nslabs at creation (and taken out at deletion), as if it were a dynamic pool. */
export const M_NSLABS_TRANSIENT = 14;
/** dma_unmap_single of a transient mapping deletes the pool (and may free its memory) before the CPU sync's copy-back. */
export const M_TRANSIENT_FREE_EARLY = 15;
/** The reclaim pass claims a retired transient pool with a load and a store instead of compare-and-exchange. */
export const M_TRANSIENT_DOUBLE_FREE = 16;
/** add_mem_pool publishes the new pool (descriptor, nslabs, MEM_NPOOLS) before its metadata is initialised. */
export const M_PUBLISH_BEFORE_INIT = 17;

/** The mutant in force on this thread; M_NONE except in a stress trial. */
export let mutant = M_NONE;

/** Enable a mutant on this thread (M_NONE to disable). Only the stress harness's worker calls this. */
export function setMutant(id: number): void {
  mutant = id;
}

/**
 * The trial that catches a mutant fastest: overrides of the seeded configuration (src/stress/config.ts
 * applies them). Plain data, so the core does not depend on the harness.
 */
export interface MutantTrialHint {
  mode: 'chaos' | 'pct';
  vcpus?: number;
  nareas?: number;
  /** 128-slot segments per area: the pool is nareas x segmentsPerArea x 128 slots. */
  segmentsPerArea?: number;
  lockSpins?: number;
  opsPerThread?: number;
  maxMappingBytes?: number;
  /** Points (instrument.ts ids) that chaos mode perturbs, each with this probability. */
  perturbPoints?: readonly number[];
  perturbRate?: number;
  /** Longest park a perturbation inserts, in microseconds. */
  parkMaxUs?: number;
  /** [RFC] Throttling on, thresholds in percent of nslabs. */
  throttle?: { highPercent: number; lowPercent: number };
  /** [RFC] Share of dma-direct maps passing DMA_ATTR_MAY_BLOCK. */
  mayBlockShare?: number;
  /** Share of maps that are SG lists. */
  sgShare?: number;
  /** Dynamic swiotlb on: growth may add up to growPools pools; coherent_pool= in KiB (the atomic pool's size). */
  dynamic?: { growPools?: number; coherentPoolKiB?: number };
}

export interface MutantSpec {
  id: number;
  /** The name --mutant takes. */
  name: string;
  /** What is broken, in one line. */
  description: string;
  /** Which check is expected to catch it, in one line (for the README and the --mutants table). */
  caughtBy: string;
  hint: MutantTrialHint;
  /** Breaks the [RFC] throttle (its trials have throttling on). */
  requiresThrottle?: boolean;
  /** Breaks dynamic swiotlb (its trials have it on). */
  requiresDynamic?: boolean;
}

export const MUTANTS: readonly MutantSpec[] = [
  {
    id: M_AREA_LOCK_NO_EXCLUDE,
    name: 'area-lock-no-exclude',
    description: 'areaLock takes the lock word with a plain store instead of compare-and-exchange',
    caughtBy: 'lock shadow (two holders of one area), ownership shadow, lists at quiescence',
    hint: { mode: 'chaos', vcpus: 4, nareas: 1, segmentsPerArea: 4, perturbPoints: [P_AREA_LOCK_ACQUIRED, P_SLOTS_FOUND], perturbRate: 0.05 },
  },
  {
    id: M_LIST_AFTER_UNLOCK,
    name: 'list-after-unlock',
    description: 'swiotlb_search_pool_area releases the area lock before it updates the slot lists, area.used and the cursor',
    caughtBy: 'area shadow (area.used and the cursor changed outside the lock), ownership shadow, lists at quiescence',
    hint: { mode: 'chaos', vcpus: 4, nareas: 1, segmentsPerArea: 2, perturbPoints: [P_AREA_UNLOCKED], perturbRate: 0.05 },
  },
  {
    id: M_HIWATER_NO_CAS,
    name: 'hiwater-no-cas',
    description: 'used_hiwater raised by a plain read-then-store instead of compare-and-exchange',
    caughtBy: 'used_hiwater monotonic and >= every total_used an allocation reached',
    hint: { mode: 'chaos', vcpus: 4, nareas: 4, segmentsPerArea: 4, perturbPoints: [P_HIWATER_UPDATE], perturbRate: 0.2 },
  },
  {
    id: M_SEM_BEFORE_FREE,
    name: 'sem-before-free',
    description: 'the unmap of a throttled mapping releases throttle_sem before it frees the mapping\'s slots',
    caughtBy: 'at each release of throttle_sem, every slot of the releasing mapping (or SG list) is free',
    requiresThrottle: true,
    hint: {
      mode: 'chaos', vcpus: 4, nareas: 2, segmentsPerArea: 2, throttle: { highPercent: 10, lowPercent: 5 }, mayBlockShare: 0.8,
      sgShare: 0, perturbPoints: [P_EXERCISER_OP], perturbRate: 0,
    },
  },
  {
    id: M_LOST_WAKEUP,
    name: 'lost-wakeup',
    description: 'areaUnlock does not notify when the lock word says a waiter may be parked',
    caughtBy: 'watchdog: every unfinished thread parked on an area lock, no holder (and park timeouts at quiescence)',
    hint: { mode: 'chaos', vcpus: 6, nareas: 1, segmentsPerArea: 4, lockSpins: 0, opsPerThread: 3000, perturbPoints: [P_AREA_LOCK_ACQUIRED], perturbRate: 0.2, parkMaxUs: 300 },
  },
  {
    id: M_SG_UNMAP_ORDER,
    name: 'sg-unmap-order',
    description: 'dma_unmap_sg unmaps entry 0, which holds throttle_sem for the whole list, first instead of last',
    caughtBy: 'at each release of throttle_sem, every slot of the releasing mapping (or SG list) is free',
    requiresThrottle: true,
    hint: {
      mode: 'chaos', vcpus: 4, nareas: 2, segmentsPerArea: 2, throttle: { highPercent: 10, lowPercent: 5 }, mayBlockShare: 0.8,
      sgShare: 0.8, perturbPoints: [P_AREA_LOCK_ENTER], perturbRate: 0.01,
    },
  },
  {
    id: M_MERGE_SHORT,
    name: 'merge-short',
    description: 'the release merge with the free run in front stops one slot short of the segment start',
    caughtBy: 'slot lists at quiescence differ from their initial values',
    hint: { mode: 'chaos', vcpus: 2, nareas: 1, segmentsPerArea: 2, opsPerThread: 2000, perturbPoints: [P_EXERCISER_OP], perturbRate: 0 },
  },
  {
    id: M_CURSOR_NO_WRAP,
    name: 'cursor-no-wrap',
    description: 'area.index is left at area_nslabs instead of wrapping to 0 when an allocation ends at the area end',
    caughtBy: 'per-area used at quiescence / area.used bounds, lock shadow of the neighbouring area, ownership shadow',
    hint: { mode: 'chaos', vcpus: 4, nareas: 4, segmentsPerArea: 1, opsPerThread: 3000, perturbPoints: [P_EXERCISER_OP], perturbRate: 0 },
  },
  {
    id: M_TOTAL_USED_EARLY,
    name: 'total-used-early',
    description: 'swiotlb_release_slots lowers total_used before it takes the area lock and frees the slots, instead of after',
    caughtBy: 'total_used against the sum of area.used less the changes in flight (exact in pct, bounded in chaos)',
    hint: { mode: 'chaos', vcpus: 4, nareas: 1, segmentsPerArea: 2, perturbPoints: [P_AREA_LOCK_ENTER], perturbRate: 0.05 },
  },
  {
    id: M_INDEX_AFTER_UNLOCK,
    name: 'index-after-unlock',
    description: 'swiotlb_search_pool_area writes area.index (the cursor) after it drops the area lock',
    caughtBy: 'area shadow: area.used and area.index at each acquire equal their values at the last unlock',
    hint: { mode: 'chaos', vcpus: 4, nareas: 1, segmentsPerArea: 2, perturbPoints: [P_EXERCISER_OP], perturbRate: 0 },
  },
  {
    id: M_USED_AFTER_UNLOCK,
    name: 'used-after-unlock',
    description: 'swiotlb_search_pool_area raises area.used after it drops the area lock',
    caughtBy: 'area shadow: area.used and area.index at each acquire equal their values at the last unlock',
    hint: { mode: 'chaos', vcpus: 4, nareas: 1, segmentsPerArea: 2, perturbPoints: [P_EXERCISER_OP], perturbRate: 0 },
  },
  {
    id: M_POOL_HALF_PAGES,
    name: 'pool-half-pages',
    description: 'swiotlb_alloc_tlb takes pages for half the pool (get_order one too small): its upper half is memory the buddy allocator hands to the next pool',
    caughtBy: 'a mapping lies wholly in one pool (its bounce range is also in another pool); pools are disjoint',
    requiresDynamic: true,
    hint: { mode: 'chaos', vcpus: 4, nareas: 1, segmentsPerArea: 1, dynamic: { growPools: 6 }, perturbPoints: [P_EXERCISER_OP], perturbRate: 0 },
  },
  {
    id: M_TRANSIENT_USED_LEAK,
    name: 'transient-used-leak',
    description: 'swiotlb_del_transient does not take the transient pool\'s slots out of total_used (dec_used left out)',
    caughtBy: 'total_used against area.used of every pool (live transient ones included); total_used = slots of the live mappings',
    requiresDynamic: true,
    hint: { mode: 'chaos', vcpus: 4, nareas: 1, segmentsPerArea: 1, dynamic: { growPools: 1 }, perturbPoints: [P_EXERCISER_OP], perturbRate: 0 },
  },
  {
    id: M_NSLABS_TRANSIENT,
    name: 'nslabs-counts-transient',
    description: 'a transient pool\'s slots are added to mem->nslabs at creation and taken out at deletion, as a dynamic pool\'s would be',
    caughtBy: 'mem->nslabs equals the sum of the non-transient pools (checked between growths)',
    requiresDynamic: true,
    hint: { mode: 'chaos', vcpus: 4, nareas: 1, segmentsPerArea: 1, dynamic: { growPools: 1 }, perturbPoints: [P_EXERCISER_OP], perturbRate: 0 },
  },
  {
    id: M_TRANSIENT_FREE_EARLY,
    name: 'transient-free-before-copy',
    description: 'dma_unmap_single of a transient mapping deletes the pool, and may free its memory, before the CPU sync that copies back',
    caughtBy: 'a transient pool is freed only after its mapping\'s copy-back (the transient shadow at the free)',
    requiresDynamic: true,
    hint: { mode: 'chaos', vcpus: 4, nareas: 1, segmentsPerArea: 1, dynamic: { growPools: 1 }, perturbPoints: [P_EXERCISER_OP], perturbRate: 0 },
  },
  {
    id: M_TRANSIENT_DOUBLE_FREE,
    name: 'transient-double-free',
    description: 'the reclaim pass claims a retired transient pool with a load and a store instead of compare-and-exchange, so two reclaimers can free it',
    caughtBy: 'a transient pool is freed exactly once (the transient shadow at the free; the core\'s TR_FREES assertion)',
    requiresDynamic: true,
    hint: {
      // pct: its claim point is a forced change point (stress/pct.ts), so the second reclaimer comes deterministically.
      mode: 'pct', vcpus: 4, nareas: 1, segmentsPerArea: 1, dynamic: { growPools: 1 }, perturbPoints: [P_TRANSIENT_RECLAIM], perturbRate: 0.5,
      parkMaxUs: 300,
    },
  },
  {
    id: M_PUBLISH_BEFORE_INIT,
    name: 'publish-before-init',
    description: 'add_mem_pool publishes the new pool (descriptor, nslabs, MEM_NPOOLS) before its metadata is initialised',
    caughtBy: 'a thread taking in a published pool finds its ready word set (AREA_POOL_READY, written last by init)',
    requiresDynamic: true,
    hint: {
      // pct: the publication is a forced change point (stress/pct.ts), so other threads run in the window deterministically.
      mode: 'pct', vcpus: 4, nareas: 1, segmentsPerArea: 1, dynamic: { growPools: 6 }, perturbPoints: [P_POOL_PUBLISHED], perturbRate: 1,
      parkMaxUs: 1000,
    },
  },
];

/** The mutant named `name`, or undefined. */
export function mutantByName(name: string): MutantSpec | undefined {
  return MUTANTS.find((m) => m.name === name);
}

/** M_AREA_LOCK_NO_EXCLUDE's "lock": a plain store of the held state, which always "succeeds". */
export function plainStoreLock(areas: Int32Array, word: number): boolean {
  Atomics.store(areas, word, 1);
  return true;
}

/** M_HIWATER_NO_CAS's update: a stale `old` can overwrite a larger mark written meanwhile. */
export function raiseHiwaterWithoutCas(header: Int32Array, newUsed: number, old: number): void {
  if (newUsed > old) Atomics.store(header, MEM_USED_HIWATER, newUsed);
}

/** M_SEM_BEFORE_FREE: whether the mapping at `tlbAddr` is flagged throttled (its first data slot, as release reads it). */
export function throttledAt(pool: IoTlbPool, dev: DmaDevice, tlbAddr: number): boolean {
  const sub = tlbAddr & dev.minAlignMask & (IO_TLB_SIZE - 1);
  const i0 = (tlbAddr - sub - pool.start) / IO_TLB_SIZE;
  return Number.isInteger(i0) && pool.throttled[i0] !== 0;
}

/**
 * M_MERGE_SHORT's merge: like mem.ts's renumberFreeRunBefore, but the loop bound is off by one, so
 * the slot at the segment start keeps its stale list value.
 */
export function renumberFreeRunBeforeShort(list: Uint16Array, index: number, count: number): void {
  const segStart = index - (index & (IO_TLB_SEGSIZE - 1));
  let i = index - 1;
  while (i > segStart && list[i] !== 0) {
    list[i] = ++count;
    i--;
  }
}

/**
 * M_INDEX_AFTER_UNLOCK and M_USED_AFTER_UNLOCK: the search's last two writes, the cursor and
 * area.used, with the unlock (passed in: area-lock.ts imports this module) moved before one of them.
 */
export function writeAreaTailAfterUnlock(
  areas: Int32Array, base: number, cursor: number, nslots: number, unlock: (areas: Int32Array, base: number) => void,
): void {
  const raiseUsed = () => {
    if (hook !== null) hook(P_AREA_USED, nslots, areas);
    const used = (areas[base + AREA_USED]! += nslots);
    if (used > areas[base + AREA_USED_HIWATER]!) areas[base + AREA_USED_HIWATER] = used;
  };
  if (mutant === M_INDEX_AFTER_UNLOCK) {
    raiseUsed();
    unlock(areas, base);
    areas[base + AREA_INDEX] = cursor;
  } else {
    areas[base + AREA_INDEX] = cursor;
    unlock(areas, base);
    raiseUsed();
  }
}
