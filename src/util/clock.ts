// One clock for every thread: performance.now() counts from each thread's own time origin, so it is
// re-based on the shared epoch origin. Milliseconds as a double (sub-microsecond resolution).
//
// The run's clock is emulated time (--time-scale K): it runs K times slower than the wall, so that
// each emulated microsecond has K times the host's CPU behind it. Every thread of a run sets the same
// K before it reads the clock (setTimeScale), so times stamped on one thread compare with another's.
// Host-side watchdogs, yields and boot timings read wallMs(); everything the run reports (latency,
// runtime, IOPS, samples) is in nowMs().
import { readFileSync } from 'node:fs';

let scale = 1;
// performance.timeOrigin is fixed for a thread's life, and reading it is a getter call (30-50 ns,
// a third of performance.now()'s cost): read once, at load.
const ORIGIN = performance.timeOrigin;

/** Set this thread's time scale K (>= 1): nowMs() then advances 1 ms per K ms of wall time. */
export function setTimeScale(k: number): void {
  if (!(Number.isFinite(k) && k >= 1)) throw new RangeError(`time scale must be a number >= 1, got ${k}`);
  scale = k;
}

/** This thread's time scale K. */
export function timeScale(): number {
  return scale;
}

/** Emulated time: wall time / K. */
export function nowMs(): number {
  return (ORIGIN + performance.now()) / scale;
}

/** Wall time, for what the host does (yields, parks, watchdogs, boot). */
export function wallMs(): number {
  return ORIGIN + performance.now();
}

/**
 * The calling thread's own CPU time in ms (user + system), from Linux's per-thread scheduler
 * statistics (/proc/thread-self/schedstat: the run time in ns, exact, not sampled in ticks); null
 * where the host has none. process.cpuUsage() is the whole process's, whichever thread asks.
 */
export function threadCpuMs(): number | null {
  try {
    const ns = Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ', 1)[0]);
    return Number.isFinite(ns) ? ns / 1e6 : null;
  } catch {
    return null;
  }
}
