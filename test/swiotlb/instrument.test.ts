// The instrumentation points (src/swiotlb/instrument.ts) sit where the stress harness needs them:
// around each area lock, inside the search's critical section, and at the hiwater update.
import { afterEach, describe, expect, it } from 'vitest';
import { DMA_TO_DEVICE } from '../../src/swiotlb/constants.js';
import { POINT_NAMES, setInstrumentHook } from '../../src/swiotlb/instrument.js';
import { AREA_INTS } from '../../src/swiotlb/layout.js';
import { fixture } from '../helpers.js';

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
    expect(seen).toEqual([
      `area_lock_enter:${base}`, `area_lock_acquired:${base}`, 'slots_found:256', `area_unlock:${base}`, `area_unlocked:${base}`,
      'hiwater_update:2',
      `area_lock_enter:${base}`, `area_lock_acquired:${base}`, `area_unlock:${base}`, `area_unlocked:${base}`,
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
