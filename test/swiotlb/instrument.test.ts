// The instrumentation points (src/swiotlb/instrument.ts) sit where the stress harness needs them:
// around each area lock, inside the search's critical section, at each area.used change, at the hiwater update, and [RFC] between the read and the write of the racy throttle counters.
import { afterEach, describe, expect, it } from 'vitest';
import { DMA_TO_DEVICE } from '../../src/swiotlb/constants.js';
import { POINT_NAMES, P_THROTTLE_COUNT, setInstrumentHook } from '../../src/swiotlb/instrument.js';
import { AREA_INTS, THR_HIGH_THROTTLE_COUNT } from '../../src/swiotlb/layout.js';
import { IoTlbMem } from '../../src/swiotlb/mem.js';
import { THROTTLE_HIGH, THROTTLE_NONE } from '../../src/swiotlb/throttle.js';
import { POOL_START, fixture } from '../helpers.js';

afterEach(() => setInstrumentHook(null));

describe('instrumentation points', () => {
  it('a map and an unmap pass the points in the order of the algorithm, with their data', () => {
    const { mem, guest, dev } = fixture(512, 4);
    mem.cpu = 2; // starts the search at area 2
    const d = dev();
    const seen: string[] = [];
    setInstrumentHook((p, arg) => seen.push(`${POINT_NAMES[p]}:${arg}`));
    const tlb = mem.tblMapSingle(d, guest.base, 3000, 0, DMA_TO_DEVICE, 0);
    mem.tblUnmapSingle(d, tlb, 3000, DMA_TO_DEVICE, 0);
    const base = 2 * AREA_INTS;
    // 3000 bytes are 2 slots: area.used changes under the lock, total_used after it (§9), both ways.
    expect(seen).toEqual([
      `area_lock_enter:${base}`, `area_lock_acquired:${base}`, 'slots_found:256', 'area_used:2', `area_unlock:${base}`,
      `area_unlocked:${base}`, 'hiwater_update:2',
      `area_lock_enter:${base}`, `area_lock_acquired:${base}`, 'area_used:-2', `area_unlock:${base}`, `area_unlocked:${base}`,
    ]);
  });

  it('with no hook installed nothing is recorded and the allocator behaves the same', () => {
    const { mem, guest, dev } = fixture(128);
    const d = dev();
    const tlb = mem.tblMapSingle(d, guest.base, 100, 0, DMA_TO_DEVICE, 0);
    expect(tlb).toBe(mem.defpool.start);
    mem.tblUnmapSingle(d, tlb, 100, DMA_TO_DEVICE, 0);
    expect(mem.memUsed()).toBe(0);
  });
});

describe('[RFC] the throttle counters\' point', () => {
  it('sits between the read of high_throttle_count and its store, so an increment made there is lost, as the RFC\'s racy counter loses it', () => {
    const mem = IoTlbMem.create({ nslabs: 256, nareas: 1, start: POOL_START, forceBounce: true, throttle: { enabled: true, highThrottle: 10, lowThrottle: 5 } });
    const t = mem.throttle;
    const seen: number[] = [];
    setInstrumentHook((p, arg) => {
      if (p !== P_THROTTLE_COUNT) return;
      seen.push(arg);
      t.i32[THR_HIGH_THROTTLE_COUNT] = 5; // another CPU's increments, between our read and our write
    });
    expect(t.decide(11)).toBe(THROTTLE_HIGH); // 11 > high_throttle 10
    expect(seen).toEqual([0]); // the value read
    expect(mem.throttleDebugfs().high_throttle_count).toBe(1); // 0 + 1: the 5 was overwritten
    expect(t.decide(10)).toBe(THROTTLE_NONE); // 10 is not above 10, and the semaphore is free
    expect(seen).toEqual([0]);
  });
});
