// npm run bench's instrumentation row: what the stress harness's instrumentation points
// (src/swiotlb/instrument.ts) cost when no hook is installed, i.e. in every normal run. The core
// benchmark's allocator step (slot search and release, no copy) on one thread, with the real build of
// mem.js against a copy with the points compiled out (src/bench/variants.ts), each loaded by URL the
// same way, the two alternated within one window on the same thread. Target: >= 0.97.
import { GUEST_BASE } from '../memory/guest.js';
import { POOL_START } from '../swiotlb/constants.js';
import { IoTlbMem } from '../swiotlb/mem.js';
import { ARM_PHASE_MS, ARM_WINDOW_FACTOR, CONTROL_INTS, type CoreBenchThreadConfig, runCoreBenchWindow } from './core-bench.js';
import { instrumentedMemModule, uninstrumentedMemModule } from './variants.js';

const SIZE = 4096;

export interface InstrumentationCost {
  /** Pairs/s of the real build (points in, no hook). */
  withPoints: number;
  /** Pairs/s with the points compiled out. */
  withoutPoints: number;
  /** withPoints / withoutPoints: 1.00 means the points cost nothing. */
  ratio: number;
}

/**
 * The allocator step on one thread with two pools of the same geometry, one driven by the real build
 * and one by the compiled-out copy, the thread switching between them every ARM_PHASE_MS within one
 * window of ARM_WINDOW_FACTOR x `seconds` (core-bench.ts says why).
 */
export async function measureInstrumentationCost(seconds: number): Promise<InstrumentationCost> {
  const pool = () => IoTlbMem.create({ nslabs: 4096, nareas: 1, start: POOL_START, forceBounce: true }).shared();
  const cfg: CoreBenchThreadConfig = {
    mode: 'alloc', shared: pool(), sharedB: pool(), guest: new SharedArrayBuffer(2 * SIZE), guestBase: GUEST_BASE, cpu: 0,
    control: new SharedArrayBuffer(CONTROL_INTS * 4), sizeBytes: SIZE,
    memModule: instrumentedMemModule(), memModuleB: uninstrumentedMemModule(),
  };
  const { results, armMs } = await runCoreBenchWindow([cfg], seconds * ARM_WINDOW_FACTOR, ARM_PHASE_MS);
  const r = results[0]!;
  const withPoints = Math.round((r.pairs - r.pairsArmB) / (armMs.a / 1000));
  const withoutPoints = Math.round(r.pairsArmB / (armMs.b / 1000));
  return { withPoints, withoutPoints, ratio: withPoints / withoutPoints };
}
