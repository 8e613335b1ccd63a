// The workload plan: fio's per-direction rate limits as a limit on one instance's stream, and the
// options the plan resolves (startdelay ranges, size forms).
import { describe, expect, it } from 'vitest';
import { drawOrder, pickBlockSize, planWorkload, streamRateLimit, verifyUnit } from '../../src/vm/jobs.js';
import { fillSectors, verifySectors } from '../../src/vm/verify.js';
import { Rng } from '../../src/util/rng.js';
import { InputError } from '../../src/errors.js';
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
  const plan = (text: string, seed = 1, vcpus = 4, sizeCapBytes = Infinity) => planWorkload({
    jobs: parseFioJobFile(text, 't.fio').jobs, vcpus, runtimeCapMs: Infinity, sizeCapBytes,
    defaultSizeBytes: 64 * MiB, seed, maxRequestBytes: MiB,
  });
  /** The one-line InputError (exit 2) planning `text` gives. */
  const planError = (text: string, vcpus = 4, sizeCapBytes = Infinity): string => {
    try {
      plan(text, 1, vcpus, sizeCapBytes);
    } catch (e) {
      expect(e).toBeInstanceOf(InputError);
      expect((e as InputError).exitStatus).toBe(2);
      expect((e as InputError).message).not.toMatch(/\n/);
      return (e as InputError).message;
    }
    throw new Error('planned');
  };

  describe('a size below the block size (fio: "blocksize too large for data set")', () => {
    it('refuses a job whose size is below its block size, from size= or from the --size cap', () => {
      expect(planError('[j]\nbs=256k\nsize=64k\n')).toBe('job j: size=65536 bytes is smaller than a read block of 262144 bytes (fio: blocksize too large for data set); use a size of at least 262144 bytes, or a block size of at most 65536 bytes');
      // --size 64k on a bs=256k job: the cap is named.
      expect(planError('[j]\nbs=256k\nsize=1M\n', 4, 64 * KiB)).toBe('job j: its size of 65536 bytes (the --size cap) is smaller than a read block of 262144 bytes (fio: blocksize too large for data set); use a size of at least 262144 bytes (--size), or a block size of at most 65536 bytes');
      // --size 100 on a job with fio's default bs=4k.
      expect(planError('[j]\nrw=randrw\n', 4, 100)).toContain('its size of 100 bytes (the --size cap) is smaller than a read or write block of 4096 bytes');
    });

    it('takes fio\'s least block size over the directions, and each direction the job issues', () => {
      // fio's td_min_bs is 4k (the read size) <= 8k; but the writes a randwrite job issues are 64k.
      expect(planError('[j]\nrw=randwrite\nbs=4k,64k\nsize=8k\n')).toContain('smaller than a write block of 65536 bytes');
      // A read job never issues the 64k writes: 8k holds its 4k reads.
      expect(plan('[j]\nrw=randread\nbs=4k,64k\nsize=8k\n').instances[0]!.regionBytes).toBe(8 * KiB);
      // fio's rule covers the direction the job does not issue too: min(64k, 16k) = 16k > 8k.
      expect(planError('[j]\nrw=read\nbs=64k,16k\nsize=8k\n')).toContain('smaller than a read block of 65536 bytes');
      expect(planError('[j]\nrw=write\nbs=64k,16k\nsize=8k\n')).toContain('smaller than a write block of 16384 bytes');
      // A range or split whose smallest size fits is accepted (larger sizes are not drawn).
      expect(plan('[j]\nbsrange=4k-256k\nsize=64k\n').instances).toHaveLength(1);
      expect(plan('[j]\nbssplit=4k/50:1m/50\nsize=64k\n').instances).toHaveLength(1);
      // 4k/0 with explicit shares adding up to 100 is a 0% entry, never drawn: the smallest drawn is 64k.
      expect(planError('[j]\nbssplit=64k/100:4k/0\nsize=8k\n')).toContain('smaller than a read block of 65536 bytes');
      // A network job has no region.
      expect(plan('[j]\nioengine=net\nbs=64k\nsize=1k\n').instances).toHaveLength(1);
    });
  });

  it('ends a sequential pass at the last whole block, as fio does (size=512k bs=1500: 349 blocks)', () => {
    expect(plan('[j]\nrw=write\nbs=1500\nsize=512k\n').instances[0]!.ioLimitBytes).toBe(349 * 1500);
    expect(plan('[j]\nrw=readwrite\nbs=1500\nsize=512k\n').instances[0]!.ioLimitBytes).toBe(349 * 1500);
    // Random offsets are whole blocks already; io_size is the user's; sizes that vary take the region.
    expect(plan('[j]\nrw=randwrite\nbs=1500\nsize=512k\n').instances[0]!.ioLimitBytes).toBe(512 * KiB);
    expect(plan('[j]\nrw=write\nbs=1500\nsize=512k\nio_size=1m\n').instances[0]!.ioLimitBytes).toBe(MiB);
    expect(plan('[j]\nrw=readwrite\nbs=1500,4k\nsize=512k\n').instances[0]!.ioLimitBytes).toBe(512 * KiB);
  });

  describe('pickBlockSize (fio\'s get_next_buflen with io_u_fits)', () => {
    const draws = (bs: Parameters<typeof pickBlockSize>[0], align: number, limit: number, n = 20_000) => {
      const rng = new Rng(7);
      const counts = new Map<number, number>();
      for (let i = 0; i < n; i++) {
        const len = pickBlockSize(drawOrder(bs), align, rng, limit);
        counts.set(len, (counts.get(len) ?? 0) + 1);
      }
      return counts;
    };

    it('never draws a size above the limit, and never shrinks one to it', () => {
      // bsrange 4k-256k in a 64k region: sizes 4k..64k in 4k steps, uniform (16 values), none cut to 64k.
      const c = draws({ kind: 'range', minBytes: 4 * KiB, maxBytes: 256 * KiB }, 4 * KiB, 64 * KiB);
      expect([...c.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: 16 }, (_, i) => (i + 1) * 4 * KiB));
      for (const n of c.values()) expect(n / 20_000).toBeGreaterThan(1 / 16 - 0.015);
    });

    it('passes a split entry that does not fit to the next entry in ascending-share order', () => {
      // bssplit=4k/10:1m/30:16k/60 sorted by share: 4k/10, 1m/30, 16k/60. In a 64k region 1m never
      // fits and its 30% falls to the next entry, 16k: 4k 10%, 16k 90%.
      const c = draws({ kind: 'split', entries: [{ bytes: 4 * KiB, percent: 10 }, { bytes: MiB, percent: 30 }, { bytes: 16 * KiB, percent: 60 }] }, 4 * KiB, 64 * KiB);
      expect([...c.keys()].sort((a, b) => a - b)).toEqual([4 * KiB, 16 * KiB]);
      expect(c.get(16 * KiB)! / 20_000).toBeCloseTo(0.9, 1);
      // With no limit each entry keeps its own share.
      const free = draws({ kind: 'split', entries: [{ bytes: 4 * KiB, percent: 10 }, { bytes: MiB, percent: 30 }, { bytes: 16 * KiB, percent: 60 }] }, 4 * KiB, Infinity);
      expect(free.get(MiB)! / 20_000).toBeCloseTo(0.3, 1);
      // The last entry (largest share) not fitting: drawn again, so the others keep their ratio 1:3.
      const last = draws({ kind: 'split', entries: [{ bytes: 4 * KiB, percent: 10 }, { bytes: 8 * KiB, percent: 30 }, { bytes: MiB, percent: 60 }] }, 4 * KiB, 64 * KiB);
      expect(last.get(8 * KiB)! / last.get(4 * KiB)!).toBeGreaterThan(2.5);
      expect(last.get(8 * KiB)! / last.get(4 * KiB)!).toBeLessThan(3.5);
    });
  });

  describe('queue depth per vCPU', () => {
    it('refuses clones whose iodepths add up above one queue on a vCPU, naming the limit and the way under it', () => {
      // printf '[j]\niodepth=200\nnumjobs=2\n' with --vcpus 1: 400 commands on vCPU 0's nvme0 queue of 256.
      expect(planError('[j]\niodepth=200\nnumjobs=2\n', 1)).toBe('vCPU 0 would have 400 I/Os in flight on its nvme0 queue (2 x j iodepth=200), above the 256 commands of one queue; lower iodepth or numjobs so that the iodepths on each vCPU add up to at most 256, or run on --vcpus 2');
      // iodepth=64 and numjobs=10 on 2 vCPUs: 5 clones (320) each; 3 vCPUs give at most 4 (256).
      expect(planError('[j]\niodepth=64\nnumjobs=10\n', 2)).toContain('vCPU 0 would have 320 I/Os in flight on its nvme0 queue (5 x j iodepth=64)');
      expect(planError('[j]\niodepth=64\nnumjobs=10\n', 2)).toContain('or run on --vcpus 3');
      // Exactly 256 is allowed.
      expect(plan('[j]\niodepth=64\nnumjobs=8\n', 1, 2).instances).toHaveLength(8);
      // Several jobs on one vCPU add up; pinned clones (cpus_allowed) get no --vcpus advice.
      expect(planError('[a]\niodepth=128\n[b]\niodepth=129\n', 1)).toContain('(1 x a iodepth=128, 1 x b iodepth=129)');
      const pinned = planError('[j]\niodepth=128\nnumjobs=3\ncpus_allowed=1\n', 4);
      expect(pinned).toContain('vCPU 1 would have 384 I/Os');
      expect(pinned).not.toContain('--vcpus');
    });

    it('counts each device\'s queue on its own', () => {
      expect(plan('[s]\niodepth=200\n[n]\nioengine=net\niodepth=200\n', 1, 1).instances).toHaveLength(2);
      expect(planError('[n]\nioengine=net\niodepth=200\nnumjobs=2\n', 1)).toContain('on its eth0 queue');
    });
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

describe('verify= units (verifyUnit, verify.ts)', () => {
  const unit = (body: string) => verifyUnit(parseFioJobFile(`[j]\n${body}\n`, 't.fio').jobs[0]!);
  it('checks 512-byte sectors when every size and offset step is whole sectors', () => {
    expect(unit('rw=randrw\nbs=4k')).toEqual({ unit: 512 });
    expect(unit('rw=randrw\nbs=1536')).toEqual({ unit: 512 }); // 3 sectors
    expect(unit('rw=randrw\nbsrange=4k-16k')).toEqual({ unit: 512 });
    // A read-only job issues only its read sizes.
    expect(unit('rw=read\nbs=4k,1500')).toEqual({ unit: 512 });
  });

  it('checks the largest common unit otherwise, as fio\'s verify_interval (bs=1500: one header per block)', () => {
    expect(unit('rw=randrw\nbs=1500')).toEqual({ unit: 1500 });
    expect(unit('rw=randwrite\nbs=1000')).toEqual({ unit: 1000 });
    // gcd(4096, 1500) = 4: no room for a 16-byte header.
    expect(unit('rw=randrw\nbssplit=4k/25:1500/75')).toEqual({ why: expect.stringContaining('largest common divisor 4 bytes') });
    expect(unit('rw=randrw\nbs=1001')).toEqual({ why: expect.stringContaining('largest common divisor 1001 bytes') });
    expect(unit('rw=randrw\nbsrange=4k-16k\nbs_unaligned')).toEqual({ why: expect.stringContaining('blocksize_unaligned') });
  });

  it('fills and checks units of any such size, and finds a changed word', () => {
    const words = new Int32Array((3 * 1500) / 4);
    fillSectors(words, 0, 3, 10, 1234, 1500);
    const counts = { ok: 0, unwritten: 0, bad: 0, firstBad: null as string | null };
    verifySectors(words, 0, 3, 10, counts, 1500);
    expect(counts).toEqual({ ok: 3, unwritten: 0, bad: 0, firstBad: null });
    words[375 + 200]! ^= 1; // second unit's payload
    const again = { ok: 0, unwritten: 0, bad: 0, firstBad: null as string | null };
    verifySectors(words, 0, 3, 10, again, 1500);
    expect(again).toEqual({ ok: 2, unwritten: 0, bad: 1, firstBad: 'sector 11: payload does not match its header' });
  });

  it('plans a verify phase for a write-only job, as fio\'s do_verify=1 default', () => {
    const plan = (body: string) => planWorkload({ jobs: parseFioJobFile(`[j]\n${body}\n`, 't.fio').jobs, vcpus: 1, runtimeCapMs: Infinity, sizeCapBytes: Infinity, defaultSizeBytes: MiB, seed: 1, maxRequestBytes: MiB }).instances[0]!;
    expect([plan('rw=write\nverify=md5').verifyPhase, plan('rw=write\nverify=md5').verifyUnitBytes]).toEqual([true, 512]);
    expect(plan('rw=write\nverify=md5\ndo_verify=0').verifyPhase).toBe(false);
    expect(plan('rw=randrw\nverify=md5').verifyPhase).toBe(false); // its own reads verify
    expect(plan('rw=write').verifyPhase).toBe(false);
    expect(plan('rw=randrw\nbssplit=4k/25:1500/75\nverify=md5').verifyUnitBytes).toBe(0);
  });
});
