// Many threads against one pool: the invariants of reference §18 hold during and after the run.
import { describe, expect, it } from 'vitest';
import { IO_TLB_SEGSIZE } from '../../src/swiotlb/constants.js';
import type { ExerciserConfig, ExerciserResult } from '../../src/swiotlb/exerciser.js';
import { MEM_USED_HIWATER } from '../../src/swiotlb/layout.js';
import { IoTlbMem } from '../../src/swiotlb/mem.js';
import { quiescenceViolations } from '../../src/swiotlb/quiesce.js';
import { runWorkers } from '../../src/util/threads.js';
import { GUEST_BASE, POOL_START } from '../helpers.js';

async function run(threads: number, nslabs: number, nareas: number, ops: number, maxSize: number, minAlignMask: number) {
  const mem = IoTlbMem.create({ nslabs, nareas, start: POOL_START, forceBounce: true });
  const regionBytes = 8 * (maxSize + 4096 + 64);
  const guest = new SharedArrayBuffer(regionBytes * threads);
  const owners = new SharedArrayBuffer(nslabs * 4);
  const cfgs: ExerciserConfig[] = Array.from({ length: threads }, (_, cpu) => ({
    shared: mem.shared(), owners, guest, guestBase: GUEST_BASE, regionOffset: cpu * regionBytes, regionBytes,
    cpu, ops, seed: 1000 + cpu, maxLive: 8, maxSize, minAlignMask,
  }));
  const results = await runWorkers<ExerciserResult>('exerciser', cfgs);
  return { mem, results, owners: new Int32Array(owners) };
}

function checkQuiescent(mem: IoTlbMem, results: ExerciserResult[], owners: Int32Array) {
  expect(results.flatMap((r) => r.violations)).toEqual([]);
  const observedUsedMax = Math.max(...results.map((r) => r.maxUsedSeen));
  expect(quiescenceViolations(mem, { observedUsedMax, threads: results.length })).toEqual([]);
  expect(owners.every((o) => o === 0)).toBe(true);
  expect(Atomics.load(mem.header, MEM_USED_HIWATER)).toBeGreaterThan(0);
}

describe('multi-threaded map/unmap against one pool', () => {
  it('8 threads x 100,000 operations, one area each, 4 KiB-ish mappings', async () => {
    const { mem, results, owners } = await run(8, 8 * IO_TLB_SEGSIZE * 2, 8, 100_000, 16 * 1024, 0);
    checkQuiescent(mem, results, owners);
    const maps = results.reduce((s, r) => s + r.maps, 0);
    expect(maps).toBeGreaterThan(300_000);
    expect(results.every((r) => r.unmaps === r.maps)).toBe(true);
  });
  it('8 threads x 100,000 operations sharing 2 areas of a small pool, NVMe alignment, up to the maximum size', async () => {
    const { mem, results, owners } = await run(8, 1024, 2, 40_000, 258048, 0xfff);
    checkQuiescent(mem, results, owners);
    // The pool is small enough that some maps fail; failures must leave no trace.
    expect(results.reduce((s, r) => s + r.mapFailures, 0)).toBeGreaterThan(0);
  });
});
