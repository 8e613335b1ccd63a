// The kernel's printk ratelimit (lib/ratelimit.c, ___ratelimit) for one call site: at most `burst`
// messages per `interval`; the ones in between are counted and the next printed message says how
// many were suppressed (the kernel prints "N callbacks suppressed"; we put the count in the record).
//
// Departure from the kernel: the kernel keeps one state per call site for the whole machine; the VM
// keeps one per vCPU thread, so that the data path never shares a cache line for logging. With 32
// vCPUs a storm prints at most 32 x burst records per interval instead of burst.

/** DEFAULT_RATELIMIT_INTERVAL (5 * HZ) and DEFAULT_RATELIMIT_BURST, as dev_warn_ratelimited uses. */
export const RATELIMIT_INTERVAL_MS = 5000;
export const RATELIMIT_BURST = 10;

export class Ratelimit {
  private begin = -Infinity;
  private printed = 0;
  private missed = 0;

  constructor(private readonly intervalMs = RATELIMIT_INTERVAL_MS, private readonly burst = RATELIMIT_BURST) {}

  /**
   * Whether a message at `nowMs` may be printed. When it may, the result is the number of messages
   * suppressed since the last printed one (0 or more); when it may not, -1.
   */
  check(nowMs: number): number {
    if (nowMs - this.begin >= this.intervalMs) {
      this.begin = nowMs;
      this.printed = 0;
    }
    if (this.printed < this.burst) {
      this.printed++;
      const missed = this.missed;
      this.missed = 0;
      return missed;
    }
    this.missed++;
    return -1;
  }
}
