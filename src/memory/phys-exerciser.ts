// One thread's seeded allocate/free workload against the shared page allocator, checked as it goes:
// every page of a block it is given must be owned by nobody (an owner word per frame, claimed by
// compare-and-exchange), so a page handed to two allocations at once is caught where it happens.
// Used by the multi-thread test (test/memory/phys-threads.test.ts) through workers/phys-exerciser.ts.
import { Rng } from '../util/rng.js';
import { GuestPhysMem, type GuestPhysShared, MAX_PAGE_ORDER, PAGE_SIZE, PHYS_4G } from './phys.js';

export interface PhysExerciserConfig {
  shared: GuestPhysShared;
  /** Int32 per page frame below 4 GiB: 0 free, else the owning thread's id + 1. */
  owners: SharedArrayBuffer;
  id: number;
  ops: number;
  seed: number;
  /** Most blocks a thread holds at once. */
  maxLive: number;
}

export interface PhysExerciserResult {
  allocs: number;
  failures: number;
  frees: number;
  violations: string[];
}

export function runPhysExerciser(cfg: PhysExerciserConfig): PhysExerciserResult {
  const phys = GuestPhysMem.attach(cfg.shared);
  const owners = new Int32Array(cfg.owners);
  const rng = new Rng(cfg.seed);
  const me = cfg.id + 1;
  const live: { addr: number; order: number }[] = [];
  const violations: string[] = [];
  let allocs = 0;
  let failures = 0;
  let frees = 0;
  const release = (i: number) => {
    const b = live[i]!;
    live[i] = live[live.length - 1]!;
    live.pop();
    const pfn = b.addr / PAGE_SIZE;
    for (let p = pfn; p < pfn + (1 << b.order); p++) {
      if (Atomics.compareExchange(owners, p, me, 0) !== me) violations.push(`thread ${cfg.id}: page ${p} changed owner while held`);
    }
    phys.freePages(b.addr, b.order);
    frees++;
  };
  for (let op = 0; op < cfg.ops && violations.length < 10; op++) {
    if (live.length >= cfg.maxLive || (live.length > 0 && rng.below(2) === 0)) {
      release(rng.below(live.length));
      continue;
    }
    // Mostly small blocks, some up to MAX_PAGE_ORDER: splits and merges at every order.
    const r = rng.below(10);
    const order = r < 5 ? 0 : r < 8 ? 1 + rng.below(3) : 4 + rng.below(MAX_PAGE_ORDER - 3);
    const addr = phys.allocPages(order, PHYS_4G);
    if (addr < 0) {
      failures++;
      continue;
    }
    allocs++;
    const pfn = addr / PAGE_SIZE;
    if (pfn % (1 << order) !== 0) violations.push(`thread ${cfg.id}: order-${order} block at pfn ${pfn} is not aligned`);
    for (let p = pfn; p < pfn + (1 << order); p++) {
      const prev = Atomics.compareExchange(owners, p, 0, me);
      if (prev !== 0) violations.push(`thread ${cfg.id}: page ${p} given while thread ${prev - 1} holds it`);
    }
    live.push({ addr, order });
  }
  while (live.length > 0) release(live.length - 1);
  return { allocs, failures, frees, violations };
}
