// Dynamic swiotlb on real threads: 4 vCPU-like threads map and unmap (canary-checked) against a
// small default pool while the growth worker thread adds pools and transient pools come and go.
// Afterwards (quiescence): every pool, dynamic ones included, is back to its initial state;
// total_used and io_tlb_transient_nslabs are 0; mem->nslabs is the sum of the non-transient pools;
// every transient pool created was freed exactly once (the core asserts the once).
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { bootGuestMemory } from '../../src/memory/boot.js';
import { POOL_START } from '../../src/swiotlb/constants.js';
import type { DynExerciserConfig, DynExerciserResult } from '../../src/swiotlb/dyn-exerciser.js';
import type { GrowthWorkerTask } from '../../src/swiotlb/dyn-worker.js';
import { IoTlbMem } from '../../src/swiotlb/mem.js';
import { quiescenceViolations } from '../../src/swiotlb/quiesce.js';
import { workerFile } from '../../src/util/worker-file.js';

const MiB = 1024 ** 2;

function runWorker<T>(name: string, data: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const w = new Worker(workerFile(name), { workerData: data });
    w.once('message', resolve);
    w.once('error', reject);
  });
}

describe('dynamic swiotlb on real threads', () => {
  it('pools published while 4 threads map and unmap are seen whole, transient pools are freed once, and everything adds up at quiescence', async () => {
    const g = bootGuestMemory({ memBytes: 1024 * MiB, cmdline: 'coherent_pool=1M', fragmentation: 'none', decryptLatencyNsPerMiB: 0 });
    const mem = IoTlbMem.create({
      nslabs: 512, nareas: 4, start: POOL_START, forceBounce: true, canGrow: true,
      dynamic: { headroomBytes: g.arena.capacityBytes, defaultNslabs: 512, maxTransient: 256, arena: g.arena.shared.data },
    });
    const growTask: GrowthWorkerTask = { mem: mem.shared(), phys: g.phys.shared, arena: g.arena.shared, atomicPool: g.atomicPool.shared, decryptLatencyNsPerMiB: 0, parkMs: 2 };
    const grower = runWorker<{ runs: number; pools: number }>('swiotlb-dyn', growTask);
    const threads = 4;
    const region = 8 * 64 * 1024;
    const guest = new SharedArrayBuffer(threads * region);
    const results = await Promise.all(Array.from({ length: threads }, (_, cpu) => runWorker<DynExerciserResult>('dyn-exerciser', {
      shared: mem.shared(), phys: g.phys.shared, arena: g.arena.shared, atomicPool: g.atomicPool.shared, guest, guestBase: 0x1_0000_0000,
      regionOffset: cpu * region, cpu, ops: 8_000, seed: 1000 + cpu, maxLive: 8, maxSize: 64 * 1024,
    } satisfies DynExerciserConfig)));
    mem.dyn!.stop();
    const grown = await grower;
    for (const r of results) expect(r.errors).toEqual([]);
    const outside = results.reduce((a, r) => a + r.outside, 0);
    expect(outside).toBeGreaterThan(0); // the run did use dynamic or transient pools
    const after = IoTlbMem.attach(mem.shared());
    expect(quiescenceViolations(after)).toEqual([]);
    const d = after.debugfs();
    expect([d.io_tlb_used, d.io_tlb_transient_nslabs]).toEqual([0, 0]);
    expect(d.io_tlb_nslabs).toBe(after.pools.reduce((a, p) => a + p.nslabs, 0));
    expect(after.pools.length).toBe(1 + grown.pools);
    const s = after.dyn!.stats();
    after.dyn!.memory = { arena: g.arena, atomicPool: g.atomicPool };
    after.dyn!.reclaim();
    const s2 = after.dyn!.stats();
    expect(s2.transient_freed).toBe(s.transient_created);
    expect(s2.transient_live + s2.transient_retired).toBe(0);
  }, 120_000);
});
