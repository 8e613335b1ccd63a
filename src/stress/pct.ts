// The controlled-schedule mode: probabilistic concurrency testing (PCT; Burckhardt, Kothari,
// Musuvathi and Nagarakatte, ASPLOS 2010) over the instrumentation points.
//
// Only one thread of a trial runs at a time; it runs until its next instrumentation point, where the
// scheduler picks the runnable thread of highest priority. Priorities are a seeded permutation of
// d .. d+n-1; at d-1 seeded steps (the change points) the running thread drops to a priority below
// every initial one. So a failing interleaving replays exactly from its seed: the same seed gives
// the same sequence of (thread, point) steps, whose hash is the trial's trace.
//
// Blocking: a thread that finds a lock held (an area lock, or throttle_sem's own) reaches the lock's
// spin point, where it is marked blocked on that lock word and becomes runnable again only once the
// word is free; with one thread running, its next compare-exchange then succeeds, so under pct no
// thread ever parks in a lock (trials keep MEM_LOCK_SPINS >= 1). [RFC] A throttle_sem waiter is
// blocked while its wait record says queued, and runnable once up() has handed it the semaphore.
// Should a thread park anyway (a mutant), it gives up its turn and takes one back when it returns.
// Every wait here is bounded and gives up when the trial aborts.
//
// The state lives in one SharedArrayBuffer; only the thread holding the turn changes it (apart
// from a returning park), so it needs no lock.
import { Rng } from '../util/rng.js';
import type { PctConfig } from './config.js';

const S_RUNNING = 0; // thread holding the turn, -1 none
const S_STEP = 1;
const S_TRACE = 2;
const S_NEXT_CHANGE = 3;
const S_LOW_PRIO = 4; // the priority the next change point assigns (decreasing)
const S_READY = 5;
const S_SWITCHES = 6; // turns handed from one thread to another
const S_NTHREADS = 7;
const S_NCHANGES = 8;
const S_DEADLOCK = 9; // cpu + 1 of a thread that found nobody runnable
const S_STARTED = 10;
const HEADER = 16;
const PRIO = 0;
const STATE = 1;
const BLOCKED_ARRAY = 2; // which of the watched arrays holds the word a blocked thread waits on
const BLOCKED_WORD = 3; // the word's index in it
const BLOCKED_MODE = 4; // BLOCK_UNTIL_EQUAL or BLOCK_WHILE_EQUAL
const BLOCKED_VALUE = 5;
const GRANT = 6; // 1: the turn was handed to this thread
const THREAD_INTS = 8;

/** Runnable once the word equals the value (a lock word: 0, free). */
export const BLOCK_UNTIL_EQUAL = 0;
/** Runnable once the word no longer equals the value (a throttle_sem waiter: no longer queued). */
export const BLOCK_WHILE_EQUAL = 1;

const ST_WAITING = 0;
const ST_RUNNING = 1;
const ST_BLOCKED = 2;
const ST_PARKED = 3;
const ST_DONE = 4;
const STATE_NAMES = ['waiting', 'running', 'blocked', 'parked', 'done'];

/** Thrown out of a wait when the trial is aborted (the watchdog fired). */
export class StressAbort extends Error {
  constructor() {
    super('stress trial aborted');
    this.name = 'StressAbort';
  }
}

/** The shared state of one pct trial: priorities and change points drawn from `seed`. */
export function createPctState(nthreads: number, cfg: PctConfig, seed: number): SharedArrayBuffer {
  const rng = new Rng((seed ^ 0x5bd1e995) >>> 0);
  const nchanges = Math.max(0, cfg.depth - 1);
  const s = new Int32Array(new SharedArrayBuffer((HEADER + nthreads * THREAD_INTS + nchanges) * 4));
  s[S_RUNNING] = -1;
  s[S_NTHREADS] = nthreads;
  s[S_NCHANGES] = nchanges;
  s[S_LOW_PRIO] = cfg.depth - 1;
  const perm = Array.from({ length: nthreads }, (_, i) => i);
  for (let i = nthreads - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    [perm[i], perm[j]] = [perm[j]!, perm[i]!];
  }
  for (let t = 0; t < nthreads; t++) s[HEADER + t * THREAD_INTS + PRIO] = cfg.depth + perm[t]!;
  const steps = Array.from({ length: nchanges }, () => 1 + rng.below(Math.max(1, cfg.steps))).sort((a, b) => a - b);
  steps.forEach((k, i) => {
    s[HEADER + nthreads * THREAD_INTS + i] = k;
  });
  return s.buffer as SharedArrayBuffer;
}

export interface PctSummary {
  steps: number;
  /** Hash of every (thread, point, datum) step in order: equal across runs of one seed. */
  trace: number;
  switches: number;
  deadlock: number;
}

export function pctSummary(sab: SharedArrayBuffer): PctSummary {
  const s = new Int32Array(sab);
  return { steps: s[S_STEP]!, trace: s[S_TRACE]! >>> 0, switches: s[S_SWITCHES]!, deadlock: s[S_DEADLOCK]! };
}

/**
 * Main thread: once every thread is ready, hand the first turn out. Returns whether it has started.
 * `watched` are the arrays blocked threads wait on (the same, in the same order, as the threads').
 */
export function pctTryStart(sab: SharedArrayBuffer, watched: readonly Int32Array[]): boolean {
  const s = new Int32Array(sab);
  if (s[S_STARTED] === 1) return true;
  if (Atomics.load(s, S_READY) < s[S_NTHREADS]!) return false;
  s[S_STARTED] = 1;
  const next = pick(s, watched);
  if (next >= 0) grant(s, next);
  return true;
}

/** Who is where, for the watchdog's report. */
export function pctDescribe(sab: SharedArrayBuffer): string {
  const s = new Int32Array(sab);
  const n = s[S_NTHREADS]!;
  const parts: string[] = [];
  for (let t = 0; t < n; t++) {
    const b = HEADER + t * THREAD_INTS;
    parts.push(`cpu ${t} ${STATE_NAMES[s[b + STATE]!] ?? '?'} prio ${s[b + PRIO]}`);
  }
  return `pct step ${s[S_STEP]}, turn ${s[S_RUNNING]}: ${parts.join(', ')}`;
}

function unblocked(s: Int32Array, b: number, watched: readonly Int32Array[]): boolean {
  const v = Atomics.load(watched[s[b + BLOCKED_ARRAY]!]!, s[b + BLOCKED_WORD]!);
  return s[b + BLOCKED_MODE] === BLOCK_UNTIL_EQUAL ? v === s[b + BLOCKED_VALUE] : v !== s[b + BLOCKED_VALUE];
}

function pick(s: Int32Array, watched: readonly Int32Array[]): number {
  const n = s[S_NTHREADS]!;
  let best = -1;
  let bestPrio = -Infinity;
  for (let t = 0; t < n; t++) {
    const b = HEADER + t * THREAD_INTS;
    const st = s[b + STATE]!;
    const runnable = st === ST_WAITING || st === ST_RUNNING || (st === ST_BLOCKED && unblocked(s, b, watched));
    if (runnable && s[b + PRIO]! > bestPrio) {
      best = t;
      bestPrio = s[b + PRIO]!;
    }
  }
  return best;
}

function grant(s: Int32Array, t: number): void {
  const b = HEADER + t * THREAD_INTS;
  s[b + STATE] = ST_RUNNING;
  s[S_RUNNING] = t;
  Atomics.store(s, b + GRANT, 1);
  Atomics.notify(s, b + GRANT, 1);
}

function mix(h: number, x: number): number {
  return Math.imul(h ^ x, 0x01000193);
}

/** One thread's side of the scheduler. */
export class PctThread {
  private readonly s: Int32Array;
  private readonly b: number;
  private readonly changes: number;
  private holdsTurn = false;

  constructor(sab: SharedArrayBuffer, private readonly me: number, private readonly watched: readonly Int32Array[], private readonly aborted: () => boolean) {
    this.s = new Int32Array(sab);
    this.b = HEADER + me * THREAD_INTS;
    this.changes = HEADER + this.s[S_NTHREADS]! * THREAD_INTS;
  }

  /** Join the trial and wait for the first turn. */
  start(): void {
    Atomics.add(this.s, S_READY, 1);
    this.waitTurn();
  }

  /**
   * An instrumentation point where the thread cannot go on until word `word` of watched array
   * `array` equals `value` (BLOCK_UNTIL_EQUAL) or stops equalling it (BLOCK_WHILE_EQUAL).
   */
  pointBlocked(point: number, arg: number, array: number, word: number, mode: number, value: number): void {
    const s = this.s;
    s[this.b + STATE] = ST_BLOCKED;
    s[this.b + BLOCKED_ARRAY] = array;
    s[this.b + BLOCKED_WORD] = word;
    s[this.b + BLOCKED_MODE] = mode;
    s[this.b + BLOCKED_VALUE] = value;
    this.point(point, arg);
  }

  /** An instrumentation point: one scheduling step. */
  point(point: number, arg: number): void {
    const s = this.s;
    const step = s[S_STEP]! + 1;
    s[S_STEP] = step;
    s[S_TRACE] = mix(mix(mix(s[S_TRACE]!, this.me), point), arg);
    let nc = s[S_NEXT_CHANGE]!;
    while (nc < s[S_NCHANGES]! && step >= s[this.changes + nc]!) {
      s[this.b + PRIO] = s[S_LOW_PRIO]!;
      s[S_LOW_PRIO]--;
      nc++;
    }
    s[S_NEXT_CHANGE] = nc;
    const next = pick(s, this.watched);
    if (next === this.me) {
      s[this.b + STATE] = ST_RUNNING;
      return;
    }
    if (s[this.b + STATE] === ST_RUNNING) s[this.b + STATE] = ST_WAITING;
    this.passTurn(next);
    this.waitTurn();
  }

  /**
   * A change point forced at a point the harness names (dynamic swiotlb's publication of a pool and
   * a reclaimer's claim of a retired transient pool): this thread drops below every other, as at a
   * seeded change point, so the step that follows is another thread's whenever one can run. The
   * windows right after those points (a pool published, a claim not yet made) are then always
   * open to the other threads, deterministically.
   */
  demote(): void {
    const s = this.s;
    s[this.b + PRIO] = s[S_LOW_PRIO]!;
    s[S_LOW_PRIO]--;
  }

  /** About to park on a lock word: give up the turn without waiting for it. */
  park(): void {
    if (!this.holdsTurn) return;
    this.s[this.b + STATE] = ST_PARKED;
    this.passTurn(pick(this.s, this.watched));
  }

  /** Back from a park: take the turn if nobody holds it, else wait for it. */
  unpark(): void {
    if (this.holdsTurn) return;
    this.s[this.b + STATE] = ST_WAITING;
    if (Atomics.compareExchange(this.s, S_RUNNING, -1, this.me) === -1) {
      this.s[this.b + STATE] = ST_RUNNING;
      this.holdsTurn = true;
      return;
    }
    this.waitTurn();
  }

  /** The thread's workload has returned (or failed): hand the turn on for good. */
  finish(): void {
    this.s[this.b + STATE] = ST_DONE;
    if (this.holdsTurn) this.passTurn(pick(this.s, this.watched));
  }

  private passTurn(next: number): void {
    const s = this.s;
    this.holdsTurn = false;
    if (next >= 0) {
      s[S_SWITCHES]++;
      grant(s, next);
      return;
    }
    Atomics.store(s, S_RUNNING, -1);
    // Nobody can run: unless a parked thread comes back, nothing ever will.
    const n = s[S_NTHREADS]!;
    let parked = false;
    let waiting = false;
    for (let t = 0; t < n; t++) {
      const st = s[HEADER + t * THREAD_INTS + STATE]!;
      if (st === ST_PARKED) parked = true;
      else if (st !== ST_DONE) waiting = true;
    }
    if (waiting && !parked) Atomics.store(s, S_DEADLOCK, this.me + 1);
  }

  private waitTurn(): void {
    const g = this.b + GRANT;
    for (;;) {
      if (Atomics.load(this.s, g) === 1) {
        Atomics.store(this.s, g, 0);
        this.holdsTurn = true;
        return;
      }
      Atomics.wait(this.s, g, 0, 50);
      if (this.aborted()) throw new StressAbort();
    }
  }
}
