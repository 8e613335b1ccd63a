// [RFC] swiotlb throttling (Michael Kelley, "[RFC 0/7] Introduce swiotlb throttling", Aug 2024):
// the throttle state of one allocator in shared memory (reference §15, §16, invariants §18.14-15).
//
// What lives here:
//   - high_throttle / low_throttle and the two racy counters (high_throttle_count, low_throttle_count);
//   - throttle_sem, a counting semaphore initialised to 1, modelled as §16 says: count in {0, 1} plus a
//     FIFO wait queue with direct handoff (kernel/locking/semaphore.c: up() with waiters gives the
//     semaphore to the first one and leaves count at 0, so a later down() cannot barge);
//   - who holds it and who waits, so that a watchdog can name them;
//   - an abort word that ends every wait, and the per-thread statistics block (ThrottleStats).
//
// Departures from the kernel, and why:
//   - sem->lock is a spinlock in the kernel; here it is the area lock's three-state futex (it parks
//     after a bounded spin), because lock holders are preempted freely on 2 cores.
//   - A waiter sleeps uninterruptibly with no timeout in the kernel. Here it parks in slices of
//     THR_WAIT_SLICE_MS and re-checks THR_ABORT after each, so that a watchdog can end a run that the
//     RFC's design would hang (a self-deadlock, §15.9). Nothing else differs: without an abort the
//     waiter keeps waiting, as the kernel's would.
//   - The holder is recorded (cpu, device, size, since), which the kernel does not do, for reports.
import { InputError, InvariantError, assert } from '../errors.js';
import { type HistogramSnapshot, LatencyHistogram } from '../report/histogram.js';
import { nowMs, timeScale } from '../util/clock.js';
import { areaLock, areaUnlock } from './area-lock.js';
import {
  P_THROTTLE_ACQUIRED, P_THROTTLE_COUNT, P_THROTTLE_GRANTED, P_THROTTLE_QUEUED, P_THROTTLE_WAIT, hook,
} from './instrument.js';
import {
  THROTTLE_BYTES, THROTTLE_DEVICE_NAMES_MAX, THROTTLE_DEVICE_NAME_BYTES, THROTTLE_HOLDER_MAPPING,
  THROTTLE_HOLDER_NONE, THROTTLE_HOLDER_REQUEST, THROTTLE_INTS, THROTTLE_WAITERS_MAX, THR_ABORT, THR_ABORTED_WAITS,
  THR_DEADLOCKS, THR_DEVICE_NAMES, THR_DEVICE_NAMES_USED, THR_ENABLED, THR_HIGH_THROTTLE, THR_HIGH_THROTTLE_COUNT,
  THR_HOLDER_DEVICE, THR_HOLDER_KIND, THR_HOLDER_SINCE_MS, THR_HOLDER_SIZE_BYTES, THR_HOLDER_VCPU,
  THR_LOW_THROTTLE, THR_LOW_THROTTLE_COUNT, THR_MAGIC, THR_MAGIC_VALUE, THR_QUEUE_HEAD, THR_QUEUE_LEN,
  THR_QUEUE_LEN_MAX, THR_QUEUE_RING, THR_RECORD_HINT, THR_SEM_COUNT, THR_SEM_LOCK_RECORD, THR_WAITERS,
  THR_WAIT_SLICE_MS, TSTAT_BOUND_SLOTS_AT_MAX, TSTAT_BYTES, TSTAT_FIELDS, TSTAT_NAMES,
  TSTAT_NON_BLOCK_SLOTS_AT_MAX, TSTAT_OTHER_MAY_BLOCK_SLOTS_AT_MAX, TSTAT_OVERSHOOT_HIST_OFFSET,
  TSTAT_OVERSHOOT_SLOTS_MAX, TSTAT_OWN_SLOTS_AT_MAX, TSTAT_USED_SLOTS_PEAK_THROTTLED, TSTAT_WAIT_HIST_OFFSET,
  TSTAT_WAITS, TSTAT_WAIT_NS_MAX, TSTAT_WAIT_NS_TOTAL, WAITER_DEVICE, WAITER_ENQUEUED_MS, WAITER_FREE, WAITER_GRANTED, WAITER_INTS, WAITER_QUEUED,
  WAITER_SIZE_BYTES, WAITER_STATE, WAITER_VCPU,
} from './layout.js';
import type { IoTlbPool } from './pool.js';

/** init_throttling: high_throttle = nslabs * 70 / 100 (rounded down). */
export const THROTTLE_HIGH_PERCENT = 70;
/** init_throttling: low_throttle = nslabs * 65 / 100 (rounded down). */
export const THROTTLE_LOW_PERCENT = 65;
/** Default longest single park of a waiter before it looks at the abort word. */
export const THROTTLE_WAIT_SLICE_MS_DEFAULT = 50;
/** sem->lock: spins before parking, and the longest park (a lost wakeup costs this much, never a hang). */
const SEM_LOCK_SPINS = 64;
const SEM_LOCK_PARK_MS = 100;
/** Largest value a tunable takes: the region stores them as Int32 (the RFC's are unsigned longs). */
const TUNABLE_MAX = 0x7fffffff;
const RING_MASK = THROTTLE_WAITERS_MAX - 1;
/** A waiter with interrupts to take (whileWaiting) parks at most this long between looks at them. */
const IRQ_POLL_SLICE_MS = 1;
/** Device id of a name that did not fit the table. */
export const THROTTLE_DEVICE_UNKNOWN = -1;

/** The throttle decision (§15.4): no throttle, or why. */
export const THROTTLE_NONE = 0;
export const THROTTLE_HIGH = 1;
export const THROTTLE_LOW = 2;
export type ThrottleDecision = typeof THROTTLE_NONE | typeof THROTTLE_HIGH | typeof THROTTLE_LOW;
export const THROTTLE_REASONS = ['none', 'high', 'low'] as const;

/** downBegin() results that are not a queued waiter's record number. */
export const DOWN_ACQUIRED = -1;
export const DOWN_ABORTED = -2;
/** downWait() results. */
export const WAIT_GRANTED = 0;
export const WAIT_ABORTED = 1;
/** downWait() with a deadline: still queued at the deadline, the waiter left the queue (hybrid.ts). */
export const WAIT_TIMED_OUT = 2;

export interface ThrottleOptions {
  /** CONFIG_SWIOTLB_THROTTLE for this allocator. Default false: MAY_BLOCK is ignored, thresholds read 0. */
  enabled: boolean;
  /** Initial high_throttle in slots; default floor(nslabs * 70 / 100). Ignored when disabled. */
  highThrottle?: number;
  /** Initial low_throttle in slots; default floor(nslabs * 65 / 100). Ignored when disabled. */
  lowThrottle?: number;
  /** Longest single park of a waiter, ms; default THROTTLE_WAIT_SLICE_MS_DEFAULT. */
  waitSliceMs?: number;
}

/** The debugfs files the RFC adds next to io_tlb_used (§15.8), all mode 0600. */
export interface ThrottleDebugfs {
  high_throttle: number;
  low_throttle: number;
  high_throttle_count: number;
  low_throttle_count: number;
}
export type ThrottleTunable = keyof ThrottleDebugfs;
export const THROTTLE_TUNABLES: readonly ThrottleTunable[] = Object.freeze([
  'high_throttle', 'low_throttle', 'high_throttle_count', 'low_throttle_count',
]);
const TUNABLE_WORD: Readonly<Record<ThrottleTunable, number>> = Object.freeze({
  high_throttle: THR_HIGH_THROTTLE,
  low_throttle: THR_LOW_THROTTLE,
  high_throttle_count: THR_HIGH_THROTTLE_COUNT,
  low_throttle_count: THR_LOW_THROTTLE_COUNT,
});

/** Where the knobs live: the RFC's debugfs files, and the sysctl names floated in review (§15.8). */
export const THROTTLE_DEBUGFS_DIR = '/sys/kernel/debug/swiotlb';
export function throttleSysctlPath(name: ThrottleTunable, pool = 'default'): string {
  return `/proc/sys/kernel/dma/swiotlb_${pool}/${name}`;
}
/** Proposed sysctl path -> tunable name, for the default allocator. */
export const THROTTLE_SYSCTL_PATHS: Readonly<Record<string, ThrottleTunable>> = Object.freeze(
  Object.fromEntries(THROTTLE_TUNABLES.map((n) => [throttleSysctlPath(n), n])),
);
/** debugfs path -> tunable name, for the default allocator. */
export const THROTTLE_DEBUGFS_PATHS: Readonly<Record<string, ThrottleTunable>> = Object.freeze(
  Object.fromEntries(THROTTLE_TUNABLES.map((n) => [`${THROTTLE_DEBUGFS_DIR}/${n}`, n])),
);

/** One party to the semaphore: the holder, or a waiter. Field names follow the log's StallParty. */
export interface ThrottleParty {
  vcpu: number;
  device: string;
  /** Mapping size in bytes. */
  size: number;
}
export interface ThrottleHolder extends ThrottleParty {
  /** 'request': between down() and the end of its slot search; 'mapping': a live throttled mapping. */
  kind: 'request' | 'mapping';
  since_ms: number;
  held_ms: number;
}
export interface ThrottleWaiter extends ThrottleParty {
  waited_ms: number;
}

/** Who holds throttle_sem and who waits, in queue order: what a watchdog reports. */
export interface ThrottleSnapshot extends ThrottleDebugfs {
  enabled: boolean;
  /** sem->count: 1 free, 0 held. */
  count: number;
  held: boolean;
  holder: ThrottleHolder | null;
  waiters: ThrottleWaiter[];
  queue_len: number;
  queue_len_max: number;
  deadlocks: number;
  aborted_waits: number;
  abort: boolean;
  t_ms: number;
}

/** init_throttling's defaults for an allocator of `nslabs` slots. */
export function defaultThrottleThresholds(nslabs: number): { high_throttle: number; low_throttle: number } {
  return {
    high_throttle: Math.floor((nslabs * THROTTLE_HIGH_PERCENT) / 100),
    low_throttle: Math.floor((nslabs * THROTTLE_LOW_PERCENT) / 100),
  };
}

function checkTunable(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > TUNABLE_MAX) {
    throw new InputError('EINVAL', `${name}: ${value} is invalid; expected a whole number of slots from 0 to ${TUNABLE_MAX}`);
  }
}

/**
 * The throttle state of one allocator: views of its region plus this thread's caches. Every thread
 * attaches its own; all of them see one semaphore.
 */
export class ThrottleState {
  readonly sab: SharedArrayBuffer;
  readonly i32: Int32Array;
  private readonly f64: Float64Array;
  private readonly u8: Uint8Array;
  /** Fixed at boot: whether MAY_BLOCK is honoured at all. */
  readonly enabled: boolean;
  private readonly sliceMs: number;
  private readonly deviceIds = new Map<string, number>();
  /** Thresholds the last decide() compared with (the slop measurement needs them). */
  decidedHigh = 0;
  decidedLow = 0;
  /** Waiters ahead of the last request this thread queued. */
  queuedAhead = 0;
  /** The holder that the last downBegin found to be the caller's own mapping (§15.9), else null. */
  deadlockHolder: ThrottleHolder | null = null;
  /** Called in the waiter's thread right after it is granted the semaphore (diagnostics, tests). */
  onGranted: (() => void) | null = null;

  constructor(sab: SharedArrayBuffer) {
    assert(sab.byteLength === THROTTLE_BYTES, 'throttle region has the layout size');
    this.sab = sab;
    this.i32 = new Int32Array(sab, 0, THROTTLE_INTS);
    this.f64 = new Float64Array(sab, 0, THROTTLE_INTS >> 1);
    this.u8 = new Uint8Array(sab);
    assert(this.i32[THR_MAGIC] === THR_MAGIC_VALUE, 'throttle region is initialised');
    this.enabled = this.i32[THR_ENABLED] === 1;
    this.sliceMs = this.i32[THR_WAIT_SLICE_MS]!;
  }

  /**
   * A fresh region, initialised as init_throttling does once the default pool exists (§15.3):
   * count 1, thresholds at 70% / 65% of nslabs, or both 0 without the config option.
   */
  static create(nslabs: number, opts: ThrottleOptions = { enabled: false }): ThrottleState {
    const sab = new SharedArrayBuffer(THROTTLE_BYTES);
    const i32 = new Int32Array(sab);
    const sliceMs = opts.waitSliceMs ?? THROTTLE_WAIT_SLICE_MS_DEFAULT;
    if (!Number.isInteger(sliceMs) || sliceMs < 1) {
      throw new InputError('EINVAL', `throttle wait slice: ${sliceMs} ms is invalid; expected a whole number of ms, at least 1`);
    }
    const defaults = defaultThrottleThresholds(nslabs);
    const high = opts.enabled ? opts.highThrottle ?? defaults.high_throttle : 0;
    const low = opts.enabled ? opts.lowThrottle ?? defaults.low_throttle : 0;
    checkTunable('high_throttle', high);
    checkTunable('low_throttle', low);
    i32[THR_ENABLED] = opts.enabled ? 1 : 0;
    i32[THR_HIGH_THROTTLE] = high;
    i32[THR_LOW_THROTTLE] = low;
    i32[THR_WAIT_SLICE_MS] = sliceMs;
    i32[THR_SEM_COUNT] = 1; // sema_init(&mem->throttle_sem, 1)
    i32[THR_HOLDER_VCPU] = -1;
    i32[THR_HOLDER_DEVICE] = THROTTLE_DEVICE_UNKNOWN;
    Atomics.store(i32, THR_MAGIC, THR_MAGIC_VALUE);
    return new ThrottleState(sab);
  }

  get highThrottle(): number {
    return Atomics.load(this.i32, THR_HIGH_THROTTLE);
  }
  get lowThrottle(): number {
    return Atomics.load(this.i32, THR_LOW_THROTTLE);
  }
  /** sem->count read without the lock, as the RFC's "semaphore held" test reads it. */
  semCount(): number {
    return Atomics.load(this.i32, THR_SEM_COUNT);
  }
  /** Waiters parked right now (read without the lock). */
  queueLength(): number {
    return Atomics.load(this.i32, THR_QUEUE_LEN);
  }

  // --- the decision (§15.4 steps 1-4) ---------------------------------------------------------

  /**
   * Given `used` (total_used, read once by the caller, no reservation): throttle when used >
   * high_throttle, or when used > low_throttle and the semaphore is held. The counter of the reason
   * is incremented with a plain load and store: increments lost under contention are faithful. (The
   * stress harness's point between the load and the store lets its schedules interleave there.)
   * Touches nothing of the semaphore.
   */
  decide(used: number): ThrottleDecision {
    const i32 = this.i32;
    const high = i32[THR_HIGH_THROTTLE]!;
    const low = i32[THR_LOW_THROTTLE]!;
    this.decidedHigh = high;
    this.decidedLow = low;
    if (used > high) {
      const c = i32[THR_HIGH_THROTTLE_COUNT]!;
      if (hook !== null) hook(P_THROTTLE_COUNT, c, i32);
      i32[THR_HIGH_THROTTLE_COUNT] = c + 1;
      return THROTTLE_HIGH;
    }
    // The RFC reads sem->count directly, without the semaphore's lock.
    if (used > low && Atomics.load(i32, THR_SEM_COUNT) === 0) {
      const c = i32[THR_LOW_THROTTLE_COUNT]!;
      if (hook !== null) hook(P_THROTTLE_COUNT, c, i32);
      i32[THR_LOW_THROTTLE_COUNT] = c + 1;
      return THROTTLE_LOW;
    }
    return THROTTLE_NONE;
  }

  // --- throttle_sem -----------------------------------------------------------------------------

  private lock(): void {
    areaLock(this.i32, THR_SEM_LOCK_RECORD, SEM_LOCK_SPINS, SEM_LOCK_PARK_MS);
  }
  private unlock(): void {
    areaUnlock(this.i32, THR_SEM_LOCK_RECORD);
  }

  /**
   * First half of down(): take the semaphore at once if it is free (DOWN_ACQUIRED), or join the tail
   * of the FIFO and return the waiter's record number, to be passed to downWait(). When the abort
   * word is set and the caller would have to wait, it does not queue (DOWN_ABORTED). Before queueing
   * it checks for the self-deadlock of §15.9: the semaphore is held by a live throttled mapping made
   * on the caller's own cpu; then deadlockHolder names that holder (else it is null).
   */
  downBegin(vcpu: number, device: string, sizeBytes: number): number {
    const dev = this.deviceId(device);
    const i32 = this.i32;
    this.deadlockHolder = null;
    this.lock();
    if (i32[THR_SEM_COUNT]! > 0) {
      assert(i32[THR_QUEUE_LEN] === 0, 'throttle_sem: count 1 with waiters queued');
      i32[THR_SEM_COUNT] = 0;
      this.setHolder(vcpu, dev, sizeBytes);
      if (hook !== null) hook(P_THROTTLE_ACQUIRED, 0, i32);
      this.unlock();
      return DOWN_ACQUIRED;
    }
    if (i32[THR_HOLDER_KIND] === THROTTLE_HOLDER_MAPPING && i32[THR_HOLDER_VCPU] === vcpu) {
      this.deadlockHolder = this.holderLocked(nowMs());
      i32[THR_DEADLOCKS] = i32[THR_DEADLOCKS]! + 1;
    }
    if (Atomics.load(i32, THR_ABORT) !== 0) {
      i32[THR_ABORTED_WAITS] = i32[THR_ABORTED_WAITS]! + 1;
      this.unlock();
      return DOWN_ABORTED;
    }
    const r = this.allocRecordLocked();
    const rec = THR_WAITERS + r * WAITER_INTS;
    i32[rec + WAITER_VCPU] = vcpu;
    i32[rec + WAITER_DEVICE] = dev;
    i32[rec + WAITER_SIZE_BYTES] = sizeBytes;
    this.f64[(rec + WAITER_ENQUEUED_MS) >> 1] = nowMs();
    Atomics.store(i32, rec + WAITER_STATE, WAITER_QUEUED);
    const len = i32[THR_QUEUE_LEN]!;
    assert(len < THROTTLE_WAITERS_MAX, 'throttle_sem: wait queue overflow');
    i32[THR_QUEUE_RING + ((i32[THR_QUEUE_HEAD]! + len) & RING_MASK)] = r;
    Atomics.store(i32, THR_QUEUE_LEN, len + 1);
    if (len + 1 > i32[THR_QUEUE_LEN_MAX]!) i32[THR_QUEUE_LEN_MAX] = len + 1;
    this.queuedAhead = len;
    if (hook !== null) hook(P_THROTTLE_QUEUED, r, i32);
    this.unlock();
    return r;
  }

  /**
   * What this thread's CPU does while its task sleeps in down(): in the kernel a task parked on
   * throttle_sem does not stop its CPU from taking interrupts, so the completions of its earlier
   * requests are still unmapped (and may release the semaphore). A vCPU thread that parks blocks its
   * own interrupt handling, so it sets this to its interrupt handler, which never blocks and never
   * maps; the wait then polls it every IRQ_POLL_SLICE_MS. Null: no interrupts to take (tests, devices).
   */
  whileWaiting: (() => void) | null = null;

  /**
   * Second half of down(): park on the record's own word until up() hands the semaphore over
   * (WAIT_GRANTED), or until the abort word is seen (WAIT_ABORTED: the waiter has left the queue and
   * holds nothing). Each park lasts at most THR_WAIT_SLICE_MS.
   *
   * `deadlineMs` (the run's clock, nowMs) bounds the wait: the RFC's down() has none (Infinity, the
   * default); the hybrid policy's timed wait (hybrid.ts, Robin Murphy's proposal) passes one, and a
   * waiter still queued at the deadline leaves the queue (order of the others kept) and gets
   * WAIT_TIMED_OUT, holding nothing. A grant that races the deadline wins: the waiter then holds it.
   */
  downWait(r: number, deadlineMs = Infinity): number {
    const i32 = this.i32;
    const word = THR_WAITERS + r * WAITER_INTS + WAITER_STATE;
    const irq = this.whileWaiting;
    const timed = deadlineMs !== Infinity;
    if (hook !== null) hook(P_THROTTLE_WAIT, word, i32);
    for (;;) {
      let park = irq === null ? this.sliceMs : IRQ_POLL_SLICE_MS;
      // The deadline is on the run's clock; Atomics.wait parks on the wall's (K times longer).
      if (timed) park = Math.max(0, Math.min(park, (deadlineMs - nowMs()) * timeScale()));
      if (park > 0) Atomics.wait(i32, word, WAITER_QUEUED, park);
      if (Atomics.load(i32, word) === WAITER_GRANTED) return this.granted(word);
      // The task sleeps, its CPU does not: completions that arrive meanwhile are handled, and their
      // unmaps may be the up() that hands the semaphore to this very waiter.
      if (irq !== null) {
        irq();
        if (Atomics.load(i32, word) === WAITER_GRANTED) return this.granted(word);
      }
      const aborted = Atomics.load(i32, THR_ABORT) !== 0;
      if (!aborted && !(timed && nowMs() >= deadlineMs)) continue;
      this.lock();
      // up() may have handed it over between our check and the lock: then we hold it after all.
      if (Atomics.load(i32, word) === WAITER_GRANTED) {
        this.unlock();
        return this.granted(word);
      }
      this.removeQueuedLocked(r);
      if (aborted) i32[THR_ABORTED_WAITS] = i32[THR_ABORTED_WAITS]! + 1;
      Atomics.store(i32, word, WAITER_FREE);
      this.unlock();
      return aborted ? WAIT_ABORTED : WAIT_TIMED_OUT;
    }
  }

  private granted(word: number): number {
    // The record is ours until we free it; up() already moved the semaphore to us.
    if (hook !== null) hook(P_THROTTLE_GRANTED, word, this.i32);
    Atomics.store(this.i32, word, WAITER_FREE);
    this.onGranted?.();
    return WAIT_GRANTED;
  }

  /** down() in one call (for callers that need no event between the halves). */
  down(vcpu: number, device: string, sizeBytes: number): 'acquired' | 'waited' | 'aborted' {
    const r = this.downBegin(vcpu, device, sizeBytes);
    if (r === DOWN_ACQUIRED) return 'acquired';
    if (r === DOWN_ABORTED) return 'aborted';
    return this.downWait(r) === WAIT_GRANTED ? 'waited' : 'aborted';
  }

  /**
   * up(): with an empty queue count goes 0 -> 1; otherwise the first waiter is removed, becomes the
   * holder and is woken (exactly that one), and count stays 0, so nobody can barge past the queue.
   */
  up(): void {
    const i32 = this.i32;
    this.lock();
    const len = i32[THR_QUEUE_LEN]!;
    if (len === 0) {
      // Invariant 15: every up() matches a successful down(), so the count was 0.
      assert(i32[THR_SEM_COUNT] === 0, 'throttle_sem: up() without a matching down()');
      i32[THR_SEM_COUNT] = 1;
      i32[THR_HOLDER_KIND] = THROTTLE_HOLDER_NONE;
      i32[THR_HOLDER_VCPU] = -1;
      i32[THR_HOLDER_DEVICE] = THROTTLE_DEVICE_UNKNOWN;
      i32[THR_HOLDER_SIZE_BYTES] = 0;
      this.unlock();
      return;
    }
    const head = i32[THR_QUEUE_HEAD]!;
    const r = i32[THR_QUEUE_RING + head]!;
    i32[THR_QUEUE_HEAD] = (head + 1) & RING_MASK;
    Atomics.store(i32, THR_QUEUE_LEN, len - 1);
    const rec = THR_WAITERS + r * WAITER_INTS;
    assert(Atomics.load(i32, rec + WAITER_STATE) === WAITER_QUEUED, 'throttle_sem: the first waiter is queued');
    this.setHolder(i32[rec + WAITER_VCPU]!, i32[rec + WAITER_DEVICE]!, i32[rec + WAITER_SIZE_BYTES]!);
    Atomics.store(i32, rec + WAITER_STATE, WAITER_GRANTED);
    Atomics.notify(i32, rec + WAITER_STATE, 1);
    this.unlock();
  }

  /** The holder's slot search succeeded: from now on a live mapping holds the semaphore. */
  holderMapped(): void {
    Atomics.store(this.i32, THR_HOLDER_KIND, THROTTLE_HOLDER_MAPPING);
  }

  /** Set (or clear) the abort word; setting it wakes every parked waiter so that it gives up now. */
  abort(on = true): void {
    const i32 = this.i32;
    Atomics.store(i32, THR_ABORT, on ? 1 : 0);
    if (!on) return;
    this.lock();
    const head = i32[THR_QUEUE_HEAD]!;
    const len = i32[THR_QUEUE_LEN]!;
    for (let k = 0; k < len; k++) {
      const r = i32[THR_QUEUE_RING + ((head + k) & RING_MASK)]!;
      Atomics.notify(i32, THR_WAITERS + r * WAITER_INTS + WAITER_STATE, 1);
    }
    this.unlock();
  }

  private setHolder(vcpu: number, dev: number, sizeBytes: number): void {
    const i32 = this.i32;
    i32[THR_HOLDER_VCPU] = vcpu;
    i32[THR_HOLDER_DEVICE] = dev;
    i32[THR_HOLDER_SIZE_BYTES] = sizeBytes;
    this.f64[THR_HOLDER_SINCE_MS >> 1] = nowMs();
    Atomics.store(i32, THR_HOLDER_KIND, THROTTLE_HOLDER_REQUEST);
  }

  private holderLocked(now: number): ThrottleHolder | null {
    const i32 = this.i32;
    const kind = Atomics.load(i32, THR_HOLDER_KIND);
    if (kind === THROTTLE_HOLDER_NONE) return null;
    const since = this.f64[THR_HOLDER_SINCE_MS >> 1]!;
    return {
      vcpu: i32[THR_HOLDER_VCPU]!, device: this.deviceName(i32[THR_HOLDER_DEVICE]!), size: i32[THR_HOLDER_SIZE_BYTES]!,
      kind: kind === THROTTLE_HOLDER_MAPPING ? 'mapping' : 'request', since_ms: since, held_ms: now - since,
    };
  }

  /** A free waiter record. Each thread owns at most one at a time, so one is free unless >512 threads wait. */
  private allocRecordLocked(): number {
    const i32 = this.i32;
    const hint = i32[THR_RECORD_HINT]!;
    for (let k = 0; k < THROTTLE_WAITERS_MAX; k++) {
      const r = (hint + k) & RING_MASK;
      if (Atomics.load(i32, THR_WAITERS + r * WAITER_INTS + WAITER_STATE) === WAITER_FREE) {
        i32[THR_RECORD_HINT] = (r + 1) & RING_MASK;
        return r;
      }
    }
    throw new InvariantError(`throttle_sem: more than ${THROTTLE_WAITERS_MAX} waiters`);
  }

  /** Take record r out of the queue, keeping the others in order (an aborted waiter leaving). */
  private removeQueuedLocked(r: number): void {
    const i32 = this.i32;
    const head = i32[THR_QUEUE_HEAD]!;
    const len = i32[THR_QUEUE_LEN]!;
    let k = 0;
    while (k < len && i32[THR_QUEUE_RING + ((head + k) & RING_MASK)] !== r) k++;
    assert(k < len, 'throttle_sem: a queued waiter is in the queue');
    for (; k + 1 < len; k++) {
      i32[THR_QUEUE_RING + ((head + k) & RING_MASK)] = i32[THR_QUEUE_RING + ((head + k + 1) & RING_MASK)]!;
    }
    Atomics.store(i32, THR_QUEUE_LEN, len - 1);
  }

  // --- reports ----------------------------------------------------------------------------------

  /** Who holds throttle_sem and who waits, in queue order (under the semaphore's lock). */
  snapshot(): ThrottleSnapshot {
    const i32 = this.i32;
    this.lock();
    const now = nowMs();
    const head = i32[THR_QUEUE_HEAD]!;
    const len = i32[THR_QUEUE_LEN]!;
    const waiters: ThrottleWaiter[] = [];
    for (let k = 0; k < len; k++) {
      const rec = THR_WAITERS + i32[THR_QUEUE_RING + ((head + k) & RING_MASK)]! * WAITER_INTS;
      waiters.push({
        vcpu: i32[rec + WAITER_VCPU]!, device: this.deviceName(i32[rec + WAITER_DEVICE]!),
        size: i32[rec + WAITER_SIZE_BYTES]!, waited_ms: now - this.f64[(rec + WAITER_ENQUEUED_MS) >> 1]!,
      });
    }
    const count = i32[THR_SEM_COUNT]!;
    const holder = this.holderLocked(now);
    const snap: ThrottleSnapshot = {
      enabled: this.enabled, count, held: count === 0, holder, waiters, queue_len: len,
      queue_len_max: i32[THR_QUEUE_LEN_MAX]!, deadlocks: i32[THR_DEADLOCKS]!, aborted_waits: i32[THR_ABORTED_WAITS]!,
      abort: Atomics.load(i32, THR_ABORT) !== 0, t_ms: now, ...this.debugfs(),
    };
    this.unlock();
    return snap;
  }

  /** high_throttle, low_throttle and the two counters, as the debugfs files read them. */
  debugfs(): ThrottleDebugfs {
    const i32 = this.i32;
    return {
      high_throttle: Atomics.load(i32, THR_HIGH_THROTTLE),
      low_throttle: Atomics.load(i32, THR_LOW_THROTTLE),
      high_throttle_count: Atomics.load(i32, THR_HIGH_THROTTLE_COUNT) >>> 0,
      low_throttle_count: Atomics.load(i32, THR_LOW_THROTTLE_COUNT) >>> 0,
    };
  }

  /**
   * Write one of the four files. Like the RFC, the thresholds are not checked against each other;
   * returns true when low_throttle is now above high_throttle so the caller can warn.
   */
  writeTunable(name: ThrottleTunable, value: number): boolean {
    const word = TUNABLE_WORD[name];
    if (word === undefined) throw new InputError('EINVAL', `${String(name)}: not a throttle tunable; expected one of ${THROTTLE_TUNABLES.join(', ')}`);
    checkTunable(name, value);
    Atomics.store(this.i32, word, value);
    return Atomics.load(this.i32, THR_LOW_THROTTLE) > Atomics.load(this.i32, THR_HIGH_THROTTLE);
  }

  // --- device names -----------------------------------------------------------------------------

  /** This device's id in the region's name table (registered on first use). */
  deviceId(name: string): number {
    const known = this.deviceIds.get(name);
    if (known !== undefined) return known;
    const id = this.registerDevice(name);
    this.deviceIds.set(name, id);
    return id;
  }

  private registerDevice(name: string): number {
    const encoded = new TextEncoder().encode(name).subarray(0, THROTTLE_DEVICE_NAME_BYTES - 1);
    const key = new TextDecoder().decode(encoded); // the name as the table will hold it
    const i32 = this.i32;
    this.lock();
    const used = i32[THR_DEVICE_NAMES_USED]!;
    for (let id = 0; id < used; id++) {
      if (this.deviceName(id) === key) {
        this.unlock();
        return id;
      }
    }
    if (used >= THROTTLE_DEVICE_NAMES_MAX) {
      this.unlock();
      return THROTTLE_DEVICE_UNKNOWN;
    }
    const at = THR_DEVICE_NAMES * 4 + used * THROTTLE_DEVICE_NAME_BYTES;
    this.u8[at] = encoded.length;
    this.u8.set(encoded, at + 1);
    Atomics.store(i32, THR_DEVICE_NAMES_USED, used + 1);
    this.unlock();
    return used;
  }

  /** The name registered under `id` ("?" for THROTTLE_DEVICE_UNKNOWN). */
  deviceName(id: number): string {
    if (id < 0 || id >= Atomics.load(this.i32, THR_DEVICE_NAMES_USED)) return '?';
    const at = THR_DEVICE_NAMES * 4 + id * THROTTLE_DEVICE_NAME_BYTES;
    // TextDecoder refuses views of shared memory: copy the few bytes out first.
    return new TextDecoder().decode(this.u8.slice(at + 1, at + 1 + this.u8[at]!));
  }
}

/**
 * Invariant §18.14 at quiescence (no map or unmap in flight, nothing mapped through the throttle):
 * count 1, an empty queue, and no slot flagged throttled. Returns the violations found.
 */
export function throttleQuiescentViolations(state: ThrottleState, pools: readonly IoTlbPool[]): string[] {
  const out: string[] = [];
  const snap = state.snapshot();
  if (snap.count !== 1) out.push(`throttle_sem count is ${snap.count}, expected 1`);
  if (snap.queue_len !== 0) out.push(`throttle_sem has ${snap.queue_len} waiters, expected none`);
  if (snap.holder !== null) out.push(`throttle_sem has a holder (vCPU ${snap.holder.vcpu}, ${snap.holder.device})`);
  for (const pool of pools) {
    for (let i = 0; i < pool.nslabs; i++) {
      if (pool.throttled[i] !== 0) out.push(`slot ${i} of the pool at 0x${pool.start.toString(16)} is flagged throttled`);
    }
  }
  return out;
}

/** Invariant §18.14 while mappings are live: count + holders = 1, so at most one slot is flagged. */
export function throttledSlots(pools: readonly IoTlbPool[]): number {
  let n = 0;
  for (const pool of pools) for (let i = 0; i < pool.nslabs; i++) if (pool.throttled[i] !== 0) n++;
  return n;
}

// --- per-thread statistics ------------------------------------------------------------------------

/**
 * One thread's throttle statistics (TSTAT_* fields) with its wait-time histogram (ns, per parked
 * request) and overshoot histogram (slots above high_throttle, per admitted request that overshot).
 * A view over shared memory: the VM keeps one block per thread in one SharedArrayBuffer.
 */
export class ThrottleStats {
  readonly fields: Float64Array;
  readonly waitNs: LatencyHistogram;
  readonly overshootSlots: LatencyHistogram;

  static bytesNeeded(): number {
    return TSTAT_BYTES;
  }
  static create(): ThrottleStats {
    return new ThrottleStats(new SharedArrayBuffer(TSTAT_BYTES));
  }
  /** `count` blocks laid end to end in one buffer (one per thread). */
  static blocks(sab: SharedArrayBuffer, count: number): ThrottleStats[] {
    assert(sab.byteLength >= count * TSTAT_BYTES, 'throttle statistics buffer holds every block');
    return Array.from({ length: count }, (_, k) => new ThrottleStats(sab, k * TSTAT_BYTES));
  }

  constructor(sab: SharedArrayBuffer, byteOffset = 0) {
    assert(byteOffset % 64 === 0 && byteOffset + TSTAT_BYTES <= sab.byteLength, 'throttle statistics block fits, line-aligned');
    this.fields = new Float64Array(sab, byteOffset, TSTAT_FIELDS);
    this.waitNs = new LatencyHistogram(sab, byteOffset + TSTAT_WAIT_HIST_OFFSET);
    this.overshootSlots = new LatencyHistogram(sab, byteOffset + TSTAT_OVERSHOOT_HIST_OFFSET);
  }

  /** A parked request's wait. */
  recordWait(waitNs: number): void {
    const f = this.fields;
    f[TSTAT_WAITS]!++;
    f[TSTAT_WAIT_NS_TOTAL] = f[TSTAT_WAIT_NS_TOTAL]! + waitNs;
    if (waitNs > f[TSTAT_WAIT_NS_MAX]!) f[TSTAT_WAIT_NS_MAX] = waitNs;
    this.waitNs.record(waitNs);
  }

  /** The fields by name. */
  values(): Record<(typeof TSTAT_NAMES)[number], number> {
    const out = {} as Record<(typeof TSTAT_NAMES)[number], number>;
    TSTAT_NAMES.forEach((name, k) => {
      out[name] = this.fields[k]!;
    });
    return out;
  }
}

export type ThrottleStatsValues = Record<(typeof TSTAT_NAMES)[number], number>;

export interface ThrottleStatsSummary extends ThrottleStatsValues {
  wait_ns: HistogramSnapshot;
  overshoot_slots: HistogramSnapshot;
}

/** Fields that are maxima rather than sums; the *_at_max fields come from the block with the max overshoot. */
const MAX_FIELDS: ReadonlySet<number> = new Set([TSTAT_WAIT_NS_MAX, TSTAT_OVERSHOOT_SLOTS_MAX, TSTAT_USED_SLOTS_PEAK_THROTTLED]);
const AT_MAX_FIELDS: ReadonlySet<number> = new Set([
  TSTAT_BOUND_SLOTS_AT_MAX, TSTAT_OWN_SLOTS_AT_MAX, TSTAT_OTHER_MAY_BLOCK_SLOTS_AT_MAX, TSTAT_NON_BLOCK_SLOTS_AT_MAX,
]);

/** Merge per-thread histograms into fresh ones (call once the writers have stopped, or for a progress view). */
export function mergeThrottleHistograms(blocks: readonly ThrottleStats[]): { waitNs: LatencyHistogram; overshootSlots: LatencyHistogram } {
  const waitNs = LatencyHistogram.create();
  const overshootSlots = LatencyHistogram.create();
  for (const b of blocks) {
    LatencyHistogram.merge(waitNs, b.waitNs);
    LatencyHistogram.merge(overshootSlots, b.overshootSlots);
  }
  return { waitNs, overshootSlots };
}

/** Sum per-thread blocks: counts add, maxima take the max, *_at_max follow the largest overshoot. */
export function sumThrottleStats(blocks: readonly ThrottleStats[]): ThrottleStatsSummary {
  const sum = new Array<number>(TSTAT_FIELDS).fill(0);
  let atMax: ThrottleStats | null = null;
  for (const b of blocks) {
    const f = b.fields;
    for (let k = 0; k < TSTAT_FIELDS; k++) {
      if (AT_MAX_FIELDS.has(k)) continue;
      sum[k] = MAX_FIELDS.has(k) ? Math.max(sum[k]!, f[k]!) : sum[k]! + f[k]!;
    }
    if (f[TSTAT_OVERSHOOT_SLOTS_MAX]! > 0 && (atMax === null || f[TSTAT_OVERSHOOT_SLOTS_MAX]! > atMax.fields[TSTAT_OVERSHOOT_SLOTS_MAX]!)) atMax = b;
  }
  if (atMax !== null) for (const k of AT_MAX_FIELDS) sum[k] = atMax.fields[k]!;
  const out = {} as ThrottleStatsSummary;
  TSTAT_NAMES.forEach((name, k) => {
    out[name] = sum[k]!;
  });
  const h = mergeThrottleHistograms(blocks);
  out.wait_ns = h.waitNs.snapshot();
  out.overshoot_slots = h.overshootSlots.snapshot();
  return out;
}
