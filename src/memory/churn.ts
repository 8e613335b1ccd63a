// Ageing guest memory during a run (--churn): a background thread that allocates and frees pages the
// way the page cache does, so that free memory fragments while the VM runs. Each page is one order-0
// allocation with no address limit (GFP_HIGHUSER_MOVABLE: ZONE_NORMAL first, then DMA32); the cache
// holds at most holdPages pages, and once full every new page first evicts a random cached one (reclaim
// takes cold pages from anywhere in memory, which is what scatters the free pages). The rate is
// pages per second, kept against the clock in 1 ms steps; the seed makes the eviction choices replay.
// The cache stays allocated at the end of the run (the report's "at the end" shows it).
// Not modelled: large folios (page cache allocations above order 0), dirty writeback, LRU order.
import { Rng } from '../util/rng.js';
import { CmaArea, type CmaShared } from './cma.js';
import { GuestPhysMem, type GuestPhysShared } from './phys.js';

// ---- layout of the control words (Int32) ----
export const CHURN_STOP = 0;
export const CHURN_ALLOCS = 1; // pages allocated (folios count their pages)
export const CHURN_FREES = 2;
export const CHURN_FAILS = 3; // allocations that found no free block
export const CHURN_HELD = 4; // pages the cache holds now
export const CHURN_CONTROL_INTS = 8;
/** Most pages one 1 ms step does, so a late step catches up in bounded bursts. */
const CHURN_MAX_BATCH = 4096;
const STEP_MS = 1;

export interface ChurnConfig {
  phys: GuestPhysShared;
  control: SharedArrayBuffer;
  ratePagesPerSec: number;
  holdPages: number;
  seed: number;
  /** [proposal] --policy cma: the CMA area, whose pages movable allocations may borrow (cma.ts). */
  cma?: CmaShared;
}

export interface ChurnStats {
  rate_pages_per_s: number;
  hold_pages: number;
  allocs: number;
  frees: number;
  failures: number;
  held_pages: number;
}

export function churnStats(control: SharedArrayBuffer, ratePagesPerSec: number, holdPages: number): ChurnStats {
  const c = new Int32Array(control);
  return {
    rate_pages_per_s: ratePagesPerSec, hold_pages: holdPages, allocs: Atomics.load(c, CHURN_ALLOCS), frees: Atomics.load(c, CHURN_FREES),
    failures: Atomics.load(c, CHURN_FAILS), held_pages: Atomics.load(c, CHURN_HELD),
  };
}

/** The churn thread's loop, until CHURN_STOP. */
export function runChurn(cfg: ChurnConfig): void {
  const phys = GuestPhysMem.attach(cfg.phys);
  // [proposal] The page cache is movable: an order-0 page may come from the CMA area (cma.ts's balance).
  const cma = cfg.cma === undefined ? null : CmaArea.attach(cfg.cma, phys);
  const zones = phys.populatedZones();
  const buddyFree = (): number => zones.reduce((a, z) => a + phys.freePagesCount(z), 0);
  const free = (addr: number, order: number): void => {
    if (cma !== null && cma.contains(addr)) cma.freeMovable(addr);
    else phys.freePages(addr, order);
  };
  const c = new Int32Array(cfg.control);
  const rng = new Rng(cfg.seed);
  const held = new Float64Array(cfg.holdPages);
  const heldOrder = new Uint8Array(cfg.holdPages);
  let n = 0;
  let pages = 0;
  let done = 0;
  const t0 = performance.now();
  while (Atomics.load(c, CHURN_STOP) === 0) {
    const due = Math.floor(((performance.now() - t0) * cfg.ratePagesPerSec) / 1000);
    let batch = 0;
    while (done + batch < due && batch < CHURN_MAX_BATCH) {
      const r = rng.below(100);
      const order = r < 75 ? 0 : r < 85 ? 1 : r < 93 ? 2 : 3;
      if ((1 << order) > cfg.holdPages) break;
      while (pages + (1 << order) > cfg.holdPages) {
        const k = rng.below(n);
        const o = heldOrder[k]!;
        free(held[k]!, o);
        pages -= 1 << o;
        n--;
        held[k] = held[n]!;
        heldOrder[k] = heldOrder[n]!;
        Atomics.add(c, CHURN_FREES, 1 << o);
      }
      let addr = cma !== null && order === 0 ? cma.allocMovable(buddyFree()) : -1;
      if (addr < 0) addr = phys.allocPages(order, Number.MAX_SAFE_INTEGER);
      if (addr < 0) Atomics.add(c, CHURN_FAILS, 1);
      else {
        held[n] = addr;
        heldOrder[n++] = order;
        pages += 1 << order;
        Atomics.add(c, CHURN_ALLOCS, 1 << order);
      }
      batch += 1 << order;
    }
    done += Math.max(0, batch);
    if (due - done > CHURN_MAX_BATCH * 100) done = due - CHURN_MAX_BATCH; // far behind (a descheduled thread): do not burst for seconds
    Atomics.store(c, CHURN_HELD, pages);
    Atomics.wait(c, CHURN_STOP, 0, STEP_MS);
  }
}
