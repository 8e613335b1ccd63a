// Figures for guest memory (npm run bench:memory): what the page allocator costs per call, single
// thread and with threads contending for a zone lock, and how the atomic pools behave under a burst
// of transient-pool-sized allocations with the expansion thread running. Ratios within one run only;
// nothing here is asserted.
import { setTimeout as sleep } from 'node:timers/promises';
import { runWorkers } from '../util/threads.js';
import { AP_WORKER_ALIVE } from './atomic-pool.js';
import { bootGuestMemory, startGuestMemoryThreads } from './boot.js';
import type { PhysExerciserConfig, PhysExerciserResult } from './phys-exerciser.js';
import { GuestPhysMem, PHYS_4G } from './phys.js';

export interface MemoryBenchResult {
  alloc_free_ns: { order: number; alloc_ns: number; free_ns: number }[];
  threads: { threads: number; ops_per_s: number }[];
  burst: {
    mem_bytes: number; atomic_pool_size: number; size_start: number; requests: number; request_bytes: number;
    served: number; exhausted: number; first_exhaustion_at: number; expansions: number; size_end: number; pause_ms: number; decrypt_ns_per_mib: number;
  };
}

function timeAllocFree(phys: GuestPhysMem, order: number, n: number): { alloc_ns: number; free_ns: number } {
  const addrs = new Float64Array(n);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) addrs[i] = phys.allocPages(order, PHYS_4G);
  const t1 = performance.now();
  for (let i = 0; i < n; i++) phys.freePages(addrs[i]!, order);
  const t2 = performance.now();
  return { alloc_ns: ((t1 - t0) * 1e6) / n, free_ns: ((t2 - t1) * 1e6) / n };
}

export async function runMemoryBench(opts: { burstRequests: number; pauseMs: number; decryptLatencyNsPerMiB: number }): Promise<MemoryBenchResult> {
  const phys = GuestPhysMem.create({ memBytes: 16 * 1024 ** 3 });
  const alloc_free_ns = [0, 3, 10].map((order) => {
    const n = order === 10 ? 400 : 100_000 >> order;
    timeAllocFree(phys, order, n); // warm-up: JIT, first touch of the frame arrays
    return { order, ...timeAllocFree(phys, order, n) };
  });
  const threads: MemoryBenchResult['threads'] = [];
  for (const t of [1, 2, 4]) {
    const p = GuestPhysMem.create({ memBytes: 256 * 1024 * 1024 });
    const owners = new SharedArrayBuffer(65536 * 4);
    const ops = 200_000;
    const cfgs: PhysExerciserConfig[] = Array.from({ length: t }, (_, id) => ({ shared: p.shared, owners, id, ops, seed: 9 + id, maxLive: 16 }));
    const t0 = performance.now();
    await runWorkers<PhysExerciserResult>('phys-exerciser', cfgs);
    threads.push({ threads: t, ops_per_s: Math.round((t * ops * 1000) / (performance.now() - t0)) });
  }
  // A burst of 256 KiB allocations (a transient pool for one maximum-size mapping) on a 16 GiB guest.
  const boot = bootGuestMemory({ memBytes: 16 * 1024 ** 3, cmdline: '', fragmentation: 'none', decryptLatencyNsPerMiB: opts.decryptLatencyNsPerMiB });
  const th = startGuestMemoryThreads(boot, null);
  // The burst starts once the expansion thread is up and parked (its start-up is not the figure).
  for (let i = 0; i < 500 && Atomics.load(boot.atomicPool.i32, AP_WORKER_ALIVE) === 0; i++) await sleep(10);
  const size_start = boot.atomicPool.stats().size;
  let served = 0;
  let exhausted = 0;
  let first = -1;
  for (let i = 0; i < opts.burstRequests; i++) {
    if (boot.atomicPool.alloc(256 * 1024) !== null) served++;
    else {
      exhausted++;
      if (first < 0) first = i;
    }
    if (opts.pauseMs > 0) await sleep(opts.pauseMs);
  }
  const { atomicPool } = await th.stop();
  return {
    alloc_free_ns, threads,
    burst: {
      mem_bytes: 16 * 1024 ** 3, atomic_pool_size: atomicPool.atomic_pool_size, size_start, requests: opts.burstRequests, request_bytes: 256 * 1024,
      served, exhausted, first_exhaustion_at: first, expansions: atomicPool.expansions, size_end: atomicPool.size, pause_ms: opts.pauseMs, decrypt_ns_per_mib: opts.decryptLatencyNsPerMiB,
    },
  };
}
