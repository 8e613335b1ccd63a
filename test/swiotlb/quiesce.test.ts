// The quiescence checks (src/swiotlb/quiesce.ts): silent on a pool whose mappings were all unmapped,
// and naming each broken invariant of reference §18 when one is broken by hand.
import { describe, expect, it } from 'vitest';
import { DMA_TO_DEVICE } from '../../src/swiotlb/constants.js';
import {
  AREA_INDEX, AREA_LOCK, AREA_PARK_TIMEOUTS, AREA_USED, MEM_TOTAL_USED, MEM_USED_HIWATER,
} from '../../src/swiotlb/layout.js';
import { quiescenceViolations } from '../../src/swiotlb/quiesce.js';
import { fixture } from '../helpers.js';

describe('quiescence checks (§18.3-§18.7)', () => {
  it('accept a pool whose mappings were all unmapped', () => {
    const { mem, guest, dev } = fixture(512, 2);
    const d = dev();
    const a = mem.tblMapSingle(d, guest.base, 5000, 0, DMA_TO_DEVICE, 0);
    const b = mem.tblMapSingle(d, guest.base + 0x10000, 300, 0, DMA_TO_DEVICE, 0);
    expect(quiescenceViolations(mem)).not.toEqual([]); // two mappings are live
    mem.tblUnmapSingle(d, a, 5000, DMA_TO_DEVICE, 0);
    mem.tblUnmapSingle(d, b, 300, DMA_TO_DEVICE, 0);
    // 3 + 1 slots were in use at most.
    expect(quiescenceViolations(mem, { allocUsedMax: 4, observedUsedMax: 4, threads: 1, noParkTimeouts: true })).toEqual([]);
  });

  it('name a list value, metadata, area.used, lock word, cursor and counters that are off', () => {
    const { mem } = fixture(256, 2);
    const pool = mem.defpool;
    pool.list[5] = 3; // initial 123
    pool.padSlots[7] = 1;
    pool.areas[pool.areaBase(1) + AREA_USED] = 2;
    pool.areas[pool.areaBase(0) + AREA_LOCK] = 1;
    pool.areas[pool.areaBase(1) + AREA_INDEX] = 128; // area_nslabs: the reset to 0 was missed
    pool.areas[pool.areaBase(0) + AREA_PARK_TIMEOUTS] = 1;
    mem.header[MEM_TOTAL_USED] = 2;
    const v = quiescenceViolations(mem, { noParkTimeouts: true });
    expect(v).toContain('slot 5: list 3 at quiescence, initial value 123');
    expect(v.some((m) => m.startsWith('slot 7: metadata not reset'))).toBe(true);
    expect(v).toContain('area 1: used 2 at quiescence, expected 0');
    expect(v).toContain('area 0: lock word 1 at quiescence, expected 0 (free)');
    expect(v).toContain('area 1: cursor (area.index) 128 outside 0..127');
    expect(v.some((m) => m.startsWith('area 0: 1 park(s) on the lock word timed out'))).toBe(true);
    expect(v).toContain('total_used 2, sum of area.used 2 at quiescence; both must be 0');
  });

  it('bound used_hiwater below by what allocations reached and above by nslabs plus a segment per thread', () => {
    const { mem } = fixture(256, 1);
    mem.header[MEM_USED_HIWATER] = 300;
    expect(quiescenceViolations(mem, { allocUsedMax: 301 })).toEqual(['used_hiwater 300 is below 301, a total_used an allocation reached since the last reset']);
    expect(quiescenceViolations(mem, { observedUsedMax: 300 })).toEqual([]);
    // 256 slots + one release in flight of at most 128 slots per thread: 300 is possible with 1 thread.
    expect(quiescenceViolations(mem, { threads: 1 })).toEqual([]);
    mem.header[MEM_USED_HIWATER] = 385;
    expect(quiescenceViolations(mem, { threads: 1 })).toEqual(['used_hiwater 385 exceeds nslabs 256 plus one segment per thread (1 threads)']);
  });
});
