// The harness's view of every pool of a trial's allocator, read straight from shared memory (never
// through the allocator, whose code is what is being checked): the sum of area.used over the default
// pool, every published dynamic pool and every live transient pool; the pool table's nslabs; and
// the arrays whose words pct-blocked threads wait on.
import type { GuestMemoryShared } from '../memory/boot.js';
import {
  AREA_INTS, AREA_USED, DYN_MAX_READERS, DYN_TR_HWM, MEM_NPOOLS, MEM_POOL_TABLE, POOL_DESC_INTS, POOL_META_OFFSET,
  POOL_NAREAS, POOL_NSLABS, TR_INTS, TR_LIVE, TR_META_BYTES, TR_STATE, dynTransientTable,
} from '../swiotlb/layout.js';
import type { IoTlbMemShared } from '../swiotlb/mem.js';
import type { TrialConfig } from './config.js';

/** Thread records of a trial's control block: the vCPUs, then (dynamic trials) the growth worker. */
export function ctlThreads(cfg: TrialConfig): number {
  return cfg.vcpus + (cfg.dynamic !== null ? 1 : 0);
}

// The arrays pct-blocked threads wait on, by index (the same list in every thread and the main thread).
export const WATCH_AREAS = 0; // the default pool's areas
export const WATCH_THROTTLE = 1; // [RFC] the throttle region (throttle_sem's lock and waiters)
export const WATCH_META = 2; // dynamic and transient pools' areas (the metadata arena)
export const WATCH_DYN = 3; // the dynamic region: mem->lock, the devices' transient-list locks
export const WATCH_ATOMIC = 4; // the atomic pool's lock
export const WATCH_CTL = 5; // the control block (the growth worker waits for work there)
export const WATCH_PHYS = 6; // guest physical memory's lock (the growth worker's alloc_pages)

/** The watched arrays of a trial, in WATCH_* order; absent regions are a one-word stand-in. */
export function watchedArrays(shared: IoTlbMemShared, memory: GuestMemoryShared | undefined, ctl: Int32Array): Int32Array[] {
  const none = () => new Int32Array(new SharedArrayBuffer(4));
  return [
    new Int32Array(shared.pools[0]!.areas), new Int32Array(shared.throttle),
    shared.dyn !== undefined ? new Int32Array(shared.dyn.meta) : none(),
    shared.dyn !== undefined ? new Int32Array(shared.dyn.region) : none(),
    memory !== undefined ? new Int32Array(memory.atomicPool.sab) : none(),
    ctl,
    memory !== undefined ? new Int32Array(memory.phys.sab) : none(),
  ];
}

/** Which watched array holds `words` (a view into one of them), and the view's first index in it; null if none. */
export function watchOf(watched: readonly Int32Array[], words: Int32Array | undefined): { array: number; base: number } | null {
  if (words === undefined) return null;
  for (let k = 0; k < watched.length; k++) {
    if (watched[k]!.buffer === words.buffer) return { array: k, base: words.byteOffset / 4 };
  }
  return null;
}

export class PoolCounters {
  private readonly defAreas: Int32Array;
  private readonly meta: Int32Array | null;
  private readonly region: Int32Array | null;
  private readonly trBase: number;

  constructor(private readonly header: Int32Array, shared: IoTlbMemShared, private readonly nareas: number) {
    this.defAreas = new Int32Array(shared.pools[0]!.areas);
    this.meta = shared.dyn !== undefined ? new Int32Array(shared.dyn.meta) : null;
    this.region = shared.dyn !== undefined ? new Int32Array(shared.dyn.region) : null;
    this.trBase = this.region !== null ? dynTransientTable(this.region[DYN_MAX_READERS]!) : 0;
  }

  /** Σ area.used: the default pool, every published dynamic pool, every transient pool in TR_LIVE. */
  areaUsedSum(): number {
    let sum = 0;
    for (let a = 0; a < this.nareas; a++) sum += Atomics.load(this.defAreas, a * AREA_INTS + AREA_USED);
    const meta = this.meta;
    const r = this.region;
    if (meta === null || r === null) return sum;
    const h = this.header;
    const n = Atomics.load(h, MEM_NPOOLS);
    for (let p = 1; p < n; p++) {
      const d = MEM_POOL_TABLE + p * POOL_DESC_INTS;
      const base = h[d + POOL_META_OFFSET]! / 4;
      for (let a = 0; a < h[d + POOL_NAREAS]!; a++) sum += Atomics.load(meta, base + a * AREA_INTS + AREA_USED);
    }
    const hwm = Atomics.load(r, DYN_TR_HWM);
    for (let rec = 0; rec < hwm; rec++) {
      if (Atomics.load(r, this.trBase + rec * TR_INTS + TR_STATE) !== TR_LIVE) continue;
      sum += Atomics.load(meta, (rec * TR_META_BYTES) / 4 + AREA_USED);
    }
    return sum;
  }

  /** Σ nslabs of the first `n` entries of the pool table (the default pool and the dynamic ones: never a transient pool). */
  tableNslabs(n: number): number {
    let sum = 0;
    for (let p = 0; p < n; p++) sum += this.header[MEM_POOL_TABLE + p * POOL_DESC_INTS + POOL_NSLABS]!;
    return sum;
  }
}
