// The invariants of reference §18 that hold at quiescence (no map or unmap in flight), checked on
// an allocator's shared state. One implementation for the multi-thread tests and the stress harness.
import { INVALID_PHYS_ADDR, IO_TLB_SEGSIZE } from './constants.js';
import {
  AREA_INDEX, AREA_LOCK, AREA_PARK_TIMEOUTS, AREA_USED, MEM_TOTAL_USED, MEM_USED_HIWATER,
} from './layout.js';
import type { IoTlbMem } from './mem.js';
import { initialList } from './pool.js';
import { throttleQuiescentViolations } from './throttle.js';

export interface QuiescenceExpectations {
  /**
   * The largest total_used an allocation reached since the last reset of used_hiwater (§18.7), as
   * the allocations themselves saw it. used_hiwater must be at least this.
   */
  allocUsedMax?: number;
  /**
   * The largest io_tlb_used any thread read. Only meaningful when used_hiwater was never reset: after
   * a reset the mark may legitimately stay below a use reached before it.
   */
  observedUsedMax?: number;
  /**
   * Threads that mapped and unmapped. Bounds used_hiwater from above: not by nslabs, since a release
   * drops total_used only after its area lock (§9), so the freed slots can be allocated and counted
   * again first; each thread has at most one such release in flight, of at most one segment. So
   * used_hiwater ≤ nslabs + threads × 128. Absent: not checked.
   */
  threads?: number;
  /**
   * Dynamic swiotlb: slots of transient pools that can exist at once (total_used counts them, nslabs
   * does not), added to the used_hiwater bound. Default 0.
   */
  transientSlotsMax?: number;
  /**
   * Check that no park on an area lock timed out. Only sound when the park timeout is far above the
   * longest time any thread can hold an area lock (the stress harness sets it so).
   */
  noParkTimeouts?: boolean;
}

/** Most messages reported per check, so one broken pool does not print 10,000 lines. */
const MAX_PER_CHECK = 8;

/**
 * Every quiescence invariant that does not hold, as one line each (empty when all hold):
 * - each slot's list equals its §4 initial value; orig_addr INVALID, alloc_size, pad_slots and
 *   throttled 0 (§18.3);
 * - each area: used 0, its lock word free, its cursor inside 0..area_nslabs-1 (§5.4's reset rule);
 * - Σ area.used = total_used = 0 (§18.5, §18.6);
 * - used_hiwater ≥ every use an allocation reached (and every use observed, without resets), and
 *   ≤ nslabs + threads × 128 (§18.7; see `threads`);
 * - optionally: no park on an area lock timed out;
 * - [RFC] throttle_sem free, with no holder and no waiter, and no slot flagged throttled (§18.14;
 *   throttle.ts's own check).
 */
export function quiescenceViolations(mem: IoTlbMem, expect: QuiescenceExpectations = {}): string[] {
  const out: string[] = [];
  const capped = (key: string, counts: Map<string, number>, msg: () => string) => {
    const n = (counts.get(key) ?? 0) + 1;
    counts.set(key, n);
    if (n <= MAX_PER_CHECK) out.push(msg());
    else if (n === MAX_PER_CHECK + 1) out.push(`(${key}: more not listed)`);
  };
  const counts = new Map<string, number>();
  let areaSum = 0;
  for (const [p, pool] of mem.pools.entries()) {
    const where = mem.pools.length > 1 ? `pool ${p} ` : '';
    for (let i = 0; i < pool.nslabs; i++) {
      const want = initialList(i, pool.nslabs);
      if (pool.list[i] !== want) {
        capped('list', counts, () => `${where}slot ${i}: list ${pool.list[i]} at quiescence, initial value ${want}`);
      }
      if (pool.origAddr[i] !== INVALID_PHYS_ADDR || pool.allocSize[i] !== 0 || pool.padSlots[i] !== 0) {
        capped('metadata', counts, () => `${where}slot ${i}: metadata not reset (orig_addr ${pool.origAddr[i]}, alloc_size ${pool.allocSize[i]}, pad_slots ${pool.padSlots[i]})`);
      }
    }
    for (let a = 0; a < pool.nareas; a++) {
      const b = pool.areaBase(a);
      const used = Atomics.load(pool.areas, b + AREA_USED);
      areaSum += used;
      if (used !== 0) capped('area.used', counts, () => `${where}area ${a}: used ${used} at quiescence, expected 0`);
      const word = Atomics.load(pool.areas, b + AREA_LOCK);
      if (word !== 0) capped('lock', counts, () => `${where}area ${a}: lock word ${word} at quiescence, expected 0 (free)`);
      const index = Atomics.load(pool.areas, b + AREA_INDEX);
      if (index < 0 || index >= pool.areaNslabs) {
        capped('cursor', counts, () => `${where}area ${a}: cursor (area.index) ${index} outside 0..${pool.areaNslabs - 1}`);
      }
      const timeouts = Atomics.load(pool.areas, b + AREA_PARK_TIMEOUTS);
      if (expect.noParkTimeouts === true && timeouts !== 0) {
        capped('park', counts, () => `${where}area ${a}: ${timeouts} park(s) on the lock word timed out: a lost wakeup (no correct unlock leaves a parked waiter for a whole park timeout)`);
      }
    }
  }
  const total = Atomics.load(mem.header, MEM_TOTAL_USED);
  if (total !== 0 || areaSum !== 0) out.push(`total_used ${total}, sum of area.used ${areaSum} at quiescence; both must be 0`);
  const hiwater = Atomics.load(mem.header, MEM_USED_HIWATER);
  if (expect.allocUsedMax !== undefined && hiwater < expect.allocUsedMax) {
    out.push(`used_hiwater ${hiwater} is below ${expect.allocUsedMax}, a total_used an allocation reached since the last reset`);
  }
  if (expect.observedUsedMax !== undefined && hiwater < expect.observedUsedMax) {
    out.push(`used_hiwater ${hiwater} is below ${expect.observedUsedMax}, an io_tlb_used a thread read (no reset happened)`);
  }
  const transientMax = expect.transientSlotsMax ?? 0;
  if (expect.threads !== undefined && hiwater > mem.nslabs + transientMax + expect.threads * IO_TLB_SEGSIZE) {
    out.push(`used_hiwater ${hiwater} exceeds nslabs ${mem.nslabs}${transientMax > 0 ? ` plus ${transientMax} transient slots` : ''} plus one segment per thread (${expect.threads} threads)`);
  }
  const throttle = throttleQuiescentViolations(mem.throttle, mem.pools);
  for (const [k, v] of throttle.entries()) {
    if (k < MAX_PER_CHECK) out.push(v);
    else if (k === MAX_PER_CHECK) out.push('(throttle: more not listed)');
  }
  return out;
}
