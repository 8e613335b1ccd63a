// npm run bench's instrumentation row: what the stress harness's instrumentation points
// (src/swiotlb/instrument.ts) cost when no hook is installed, i.e. in every normal run. The core
// benchmark's allocator step (slot search and release, no copy) on one thread, with the real build of
// mem.js against a copy with the points compiled out (src/bench/variants.ts), each loaded by URL the
// same way, in alternating windows, best of ROUNDS each, so drifting load on a shared machine hits
// both alike. Target: >= 0.97 (in practice: the noise).
import { GUEST_BASE } from '../memory/guest.js';
import { POOL_START } from '../swiotlb/constants.js';
import { IoTlbMem } from '../swiotlb/mem.js';
import { CONTROL_INTS, type CoreBenchThreadConfig, runCoreBenchWindow } from './core-bench.js';
import { instrumentedMemModule, uninstrumentedMemModule } from './variants.js';

const ROUNDS = 5;
const SIZE = 4096;

/** One window of the allocator step on one thread, with the build of mem.js at `memModule`: pairs per second. */
async function window(seconds: number, memModule: string): Promise<number> {
  const mem = IoTlbMem.create({ nslabs: 4096, nareas: 1, start: POOL_START, forceBounce: true });
  const cfg: CoreBenchThreadConfig = {
    mode: 'alloc', shared: mem.shared(), guest: new SharedArrayBuffer(2 * SIZE), guestBase: GUEST_BASE, cpu: 0,
    control: new SharedArrayBuffer(CONTROL_INTS * 4), sizeBytes: SIZE, memModule,
  };
  const { results, elapsedS } = await runCoreBenchWindow([cfg], seconds);
  return Math.round(results[0]!.pairs / elapsedS);
}

export interface InstrumentationCost {
  /** Best pairs/s of the real build (points in, no hook). */
  withPoints: number;
  /** Best pairs/s with the points compiled out. */
  withoutPoints: number;
  /** withPoints / withoutPoints: 1.00 means the points cost nothing. */
  ratio: number;
}

export async function measureInstrumentationCost(seconds: number): Promise<InstrumentationCost> {
  const real = instrumentedMemModule();
  const stripped = uninstrumentedMemModule();
  let withPoints = 0;
  let withoutPoints = 0;
  for (let round = 0; round < ROUNDS; round++) {
    withPoints = Math.max(withPoints, await window(seconds, real));
    withoutPoints = Math.max(withoutPoints, await window(seconds, stripped));
  }
  return { withPoints, withoutPoints, ratio: withPoints / withoutPoints };
}
