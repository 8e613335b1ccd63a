// [proposal] The hybrid policy: Robin Murphy's alternative to the throttling RFC, in his reply to
// "[RFC 0/7] Introduce swiotlb throttling" (Aug 2024, seed thread 000), not in any kernel tree:
//
//   "it would make far more sense for this to be a tuneable policy of a more holistic SWIOTLB_DYNAMIC
//    itself, i.e. blockable calls can opportunistically wait for free space up to a well-defined
//    timeout, but then also fall back to synchronously allocating a new pool in order to assure a
//    definite outcome of success or system-is-dying-level failure."
//
// How this emulator reads it (every choice below is ours, since no patch exists):
//   - The allocator is a dynamic one (CONFIG_SWIOTLB_DYNAMIC: the growth worker, transient pools).
//     Maps without DMA_ATTR_MAY_BLOCK behave exactly as in dynamic swiotlb.
//   - "wait for free space" is the throttling RFC's wait: a MAY_BLOCK map above high_throttle (or above
//     low_throttle while throttle_sem is held) down()s throttle_sem (throttle.ts, the same FIFO
//     semaphore with direct handoff), but for at most the timeout (--hybrid-timeout). Granted in
//     time, it goes on as a throttled map does (holds the semaphore until its unmap).
//   - Timed out, it leaves the queue and grows the allocator from its own context: a new dynamic pool
//     through swiotlb_alloc_pool + add_mem_pool (DynamicSwiotlb.addPool, the path the growth worker
//     runs), pages from the guest's buddy allocator below phys_limit, set_memory_decrypted at its
//     modelled cost, published the same RCU-safe way; then its slot search runs (the new pool first).
//     It does not grow when io_tlb_nslabs already grew while it waited (another thread's pool gave
//     the room its wait was for): counted as a grow skipped. A failed growth leaves the search to
//     dynamic swiotlb's fallback (schedule the worker, a transient pool).
//   - The thresholds follow io_tlb_nslabs: percentages (the RFC's 70% / 65% by default, or
//     --high-throttle N%) are re-applied to the allocator's size after every growth, so a grown pool
//     is not throttled as if it were the boot pool. A threshold given in slots stays as given.
//
// Shared state: this module's region (layout below); the semaphore, thresholds and wait statistics
// are the throttle module's (throttle.ts), the pools dynamic.ts's.
import { assert, InputError } from '../errors.js';
import { setMemoryDecrypted } from '../memory/arena.js';
import { IO_TLB_SIZE } from './constants.js';
import type { DmaDevice } from '../dma/device.js';
import type { DynamicSwiotlb } from './dynamic.js';
import { MEM_NSLABS } from './layout.js';
import type { SwiotlbEventSink } from './mem.js';
import type { ThrottleState } from './throttle.js';

// --- layout of the hybrid region (Int32 words; f64 fields at even indices, read at index >> 1) ---
export const HYB_MAGIC = 0;
export const HYB_MAGIC_VALUE = 0x48594231; // "HYB1"
export const HYB_SCALED_NSLABS = 1; // io_tlb_nslabs the thresholds were last computed for
export const HYB_TIMEOUTS = 2; // waits that reached the timeout
export const HYB_GROWS = 3; // synchronous growths that added a pool
export const HYB_GROW_FAILED = 4; // synchronous growths that found no memory ("Failed to allocate new pool") or were refused by --grow-limit
export const HYB_GROW_SKIPPED = 5; // timeouts that did not grow: io_tlb_nslabs grew during the wait
export const HYB_GROW_SLABS = 6; // slots added by synchronous growths
export const HYB_TIMEOUT_MS = 8; // f64: the timeout, ms of the run's clock
export const HYB_HIGH_PERCENT = 10; // f64: high_throttle as a percentage of io_tlb_nslabs; -1: fixed slots
export const HYB_LOW_PERCENT = 12; // f64: low_throttle likewise
export const HYB_DECRYPT_NS_PER_MIB = 14; // f64: set_memory_decrypted's cost for a synchronous growth
export const HYB_GROW_MS_SUM = 16; // f64: time spent in synchronous growths (the maps that grew waited this)
export const HYB_GROW_MS_MAX = 18; // f64
export const HYB_INTS = 32;
export const HYB_BYTES = HYB_INTS * 4;

/** Longest --hybrid-timeout: a minute (longer is a hang by another name). */
export const HYBRID_TIMEOUT_MAX_MS = 60_000;

export interface HybridCreateOptions {
  /** The timed wait's bound, ms of the run's clock; 0 grows at once. */
  timeoutMs: number;
  /** high_throttle / low_throttle as percentages of io_tlb_nslabs, or null for a fixed slot count. */
  highPercent: number | null;
  lowPercent: number | null;
  /** set_memory_decrypted's modelled cost per MiB for the synchronous growth (memory/arena.ts). */
  decryptLatencyNsPerMiB: number;
  /** io_tlb_nslabs at boot (the thresholds' starting point). */
  nslabs: number;
}

export interface HybridStats {
  timeout_ms: number;
  timeouts: number;
  sync_grows: number;
  sync_grow_bytes: number;
  sync_grow_failed: number;
  sync_grow_skipped: number;
  sync_grow_ms_avg: number;
  sync_grow_ms_max: number;
}

/** The hybrid region, initialised. */
export function createHybridRegion(o: HybridCreateOptions): SharedArrayBuffer {
  if (!(Number.isFinite(o.timeoutMs) && o.timeoutMs >= 0 && o.timeoutMs <= HYBRID_TIMEOUT_MAX_MS)) {
    throw new InputError('EBADDURATION', `hybrid timeout: ${o.timeoutMs} ms is invalid; expected 0 to 1m`);
  }
  const sab = new SharedArrayBuffer(HYB_BYTES);
  const i32 = new Int32Array(sab);
  const f64 = new Float64Array(sab);
  i32[HYB_SCALED_NSLABS] = o.nslabs;
  f64[HYB_TIMEOUT_MS >> 1] = o.timeoutMs;
  f64[HYB_HIGH_PERCENT >> 1] = o.highPercent ?? -1;
  f64[HYB_LOW_PERCENT >> 1] = o.lowPercent ?? -1;
  f64[HYB_DECRYPT_NS_PER_MIB >> 1] = o.decryptLatencyNsPerMiB;
  Atomics.store(i32, HYB_MAGIC, HYB_MAGIC_VALUE);
  return sab;
}

/** This thread's handle on the hybrid policy of an allocator. */
export class HybridPolicy {
  readonly i32: Int32Array;
  private readonly f64: Float64Array;
  readonly timeoutMs: number;
  /** io_tlb_nslabs this thread read at its last throttle decision (followNslabs). */
  private decidedNslabs = 0;

  constructor(
    readonly sab: SharedArrayBuffer,
    private readonly header: Int32Array,
    private readonly dyn: DynamicSwiotlb,
    private readonly throttle: ThrottleState,
    private readonly events: () => SwiotlbEventSink | null,
  ) {
    this.i32 = new Int32Array(sab);
    this.f64 = new Float64Array(sab);
    assert(this.i32[HYB_MAGIC] === HYB_MAGIC_VALUE, 'the hybrid region is initialised');
    assert(throttle.enabled, 'the hybrid policy waits on throttle_sem: throttling is enabled');
    this.timeoutMs = this.f64[HYB_TIMEOUT_MS >> 1]!;
    // A mapping thread that grows needs set_memory_decrypted at the configured cost (the growth
    // worker brings its own).
    const mem = dyn.memory;
    if (mem !== null && mem.setMemoryDecrypted === undefined) {
      const ns = this.f64[HYB_DECRYPT_NS_PER_MIB >> 1]!;
      mem.setMemoryDecrypted = (addr, bytes) => setMemoryDecrypted(addr, bytes, ns);
    }
  }

  /**
   * Before a MAY_BLOCK map's throttle decision: note io_tlb_nslabs, and when it changed since the
   * thresholds were computed, re-apply the percentages to it. Several threads may see the change at
   * once; the compare-exchange lets one of them write, and a later growth is seen at the next map.
   */
  followNslabs(): void {
    const n = Atomics.load(this.header, MEM_NSLABS);
    this.decidedNslabs = n;
    const scaled = Atomics.load(this.i32, HYB_SCALED_NSLABS);
    if (n === scaled || Atomics.compareExchange(this.i32, HYB_SCALED_NSLABS, scaled, n) !== scaled) return;
    const high = this.f64[HYB_HIGH_PERCENT >> 1]!;
    const low = this.f64[HYB_LOW_PERCENT >> 1]!;
    if (high >= 0) this.throttle.writeTunable('high_throttle', Math.floor((n * high) / 100));
    if (low >= 0) this.throttle.writeTunable('low_throttle', Math.floor((n * low) / 100));
  }

  /** The run-clock time at which a wait that began at `t0` times out. */
  deadline(t0: number): number {
    return t0 + this.timeoutMs;
  }

  /**
   * The wait timed out: grow synchronously from this thread, unless io_tlb_nslabs grew during the
   * wait. The caller then searches (the new pool is found first: it heads the list).
   */
  timedOut(dev: DmaDevice, vcpu: number): void {
    const i32 = this.i32;
    Atomics.add(i32, HYB_TIMEOUTS, 1);
    if (Atomics.load(this.header, MEM_NSLABS) !== this.decidedNslabs) {
      Atomics.add(i32, HYB_GROW_SKIPPED, 1);
      return;
    }
    const res = this.dyn.addPool();
    if (res.ok) {
      Atomics.add(i32, HYB_GROWS, 1);
      Atomics.add(i32, HYB_GROW_SLABS, res.nslabs);
      const f = this.f64;
      f[HYB_GROW_MS_SUM >> 1] = f[HYB_GROW_MS_SUM >> 1]! + res.tookMs; // racy by design: a report figure
      if (res.tookMs > f[HYB_GROW_MS_MAX >> 1]!) f[HYB_GROW_MS_MAX >> 1] = res.tookMs;
      this.events()?.({ event: 'pool_created', msg: '', device: dev.name, vcpu, pool: res.pool, start: res.start, nslabs: res.nslabs, nareas: res.nareas });
      return;
    }
    Atomics.add(i32, HYB_GROW_FAILED, 1);
    // [proposal] --grow-limit's refusal is not the kernel's message (grow-limit.ts).
    if (res.limited !== undefined) this.events()?.({ event: 'swiotlb_warn', msg: res.reason, device: dev.name, vcpu });
    else this.events()?.({ event: 'growth_failed', msg: 'software IO TLB: Failed to allocate new pool', device: dev.name, vcpu, reason: `[proposal] hybrid synchronous growth: ${res.reason}` });
  }

  stats(): HybridStats {
    const i32 = this.i32;
    const f = this.f64;
    const grows = Atomics.load(i32, HYB_GROWS);
    return {
      timeout_ms: this.timeoutMs, timeouts: Atomics.load(i32, HYB_TIMEOUTS), sync_grows: grows,
      sync_grow_bytes: Atomics.load(i32, HYB_GROW_SLABS) * IO_TLB_SIZE, sync_grow_failed: Atomics.load(i32, HYB_GROW_FAILED),
      sync_grow_skipped: Atomics.load(i32, HYB_GROW_SKIPPED),
      sync_grow_ms_avg: grows === 0 ? 0 : f[HYB_GROW_MS_SUM >> 1]! / grows, sync_grow_ms_max: f[HYB_GROW_MS_MAX >> 1]!,
    };
  }
}
