// The churn thread: page-cache folios allocated and evicted at a rate while it runs; it stops when
// told, what it holds is what it allocated less what it freed, and the free lists stay consistent.
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { CHURN_CONTROL_INTS, CHURN_STOP, type ChurnConfig, churnStats } from '../../src/memory/churn.js';
import { GuestPhysMem, ZONE_DMA32 } from '../../src/memory/phys.js';
import { workerFile } from '../../src/util/worker-file.js';

describe('churn', () => {
  it('holds at most its cache, accounts every page, leaves the allocator consistent, and stops', async () => {
    const phys = GuestPhysMem.create({ memBytes: 256 * 1024 * 1024 });
    const free0 = phys.freePagesCount(ZONE_DMA32);
    const control = new SharedArrayBuffer(CHURN_CONTROL_INTS * 4);
    const cfg: ChurnConfig = { phys: phys.shared, control, ratePagesPerSec: 200_000, holdPages: 2048, seed: 5 };
    const w = new Worker(workerFile('churn'), { workerData: cfg });
    const exited = new Promise<number>((resolve) => w.once('exit', resolve));
    const c = new Int32Array(control);
    for (let i = 0; i < 300 && churnStats(control, 0, 0).frees === 0; i++) await new Promise((r) => setTimeout(r, 10));
    Atomics.store(c, CHURN_STOP, 1);
    Atomics.notify(c, CHURN_STOP);
    expect(await exited).toBe(0);
    const s = churnStats(control, 200_000, 2048);
    expect(s.frees).toBeGreaterThan(0); // the cache filled and evicted
    expect(s.allocs - s.frees).toBe(s.held_pages);
    expect(s.held_pages).toBeLessThanOrEqual(2048);
    expect(s.failures).toBe(0);
    expect(phys.freePagesCount(ZONE_DMA32)).toBe(free0 - s.held_pages);
    expect(phys.checkInvariants()).toEqual([]);
  });
});
