// One clock for every thread: performance.now() counts from each thread's own time origin, so it is
// re-based on the shared epoch origin. Milliseconds as a double (sub-microsecond resolution).
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}
