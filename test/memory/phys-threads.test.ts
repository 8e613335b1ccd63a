// Several threads allocating and freeing on one page allocator: no page is ever in two allocations
// (checked per page as it happens), and once every thread has freed what it held the free lists are
// exactly the boot state again (every merge happened) with the invariants intact.
import { describe, expect, it } from 'vitest';
import { GuestPhysMem } from '../../src/memory/phys.js';
import type { PhysExerciserConfig, PhysExerciserResult } from '../../src/memory/phys-exerciser.js';
import { runWorkers } from '../../src/util/threads.js';

describe('guest physical memory under threads', () => {
  it('4 threads x 20,000 operations on a zone with 16 MiB free: exclusive pages, free counts back to the start', async () => {
    const phys = GuestPhysMem.create({ memBytes: 256 * 1024 * 1024 });
    // Leave 16 MiB free so that allocations also fail and threads compete for the last blocks.
    phys.memblockAllocLow(239 * 1024 * 1024, 4096, 2 ** 32);
    const initial = phys.buddyinfo();
    const owners = new SharedArrayBuffer(65536 * 4);
    const cfgs: PhysExerciserConfig[] = Array.from({ length: 4 }, (_, id) => ({
      shared: phys.shared, owners, id, ops: 20_000, seed: 77 + id, maxLive: 24,
    }));
    const results = await runWorkers<PhysExerciserResult>('phys-exerciser', cfgs);
    expect(results.flatMap((r) => r.violations)).toEqual([]);
    expect(results.every((r) => r.frees === r.allocs)).toBe(true);
    expect(results.reduce((s, r) => s + r.allocs, 0)).toBeGreaterThan(20_000);
    expect(results.reduce((s, r) => s + r.failures, 0)).toBeGreaterThan(0);
    expect(phys.buddyinfo()).toBe(initial);
    expect(phys.checkInvariants()).toEqual([]);
    expect(new Int32Array(owners).every((o) => o === 0)).toBe(true);
  });
});
