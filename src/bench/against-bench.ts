// npm run bench --against DIR: this build's core against another built checkout's (before and after a
// change to the hot path), each configuration one window in which every thread alternates between a
// pool driven by this build's dist/src/swiotlb/mem.js (arm A) and one created and driven by DIR's
// (arm B), every ARM_PHASE_MS, as the instrumentation row does (core-bench.ts says why). Both arms run
// behind this build's DMA layer and bench loop, so only the core differs; the loop's call sites see
// both builds' classes, so each arm's figure is a little below its plain row, and their ratio is what
// the rows are for.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { InputError } from '../errors.js';
import { GUEST_BASE } from '../memory/guest.js';
import { POOL_START } from '../swiotlb/constants.js';
import { IoTlbMem } from '../swiotlb/mem.js';
import { quote } from '../util/quote.js';
import { ARM_PHASE_MS, ARM_WINDOW_FACTOR, CONTROL_INTS, type CoreBenchMode, type CoreBenchThreadConfig, runCoreBenchWindow } from './core-bench.js';
import { instrumentedMemModule } from './variants.js';

const SIZE = 4096;

/** The configurations compared: the allocator alone and the 4 KiB bounce, at 1 and 4 threads (as many areas). */
export const AGAINST_PLAN: readonly { mode: CoreBenchMode; threads: number }[] = [
  { mode: 'alloc', threads: 1 }, { mode: 'alloc', threads: 4 }, { mode: 'bounce', threads: 1 }, { mode: 'bounce', threads: 4 },
];

export interface AgainstRow {
  mode: CoreBenchMode;
  threads: number;
  /** Pairs/s of this build's core (arm A) and of DIR's (arm B), all threads. */
  thisPerS: number;
  againstPerS: number;
}

/** The URL of DIR's build of the core, or an InputError naming what is missing. */
export function againstMemModule(dir: string): string {
  const file = join(dir, 'dist', 'src', 'swiotlb', 'mem.js');
  if (!existsSync(file)) throw new InputError('EBADFLAG', `--against: ${quote(dir)} has no dist/src/swiotlb/mem.js; expected a built checkout (npm run build there)`);
  return pathToFileURL(file).href;
}

/** One window per configuration of AGAINST_PLAN, ARM_WINDOW_FACTOR x `seconds` long, the two builds alternated. */
export async function measureAgainst(dir: string, seconds: number): Promise<AgainstRow[]> {
  const urlB = againstMemModule(dir);
  const MemB = ((await import(urlB)) as { IoTlbMem: typeof IoTlbMem }).IoTlbMem;
  const rows: AgainstRow[] = [];
  for (const { mode, threads } of AGAINST_PLAN) {
    const geometry = { nslabs: Math.max(threads * 128, 4096), nareas: threads, start: POOL_START, forceBounce: true };
    const memA = IoTlbMem.create(geometry);
    const memB = MemB.create(geometry);
    const guest = new SharedArrayBuffer(threads * 2 * SIZE + SIZE);
    const control = new SharedArrayBuffer(CONTROL_INTS * 4);
    const cfgs: CoreBenchThreadConfig[] = Array.from({ length: threads }, (_, cpu) => ({
      mode, shared: memA.shared(), sharedB: memB.shared(), guest, guestBase: GUEST_BASE, cpu, control, sizeBytes: SIZE,
      memModule: instrumentedMemModule(), memModuleB: urlB,
    }));
    const { results, armMs } = await runCoreBenchWindow(cfgs, seconds * ARM_WINDOW_FACTOR, ARM_PHASE_MS);
    const total = results.reduce((a, r) => a + r.pairs, 0);
    const b = results.reduce((a, r) => a + r.pairsArmB, 0);
    rows.push({ mode, threads, thisPerS: Math.round((total - b) / (armMs.a / 1000)), againstPerS: Math.round(b / (armMs.b / 1000)) });
  }
  return rows;
}
