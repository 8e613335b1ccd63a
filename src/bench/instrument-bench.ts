// npm run bench's instrumentation row: what the stress harness's instrumentation points
// (src/swiotlb/instrument.ts) cost when no hook is installed, i.e. in every normal run. The allocator
// alone (slot search and release, no copy) on one thread, the real build against a copy of the core
// with the points compiled out (src/bench/variants.ts), in alternating windows, best of ROUNDS each,
// so drifting load on a shared machine hits both alike. Target: >= 0.97 (in practice: the noise).
import { setTimeout as sleep } from 'node:timers/promises';
import { DmaDevice } from '../dma/device.js';
import { GUEST_BASE, GuestMemory } from '../memory/guest.js';
import { IO_TLB_SIZE, POOL_START } from '../swiotlb/constants.js';
import { IoTlbMem, type IoTlbMemShared } from '../swiotlb/mem.js';
import { runWorkers } from '../util/threads.js';
import { uninstrumentedMemModule } from './variants.js';

export interface InstrumentBenchConfig {
  shared: IoTlbMemShared;
  guest: SharedArrayBuffer;
  guestBase: number;
  /** [0] ready, [1] 1 = run, 2 = stop. */
  control: SharedArrayBuffer;
  /** URL of the build of mem.js to measure; absent: the real one. */
  memModule?: string;
}

const ROUNDS = 5;
const WARMUP_PAIRS = 200_000;
const SIZE = 4096;

/** Worker side: search and release pairs while the control word says run; returns the count. */
export function runInstrumentBenchThread(cfg: InstrumentBenchConfig, Mem: typeof IoTlbMem): number {
  const guest = new GuestMemory(cfg.guest, cfg.guestBase);
  const mem = Mem.attach(cfg.shared, { cpu: 0, guest });
  const dev = new DmaDevice('bench0');
  const pool = mem.defpool;
  const orig = guest.addrOf(0);
  const ctl = new Int32Array(cfg.control);
  const step = () => {
    const index = mem.findSlots(dev, orig, SIZE, 0);
    pool.origAddr[index] = orig; // what release checks, without the copy
    mem.releaseSlots(dev, pool.start + index * IO_TLB_SIZE, pool);
  };
  for (let i = 0; i < WARMUP_PAIRS; i++) step();
  Atomics.store(ctl, 0, 1);
  while (Atomics.load(ctl, 1) === 0) Atomics.wait(ctl, 1, 0, 50);
  let pairs = 0;
  while (Atomics.load(ctl, 1) === 1) {
    step();
    pairs++;
  }
  return pairs;
}

async function window(seconds: number, memModule: string | undefined): Promise<number> {
  const mem = IoTlbMem.create({ nslabs: 4096, nareas: 1, start: POOL_START, forceBounce: true });
  const control = new SharedArrayBuffer(8);
  const ctl = new Int32Array(control);
  const cfg: InstrumentBenchConfig = { shared: mem.shared(), guest: new SharedArrayBuffer(2 * SIZE), guestBase: GUEST_BASE, control, memModule };
  const done = runWorkers<number>('bench-instrument', [cfg]);
  while (Atomics.load(ctl, 0) === 0) await sleep(5);
  const t0 = performance.now();
  Atomics.store(ctl, 1, 1);
  Atomics.notify(ctl, 1);
  await sleep(seconds * 1000);
  Atomics.store(ctl, 1, 2);
  const elapsed = (performance.now() - t0) / 1000;
  const [pairs] = await done;
  return Math.round(pairs! / elapsed);
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
  const stripped = uninstrumentedMemModule();
  let withPoints = 0;
  let withoutPoints = 0;
  for (let round = 0; round < ROUNDS; round++) {
    withPoints = Math.max(withPoints, await window(seconds, undefined));
    withoutPoints = Math.max(withoutPoints, await window(seconds, stripped));
  }
  return { withPoints, withoutPoints, ratio: withPoints / withoutPoints };
}
