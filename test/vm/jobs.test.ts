// The workload plan's arithmetic: fio's per-direction rate limits as a limit on one instance's stream.
import { describe, expect, it } from 'vitest';
import { streamRateLimit } from '../../src/vm/jobs.js';

const KiB = 1024;
const MiB = 1024 * KiB;

describe('streamRateLimit (rate=, rate_iops=)', () => {
  it('a one-direction job takes its own direction\'s limit and ignores the other\'s', () => {
    expect(streamRateLimit('randread', 50, { read: MiB, write: 500 * KiB })).toBe(MiB);
    expect(streamRateLimit('write', 50, { read: MiB, write: 500 * KiB })).toBe(500 * KiB);
    expect(streamRateLimit('read', 50, { read: undefined, write: 500 * KiB })).toBeUndefined();
  });

  it('a mixed job is held back by the direction that reaches its limit first (limit / share)', () => {
    // rate=500k applies to each direction: a 50/50 mix may move 500k each way, 1000k in all.
    expect(streamRateLimit('randrw', 50, { read: 500 * KiB, write: 500 * KiB })).toBe(1000 * KiB);
    // rate=1m,500k at 70/30: reads allow 1m / 0.7 = 1.43m, writes 500k / 0.3 = 1.63m; reads bind.
    expect(streamRateLimit('randrw', 70, { read: MiB, write: 500 * KiB })).toBeCloseTo(MiB / 0.7, 6);
    // At 90/10 the writes' 500k / 0.1 = 5m no longer binds either: reads do, at 1m / 0.9.
    expect(streamRateLimit('readwrite', 90, { read: MiB, write: 500 * KiB })).toBeCloseTo(MiB / 0.9, 6);
    // Only writes limited, at 75/25: 500k / 0.25 = 2000k.
    expect(streamRateLimit('randrw', 75, { read: undefined, write: 500 * KiB })).toBe(2000 * KiB);
  });

  it('a direction the mix never picks does not limit the stream', () => {
    expect(streamRateLimit('randrw', 100, { read: undefined, write: 500 * KiB })).toBeUndefined();
    expect(streamRateLimit('randrw', 0, { read: 1000, write: 200 })).toBe(200);
  });
});
