// kernel/dma/pool.c's atomic pools: sizes, boot lines, first-fit order-aligned allocation, the
// expansion that doubles a pool, halving under fragmentation, exhaustion; and the work thread.
// Addresses are worked out from the buddy allocator's rules (see phys.test.ts) and pool.c's order:
// init kernel, DMA, DMA32; allocate kernel, DMA32, DMA; expand DMA, DMA32, kernel.
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { InputError, InvariantError } from '../../src/errors.js';
import { DecryptedArena } from '../../src/memory/arena.js';
import {
  AtomicPool, POOL_DMA, POOL_DMA32, POOL_KERNEL, defaultAtomicPoolSize, dmaPoolWarning, getOrder, parseCoherentPoolCmdline,
  stopAtomicPoolWorker,
} from '../../src/memory/atomic-pool.js';
import type { AtomicPoolWorkerConfig } from '../../src/memory/atomic-pool-worker.js';
import { GuestPhysMem, MAX_PAGE_ORDER, ZONE_DMA32 } from '../../src/memory/phys.js';
import { workerFile } from '../../src/util/worker-file.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const G4 = 0x1_0000_0000;

function boot(memBytes: number, coherentPoolBytes?: number) {
  const phys = GuestPhysMem.create({ memBytes });
  const arena = DecryptedArena.create(64 * MiB);
  const { pool, bootLines } = AtomicPool.create({ phys, arena, ...(coherentPoolBytes !== undefined ? { coherentPoolBytes } : {}) });
  return { phys, arena, pool, bootLines };
}

describe('atomic_pool_size', () => {
  it('is 128 KiB per GiB of RAM, at least 128 KiB, at most MAX_ORDER_NR_PAGES pages', () => {
    expect(defaultAtomicPoolSize((16 * GiB) / 4096)).toBe(2 * MiB); // 4 Mi pages / 8192 = 512 pages
    expect(defaultAtomicPoolSize((1 * GiB) / 4096)).toBe(128 * KiB);
    expect(defaultAtomicPoolSize((512 * MiB) / 4096)).toBe(128 * KiB); // 16 pages -> the minimum
    expect(defaultAtomicPoolSize((64 * GiB) / 4096)).toBe(4 * MiB); // 2048 pages -> 1024
    expect(getOrder(389120)).toBe(7); // 95 pages round up to 128
  });
  it('coherent_pool= is read as memparse reads it; 0 means the default; garbage is refused', () => {
    expect(parseCoherentPoolCmdline('quiet coherent_pool=2M')).toBe(2 * MiB);
    expect(parseCoherentPoolCmdline('coherent_pool=0x100000')).toBe(MiB);
    expect(parseCoherentPoolCmdline('coherent_pool=010k')).toBe(8 * KiB); // C base 0: a leading 0 is octal
    expect(parseCoherentPoolCmdline('coherent_pool=0')).toBeUndefined();
    expect(parseCoherentPoolCmdline('swiotlb=1024')).toBeUndefined();
    expect(() => parseCoherentPoolCmdline('coherent_pool=2X')).toThrow(InputError);
    expect(() => parseCoherentPoolCmdline('coherent_pool=')).toThrow(/coherent_pool=<size>/);
  });
});

describe('AtomicPool', () => {
  // 3 GiB guest: totalram = (524288 - 256) + 262144 = 786176 pages -> 95 pages (389120 bytes) ->
  // each pool's chunk is order 7, 512 KiB. Kernel pool: the first Normal block, 4 GiB. DMA pool:
  // DMA32's order-8 block at 1 MiB split, its lower half 0x100000. DMA32 pool: the upper half 0x180000.
  it('preallocates the kernel, DMA and DMA32 pools at boot, with the kernel\'s lines', () => {
    const { pool, bootLines } = boot(3 * GiB);
    expect(bootLines).toEqual([
      'DMA: preallocated 512 KiB GFP_KERNEL pool for atomic allocations',
      'DMA: preallocated 512 KiB GFP_KERNEL|GFP_DMA pool for atomic allocations',
      'DMA: preallocated 512 KiB GFP_KERNEL|GFP_DMA32 pool for atomic allocations',
    ]);
    const s = pool.stats();
    expect(s).toMatchObject({ size: 1536 * KiB, avail: 1536 * KiB, atomic_pool_size: 389120, expansions: 0, exhaustions: 0 });
    expect(s.pools).toEqual({ pool_size_dma: 512 * KiB, pool_size_dma32: 512 * KiB, pool_size_kernel: 512 * KiB });
  });
  it('allocates first fit in kernel, DMA32, DMA order; low pools queue the work once; exhaustion returns null', () => {
    const { pool } = boot(3 * GiB);
    const got = Array.from({ length: 6 }, () => pool.alloc(256 * KiB)!.phys);
    expect(got).toEqual([G4, G4 + 256 * KiB, 0x180000, 0x1c0000, 0x100000, 0x140000]);
    expect(pool.alloc(4096)).toBeNull();
    const s = pool.stats();
    expect(s).toMatchObject({ avail: 0, exhaustions: 1, allocations: 6, work_queued: 1 });
  });
  it('aligns to the request\'s own order: 12 KiB takes 4 pages\' alignment', () => {
    const { pool } = boot(3 * GiB);
    expect(pool.alloc(4096)!.phys).toBe(G4);
    expect(pool.alloc(12 * KiB)!.phys).toBe(G4 + 16 * KiB); // 3 pages, aligned to 4
    expect(pool.alloc(4096)!.phys).toBe(G4 + 4096); // first fit goes back to the hole
  });
  it('the work adds a chunk as large as each low pool (it doubles), newest chunk first', () => {
    const { pool, phys } = boot(3 * GiB);
    for (let i = 0; i < 6; i++) pool.alloc(256 * KiB);
    const added = pool.workFn(0);
    // DMA below 16 MiB: order 7 from DMA32's order-9 block at 2 MiB (split: 0x200000); DMA32: the
    // order-7 upper half listed by that split, pfn 640 = 0x280000; kernel: the order-7 upper half of
    // the Normal split at boot, 4 GiB + 512 KiB.
    expect(added).toEqual([
      { pool: POOL_DMA, bytes: 512 * KiB, phys: 0x200000, size: 1 * MiB },
      { pool: POOL_DMA32, bytes: 512 * KiB, phys: 0x280000, size: 1 * MiB },
      { pool: POOL_KERNEL, bytes: 512 * KiB, phys: G4 + 512 * KiB, size: 1 * MiB },
    ]);
    expect(pool.stats()).toMatchObject({ size: 3 * MiB, avail: 1536 * KiB, expansions: 3 });
    expect(pool.alloc(256 * KiB)!.phys).toBe(G4 + 512 * KiB);
    expect(phys.checkInvariants()).toEqual([]);
  });
  it('halves the order when guest memory cannot give the chunk, and says when a pool cannot be made', () => {
    const phys = GuestPhysMem.create({ memBytes: 256 * MiB });
    // Only order-3 blocks (32 KiB) are free, laid out in the highest 4 MiB block (above 16 MiB).
    const counts = Array.from({ length: MAX_PAGE_ORDER + 1 }, (_, k) => (k === 3 ? 8 : 0));
    expect(phys.setFreeBlocks(ZONE_DMA32, counts)).toBe(true);
    // totalram = 65280 pages -> 7 pages -> the 128 KiB minimum (order 5); no Normal zone, no kernel pool.
    const { pool, bootLines } = AtomicPool.create({ phys, arena: DecryptedArena.create(MiB) });
    expect(bootLines).toEqual([
      'DMA: failed to allocate 128 KiB GFP_KERNEL|GFP_DMA pool for atomic allocation',
      'DMA: preallocated 32 KiB GFP_KERNEL|GFP_DMA32 pool for atomic allocations',
    ]);
    expect(pool.stats().pools).toEqual({ pool_size_dma: 0, pool_size_dma32: 32 * KiB, pool_size_kernel: 0 });
  });
  it('free gives the pages back; a double free is an InvariantError', () => {
    const { pool } = boot(3 * GiB);
    const a = pool.alloc(64 * KiB)!;
    pool.free(a.phys, 64 * KiB);
    expect(pool.stats().avail).toBe(1536 * KiB);
    expect(() => pool.free(a.phys, 64 * KiB)).toThrow(InvariantError);
    expect(() => pool.free(0x4000_0000, 4096)).toThrow(InvariantError);
  });
  it('dma_alloc_from_pool\'s messages', () => {
    expect(dmaPoolWarning('eth0', true, true)).toBeNull();
    expect(dmaPoolWarning('eth0', true, false)).toBe('DMA pool exhausted for eth0');
    expect(dmaPoolWarning('eth0', false, true)).toBe('Failed to get suitable pool for eth0');
  });
});

describe('the atomic pool work thread', () => {
  it('expands the pool when an allocation leaves it low, and exits at teardown', async () => {
    const phys = GuestPhysMem.create({ memBytes: 3 * GiB });
    const arena = DecryptedArena.create(64 * MiB);
    const { pool } = AtomicPool.create({ phys, arena });
    const cfg: AtomicPoolWorkerConfig = { phys: phys.shared, arena: arena.shared, pool: pool.shared, decryptLatencyNsPerMiB: 0, parkMs: 50 };
    const w = new Worker(workerFile('atomic-pool'), { workerData: cfg });
    const exited = new Promise<number>((resolve) => w.once('exit', resolve));
    const result = new Promise<unknown>((resolve) => w.once('message', resolve));
    pool.alloc(256 * KiB); // kernel pool: 256 KiB left < 389120: the work is queued
    for (let i = 0; i < 200 && pool.stats().expansions === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(pool.stats()).toMatchObject({ expansions: 1, size: 2 * MiB, work_runs: 1 });
    expect(pool.stats().pools.pool_size_kernel).toBe(1 * MiB);
    stopAtomicPoolWorker(pool);
    expect(await exited).toBe(0);
    expect(await result).toMatchObject({ expansions: 1 });
  });
});
