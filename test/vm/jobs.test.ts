// The workload plan: fio's per-direction rate limits as a limit on one instance's stream, and the
// options the plan resolves (startdelay ranges, size forms).
import { describe, expect, it } from 'vitest';
import { planWorkload, streamRateLimit } from '../../src/vm/jobs.js';
import { parseFioJobFile } from '../../src/workload/fio.js';

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

describe('planWorkload', () => {
  const plan = (text: string, seed = 1) => planWorkload({
    jobs: parseFioJobFile(text, 't.fio').jobs, vcpus: 4, runtimeCapMs: Infinity, sizeCapBytes: Infinity,
    defaultSizeBytes: 64 * MiB, seed, maxRequestBytes: MiB,
  });

  it('gives each clone of startdelay=a-b its own delay in the range, reproducibly by seed', () => {
    const delays = plan('[j]\nrw=read\nsize=1M\nnumjobs=16\nstartdelay=1-5\n').instances.map((i) => i.startdelayMs);
    for (const d of delays) {
      expect(d).toBeGreaterThanOrEqual(1000);
      expect(d).toBeLessThanOrEqual(5000);
    }
    expect(new Set(delays).size).toBeGreaterThan(8);
    expect(plan('[j]\nrw=read\nsize=1M\nnumjobs=16\nstartdelay=1-5\n').instances.map((i) => i.startdelayMs)).toEqual(delays);
    expect(plan('[j]\nrw=read\nsize=1M\nstartdelay=2\n').instances[0]!.startdelayMs).toBe(2000);
  });

  it('refuses size as a percentage, which needs a device size the emulated disk does not have', () => {
    expect(() => plan('[j]\nrw=read\nsize=20%\n')).toThrow(/job j: size=20% is a share of a device size.*give size in bytes/);
  });
});
