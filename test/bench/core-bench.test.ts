// The core bench's two-arm windows for the trace's floor (npm run bench's trace rows): figures are
// printed by the bench, never asserted; here the window must run and the warm-up's arm-B pairs (what a
// trace's line count includes) must be counted exactly. Which arm a pair of the window falls in is
// the scheduler's (a thread starved through every phase of one arm makes none on it), so the split
// is not checked.
import { describe, expect, it } from 'vitest';
import { ARM_PHASE_MS, CONTROL_INTS, type CoreBenchThreadConfig, type TraceFloor, runCoreBenchWindow } from '../../src/bench/core-bench.js';
import { GUEST_BASE } from '../../src/memory/guest.js';
import { POOL_START } from '../../src/swiotlb/constants.js';
import { IoTlbMem } from '../../src/swiotlb/mem.js';

describe('core bench, trace floor arms', () => {
  it.each<TraceFloor>(['clock', 'call'])('a %s tracer on arm B: the window runs, and the warm-up counts its arm-B pairs', async (floor) => {
    const mem = IoTlbMem.create({ nslabs: 4096, nareas: 1, start: POOL_START, forceBounce: true });
    const cfg: CoreBenchThreadConfig = {
      mode: 'bounce', shared: mem.shared(), guest: new SharedArrayBuffer(3 * 4096), guestBase: GUEST_BASE, cpu: 0,
      control: new SharedArrayBuffer(CONTROL_INTS * 4), sizeBytes: 4096, traceFloor: floor,
    };
    const { results } = await runCoreBenchWindow([cfg], 0.4, ARM_PHASE_MS);
    const r = results[0]!;
    expect(r.pairs).toBeGreaterThan(0);
    expect(r.failures).toBe(0);
    // 200,000 warm-up pairs, arm B while bit 12 of the pair's index is set: 24 whole periods of 8192.
    expect(r.warmupPairsArmB).toBe(24 * 4096);
  }, 60_000);
});
