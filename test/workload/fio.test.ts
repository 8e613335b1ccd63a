// fio job-file parser. Expected values come from fio's HOWTO.rst (Job file format, int/irange
// units, bs, bsrange, bssplit, rw, rwmixread, rate, thinktime, runtime, cpus_allowed, stonewall)
// and from fio's options.c where the HOWTO leaves a rule open (bssplit's remainder), worked out by
// hand below.
import { describe, it, expect } from 'vitest';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../../src/errors.js';
import { FIO_SUPPORTED_OPTIONS, MAX_JOB_FILE_BYTES, formatIgnored, parseFioJobFile, readFioJobFile, type FioBlockSize, type FioJob } from '../../src/workload/fio.js';

const parse = (text: string) => parseFioJobFile(text, 'jobs.fio');
/** The single job of "[j]" followed by `body`. */
const job = (body: string): FioJob => {
  const file = parse(`[j]\n${body}\n`);
  expect(file.jobs).toHaveLength(1);
  return file.jobs[0]!;
};
const fixed = (bytes: number): FioBlockSize => ({ kind: 'fixed', bytes });
const split = (...pairs: [number, number][]): FioBlockSize => ({ kind: 'split', entries: pairs.map(([bytes, percent]) => ({ bytes, percent })) });
const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** Parse `text`, expect an InputError on `line` whose one-line message contains every part. */
function expectError(text: string, line: number, ...parts: string[]): InputError {
  let caught: unknown;
  try {
    parse(text);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(InputError);
  const err = caught as InputError;
  expect(err.exitStatus).toBe(2);
  expect(err.message).not.toMatch(/[\r\n]/);
  expect(err.message.startsWith(`jobs.fio:${line}: `), err.message).toBe(true);
  expect(err.message).toContain('; expected ');
  for (const part of parts) expect(err.message).toContain(part);
  return err;
}

describe('sections and [global]', () => {
  it('gives a job with no options fio defaults', () => {
    expect(parse('[only]\n').jobs[0]).toEqual({
      name: 'only', line: 1, rw: 'read', rwmixread: 50, bs: { read: fixed(4096), write: fixed(4096) },
      blocksizeUnaligned: false, iodepth: 1, numjobs: 1, sizeBytes: undefined, sizePercent: undefined,
      ioSizeBytes: undefined, runtimeMs: undefined, timeBased: false, rampTimeMs: 0,
      rateBytesPerSec: { read: undefined, write: undefined }, rateIops: { read: undefined, write: undefined },
      thinktimeUs: 0, startdelayMs: 0, startdelayMaxMs: 0, stonewall: false, groupReporting: false, ioengine: 'psync', engine: 'storage',
      direct: false, verify: 'none', doVerify: true, cpusAllowed: undefined, filename: undefined, mdPerIoSizeBytes: 0,
      hipri: false,
      readIolog: undefined, writeIolog: undefined,
      replay: { noStall: false, timeScale: 100, redirect: undefined, align: 0, scale: 1, skip: { read: false, write: false, trim: false, sync: false } },
    } satisfies FioJob);
  });

  it('reads hipri for the engines that take it (HOWTO.rst: io_uring, io_uring_cmd, pvsync2, sg) and refuses it for the others', () => {
    expect(parse('[a]\nioengine=io_uring\nhipri\n[b]\nioengine=pvsync2\nhipri=1\n[c]\nioengine=io_uring\nhipri=0\n').jobs.map((j) => j.hipri)).toEqual([true, true, false]);
    // ioengine= may come after hipri, in the job or in [global].
    expect(parse('[global]\nhipri\n[a]\nioengine=sg\n').jobs[0]!.hipri).toBe(true);
    expectError('[a]\nioengine=libaio\nhipri\n', 3, 'hipri is an option of the io_uring, io_uring_cmd, pvsync2, sg engines', 'ioengine=libaio');
    expectError('[a]\nhipri\n', 2, 'ioengine=psync');
    expectError('[a]\nioengine=io_uring\nhipri=yes\n', 3, 'hipri=yes');
  });

  it('reads md_per_io_size (a separate NVMe metadata buffer per I/O) as a size', () => {
    expect(parse('[a]\nmd_per_io_size=8\n[b]\nmd_per_io_size=4k\n').jobs.map((j) => j.mdPerIoSizeBytes)).toEqual([8, 4096]);
    expectError('[a]\nmd_per_io_size=lots\n', 2, 'md_per_io_size=lots');
  });

  it('reads the HOWTO example: [global] defaults shared by two empty job sections', () => {
    const file = parse([
      '; -- start job file --',
      '[global]',
      'rw=randread',
      'size=128m',
      '',
      '[job1]',
      '',
      '[job2]',
      '',
      '; -- end job file --',
    ].join('\n'));
    expect(file.jobs.map((j) => [j.name, j.line, j.rw, j.sizeBytes])).toEqual([
      ['job1', 6, 'randread', 128 * MiB],
      ['job2', 8, 'randread', 128 * MiB],
    ]);
    expect(file.ignored).toEqual([]);
  });

  it('applies a later [global] only to the jobs after it, on top of the earlier one', () => {
    const file = parse([
      '[global]', // 1
      'bs=8k', // 2
      'iodepth=4', // 3
      '[early]', // 4
      'iodepth=2', // 5
      '[global]', // 6
      'bs=16k', // 7
      '[late]', // 8
    ].join('\n'));
    const [early, late] = file.jobs;
    expect(early!.bs).toEqual({ read: fixed(8 * KiB), write: fixed(8 * KiB) });
    expect(early!.iodepth).toBe(2);
    expect(late!.bs).toEqual({ read: fixed(16 * KiB), write: fixed(16 * KiB) });
    // iodepth=4 still comes from the first [global]; early's own iodepth=2 does not leak.
    expect(late!.iodepth).toBe(4);
    expect(late!.line).toBe(8);
  });

  it('names a job after its section unless name= (its own or an earlier [global] one) says otherwise', () => {
    const file = parse('[a]\n[b]\nname=renamed\n[global]\nname=shared\n[c]\n[d]\nname=own\n');
    expect(file.jobs.map((j) => j.name)).toEqual(['a', 'renamed', 'shared', 'own']);
  });

  it('skips whole-line and trailing comments, blank lines, whitespace around = and CRLF line ends', () => {
    const file = parse([
      '# hash comment',
      '; semicolon comment',
      '   ',
      '[tidy] ; trailing comment on a header',
      '  bs = 8k   ; trailing semicolon comment',
      'iodepth\t=\t3 # trailing hash comment',
      'direct # bare boolean with a comment',
    ].join('\r\n'));
    const j = file.jobs[0]!;
    expect([j.name, j.line, j.bs.read, j.iodepth, j.direct]).toEqual(['tidy', 4, fixed(8 * KiB), 3, true]);
  });
});

describe('options', () => {
  it.each([
    ['4096', 4096], ['4k', 4 * KiB], ['4K', 4 * KiB], ['4KiB', 4 * KiB], ['4kb', 4 * KiB],
    ['1m', MiB], ['1M', MiB], ['64MiB', 64 * MiB], ['2g', 2 * GiB], ['2G', 2 * GiB], ['1.5k', 1536],
  ])('reads size=%s as %i bytes', (text, bytes) => {
    expect(job(`size=${text}`).sizeBytes).toBe(bytes);
  });

  it('reads size=N% as a percentage of the target, and the last size form wins', () => {
    expect([job('size=20%').sizePercent, job('size=20%').sizeBytes]).toEqual([20, undefined]);
    expect([job('size=20%\nsize=1g').sizePercent, job('size=20%\nsize=1g').sizeBytes]).toEqual([undefined, GiB]);
  });

  it('reads io_size and its alias io_limit', () => {
    expect(job('io_size=5g').ioSizeBytes).toBe(5 * GiB);
    expect(job('io_limit=512m').ioSizeBytes).toBe(512 * MiB);
  });

  it.each([
    ['read', 'read'], ['write', 'write'], ['randread', 'randread'], ['randwrite', 'randwrite'],
    ['readwrite', 'readwrite'], ['rw', 'readwrite'], ['randrw', 'randrw'],
  ])('reads rw=%s as %s, also under the alias readwrite=', (text, rw) => {
    expect(job(`rw=${text}`).rw).toBe(rw);
    expect(job(`readwrite=${text}`).rw).toBe(rw);
  });

  it('reads rwmixread, and rwmixwrite=N as rwmixread=100-N, the later one winning', () => {
    expect(job('rwmixread=70').rwmixread).toBe(70);
    expect(job('rwmixwrite=30').rwmixread).toBe(70);
    expect(job('rwmixread=10\nrwmixwrite=25').rwmixread).toBe(75);
    expect(job('rwmixwrite=25\nrwmixread=10').rwmixread).toBe(10);
    expect(job('rwmixread=0').rwmixread).toBe(0);
    expect(job('rwmixread=100').rwmixread).toBe(100);
  });

  it('reads iodepth and numjobs', () => {
    const j = job('iodepth=32\nnumjobs=8');
    expect([j.iodepth, j.numjobs]).toEqual([32, 8]);
  });

  it.each([
    ['10', 10_000], ['10s', 10_000], ['500ms', 500], ['2m', 120_000], ['2h', 7_200_000], ['1d', 86_400_000], ['250us', 0.25],
  ])('reads runtime=%s as %f ms (a bare number is seconds)', (text, ms) => {
    expect(job(`runtime=${text}`).runtimeMs).toBe(ms);
  });

  it('reads runtime=0 as unbounded and timeout= as runtime', () => {
    expect(job('runtime=0').runtimeMs).toBeUndefined();
    expect(job('timeout=30').runtimeMs).toBe(30_000);
  });

  it('reads ramp_time in seconds by default', () => {
    expect(job('ramp_time=5').rampTimeMs).toBe(5000);
    expect(job('ramp_time=250ms').rampTimeMs).toBe(250);
  });

  it('reads thinktime in microseconds by default', () => {
    expect(job('thinktime=100').thinktimeUs).toBe(100);
    expect(job('thinktime=5ms').thinktimeUs).toBe(5000);
    expect(job('thinktime=1s').thinktimeUs).toBe(1_000_000);
  });

  it('reads startdelay in seconds, and a range as its two ends (swapped when written high-low)', () => {
    expect([job('startdelay=2').startdelayMs, job('startdelay=2').startdelayMaxMs]).toEqual([2000, 2000]);
    expect(job('startdelay=500ms').startdelayMs).toBe(500);
    expect([job('startdelay=1-5').startdelayMs, job('startdelay=1-5').startdelayMaxMs]).toEqual([1000, 5000]);
    expect([job('startdelay=5s:1s').startdelayMs, job('startdelay=5s:1s').startdelayMaxMs]).toEqual([1000, 5000]);
  });

  it('reads rate per direction: "a,b" is reads,writes, "a," reads only, ",b" writes only, 0 no cap', () => {
    expect(job('rate=1m,500k').rateBytesPerSec).toEqual({ read: MiB, write: 500 * KiB });
    expect(job('rate=2m').rateBytesPerSec).toEqual({ read: 2 * MiB, write: 2 * MiB });
    expect(job('rate=500k,').rateBytesPerSec).toEqual({ read: 500 * KiB, write: undefined });
    expect(job('rate=,500k').rateBytesPerSec).toEqual({ read: undefined, write: 500 * KiB });
    expect(job('rate=1m\nrate=0').rateBytesPerSec).toEqual({ read: undefined, write: undefined });
  });

  it('reads rate_iops per direction', () => {
    expect(job('rate_iops=1000,200').rateIops).toEqual({ read: 1000, write: 200 });
    expect(job('rate_iops=500').rateIops).toEqual({ read: 500, write: 500 });
  });

  it('reads booleans bare, =1 and =0, with stonewall alias wait_for_previous and buffered as !direct', () => {
    expect(job('time_based').timeBased).toBe(true);
    expect(job('time_based=1').timeBased).toBe(true);
    expect(job('time_based\ntime_based=0').timeBased).toBe(false);
    expect(job('stonewall').stonewall).toBe(true);
    expect(job('wait_for_previous').stonewall).toBe(true);
    expect(job('stonewall=0').stonewall).toBe(false);
    expect(job('direct').direct).toBe(true);
    expect(job('direct=1').direct).toBe(true);
    expect(job('direct=0').direct).toBe(false);
    expect(job('buffered=0').direct).toBe(true);
    expect(job('direct=1\nbuffered').direct).toBe(false);
  });

  it.each([
    ['psync', 'storage'], ['sync', 'storage'], ['libaio', 'storage'], ['io_uring', 'storage'], ['pvsync2', 'storage'],
    ['posixaio', 'storage'], ['mmap', 'storage'], ['net', 'net'], ['netsplice', 'net'],
  ])('keeps ioengine=%s as written and derives engine %s', (ioengine, engine) => {
    const j = job(`ioengine=${ioengine}`);
    expect([j.ioengine, j.engine]).toEqual([ioengine, engine]);
  });

  it.each([
    ['md5', 'md5'], ['crc32c', 'crc32c'], ['crc32c-intel', 'crc32c'], ['sha1', 'sha1'], ['sha256', 'sha256'],
    ['xxhash', 'xxhash'], ['0', 'none'], ['none', 'none'],
  ])('reads verify=%s as %s', (text, verify) => {
    expect(job(`verify=${text}`).verify).toBe(verify);
  });

  it('reads cpus_allowed lists and ranges into sorted unique CPU numbers', () => {
    expect(job('cpus_allowed=0-3,8,10-11').cpusAllowed).toEqual([0, 1, 2, 3, 8, 10, 11]);
    expect(job('cpus_allowed=8, 0-2,1').cpusAllowed).toEqual([0, 1, 2, 8]);
    expect(job('cpus_allowed=5').cpusAllowed).toEqual([5]);
  });

  it('keeps filename as written and accepts kb_base=1024', () => {
    expect(job('filename=/dev/nvme0n1').filename).toBe('/dev/nvme0n1');
    expect(job('kb_base=1024\nbs=1k').bs.read).toEqual(fixed(1024));
  });

  it('lists the supported names with their aliases', () => {
    for (const name of ['bs', 'blocksize', 'bsrange', 'blocksize_range', 'rw', 'readwrite', 'io_size', 'io_limit',
      'stonewall', 'wait_for_previous', 'bs_unaligned', 'blocksize_unaligned', 'runtime', 'timeout']) {
      expect(FIO_SUPPORTED_OPTIONS).toContain(name);
    }
    expect(FIO_SUPPORTED_OPTIONS).toContain('group_reporting');
    expect(FIO_SUPPORTED_OPTIONS).not.toContain('clat_percentiles');
  });
});

describe('block sizes', () => {
  it('reads bs=r,w as a read size and a write size, blocksize= being the same option', () => {
    expect(job('bs=4k,8k').bs).toEqual({ read: fixed(4 * KiB), write: fixed(8 * KiB) });
    expect(job('blocksize=4k,8k').bs).toEqual({ read: fixed(4 * KiB), write: fixed(8 * KiB) });
    // The third (trim) value and a trailing comma change nothing for reads and writes.
    expect(job('bs=4k,8k,16k').bs).toEqual({ read: fixed(4 * KiB), write: fixed(8 * KiB) });
    expect(job('bs=8k,32k,').bs).toEqual({ read: fixed(8 * KiB), write: fixed(32 * KiB) });
  });

  it('leaves a direction whose value is empty as it was (bs=,8k keeps the inherited read size)', () => {
    const file = parse('[global]\nbs=16k\n[j]\nbs=,8k\n');
    expect(file.jobs[0]!.bs).toEqual({ read: fixed(16 * KiB), write: fixed(8 * KiB) });
  });

  it('reads bsrange, per direction, with - or : inside a range and , or / between the two', () => {
    const r1k4k: FioBlockSize = { kind: 'range', minBytes: KiB, maxBytes: 4 * KiB };
    expect(job('bsrange=1k-4k').bs).toEqual({ read: r1k4k, write: r1k4k });
    expect(job('bsrange=1k:4k').bs).toEqual({ read: r1k4k, write: r1k4k });
    expect(job('bsrange=4k-1k').bs).toEqual({ read: r1k4k, write: r1k4k });
    expect(job('bsrange=1k-4k,8k-16k').bs).toEqual({ read: r1k4k, write: { kind: 'range', minBytes: 8 * KiB, maxBytes: 16 * KiB } });
    expect(job('blocksize_range=1k-4k/8k-32k').bs).toEqual({ read: r1k4k, write: { kind: 'range', minBytes: 8 * KiB, maxBytes: 32 * KiB } });
  });

  it('reads the HOWTO bssplit examples', () => {
    // 50% 64k, 10% 4k, 40% 32k; ordering does not matter.
    const mix = split([4 * KiB, 10], [64 * KiB, 50], [32 * KiB, 40]);
    expect(job('bssplit=4k/10:64k/50:32k/40').bs).toEqual({ read: mix, write: mix });
    // "would have 50% 4k ios, and 25% 1k and 32k ios"
    const blanks = split([4 * KiB, 50], [KiB, 25], [32 * KiB, 25]);
    expect(job('bssplit=4k/50:1k/:32k/').bs).toEqual({ read: blanks, write: blanks });
    // 50% 2k and 50% 4k reads, 90% 4k and 10% 8k writes.
    expect(job('bssplit=2k/50:4k/50,4k/90:8k/10').bs).toEqual({
      read: split([2 * KiB, 50], [4 * KiB, 50]),
      write: split([4 * KiB, 90], [8 * KiB, 10]),
    });
  });

  it('spreads a bssplit remainder as fio does', () => {
    // Three blanks share 100: 100/3 = 33 each; the 1 left over goes to the largest share, the last of equals.
    expect(job('bssplit=1k/:2k/:4k/').bs.read).toEqual(split([KiB, 33], [2 * KiB, 33], [4 * KiB, 34]));
    // Explicit percentages adding to 90: fio's lookup falls through to the largest (64k/50) for the other 10.
    expect(job('bssplit=4k/10:64k/50:32k/30').bs.read).toEqual(split([4 * KiB, 10], [64 * KiB, 60], [32 * KiB, 30]));
    // A size without "/" is blank too: 60 left for two blanks, 30 each.
    expect(job('bssplit=4k/40:8k:16k').bs.read).toEqual(split([4 * KiB, 40], [8 * KiB, 30], [16 * KiB, 30]));
    // Sizes alone split evenly.
    expect(job('bssplit=4k:8k').bs.read).toEqual(split([4 * KiB, 50], [8 * KiB, 50]));
    // An explicit 0 is read by fio as blank, so it shares what is left.
    expect(job('bssplit=4k/50:8k/0').bs.read).toEqual(split([4 * KiB, 50], [8 * KiB, 50]));
    // Blanks after 100% is used up get nothing.
    expect(job('bssplit=4k/60:8k/40:16k/').bs.read).toEqual(split([4 * KiB, 60], [8 * KiB, 40], [16 * KiB, 0]));
    // 30 left for 4 blanks: 7 each, and the 2 over go to the largest (the explicit 70).
    expect(job('bssplit=64k/70:1k:2k:4k:8k').bs.read).toEqual(
      split([64 * KiB, 72], [KiB, 7], [2 * KiB, 7], [4 * KiB, 7], [8 * KiB, 7]));
  });

  it('lets the last block-size option win', () => {
    expect(job('bs=4k\nbsrange=1k-8k').bs.read).toEqual({ kind: 'range', minBytes: KiB, maxBytes: 8 * KiB });
    expect(job('bssplit=4k/50:8k/50\nbs=16k').bs.write).toEqual(fixed(16 * KiB));
    expect(job('bs=4k\nbssplit=,8k/100').bs).toEqual({ read: fixed(4 * KiB), write: split([8 * KiB, 100]) });
  });

  it('reads blocksize_unaligned and bs_unaligned', () => {
    expect(job('blocksize_unaligned').blocksizeUnaligned).toBe(true);
    expect(job('bs_unaligned=1').blocksizeUnaligned).toBe(true);
    expect(job('bs_unaligned=0').blocksizeUnaligned).toBe(false);
  });
});

describe('ignored options', () => {
  it('lists options it does not use once, sorted, matching names case-sensitively', () => {
    const file = parse([
      '[global]',
      'clat_percentiles',
      'norandommap',
      '[a]',
      'randrepeat=0',
      'lat_percentiles=1',
      'clat_percentiles',
      '[b]',
      'Clat_Percentiles',
      'BS=64k',
      'hostname=localhost',
    ].join('\n'));
    expect(file.ignored).toEqual(['BS', 'Clat_Percentiles', 'clat_percentiles', 'hostname', 'lat_percentiles', 'norandommap', 'randrepeat']);
    expect(file.jobs[1]!.bs.read).toEqual(fixed(4096));
  });
});

describe('errors', () => {
  it('names file:line, option and form for a bad size suffix', () => {
    const err = expectError('[j]\nbs=4q\n', 2, 'bs=4q', 'unknown size suffix "q"', 'k, K, KiB');
    expect(err.name).toBe('InputError');
  });

  it('rejects zero and negative sizes', () => {
    expectError('[j]\nsize=0\n', 2, 'size=0', 'zero');
    expectError('[j]\nbs=0\n', 2, 'bs=0', 'zero');
    expectError('[j]\nio_size=0\n', 2, 'io_size=0', 'zero');
    expectError('[j]\nsize=-4k\n', 2, 'size=-4k', 'negative');
    expectError('[j]\nrate=-1m\n', 2, 'rate=-1m', 'negative');
    expectError('[j]\nsize=0%\n', 2, 'size=0%', 'from 1% to 100%');
  });

  it('rejects an unknown rw mode, trim modes and the :<nr> modifier, listing the accepted modes', () => {
    expectError('[j]\nrw=sideways\n', 2, 'rw=sideways', 'unknown I/O pattern', 'read, write, randread, randwrite, readwrite (or rw), randrw');
    for (const mode of ['trim', 'randtrim', 'trimwrite']) expectError(`[j]\nrw=${mode}\n`, 2, `rw=${mode}`, 'trim', 'randrw');
    expectError('[j]\nrw=randread:8\n', 2, 'rw=randread:8', 'offset modifier');
  });

  it('rejects rwmixread outside 0..100', () => {
    expectError('[j]\nrwmixread=101\n', 2, 'rwmixread=101', 'from 0 to 100');
    expectError('[j]\nrwmixwrite=-1\n', 2, 'rwmixwrite=-1', 'from 0 to 100');
  });

  it('rejects an option outside any section', () => {
    expectError('; header comment\nbs=4k\n[j]\n', 2, 'bs=4k', 'outside of any section', '[global] or [jobname]');
  });

  it('rejects a file with no job section', () => {
    expectError('', 1, 'no job sections', '[jobname]');
    expectError('; nothing here\n\n', 2, 'no job sections');
    expectError('[global]\nbs=4k\n', 2, 'no job sections');
  });

  it('rejects malformed lines and section headers', () => {
    expectError('[j]\nbs 4k\n', 2, '"bs 4k"', 'not an option', 'option=value');
    expectError('[j]\n=4k\n', 2, '"=4k"', 'not an option');
    expectError('[unterminated\n', 1, 'not a section header');
    expectError('[]\n', 1, 'not a section header');
    expectError('[j]\ninclude common.fio\n', 2, 'include directives are not supported');
  });

  it('quotes what the file said: raw CR, ESC and binary bytes escaped, long text capped with its length', () => {
    // Every message stays one line of printable text (expectError checks no CR or LF).
    const esc = expectError('[j]\nrw=read\x1b[2J\n', 2, 'rw=read\\x1b[2J', 'unknown I/O pattern "read\\x1b[2J"');
    expect(esc.message).not.toMatch(/[\x00-\x1f\x7f]/);
    // A lone CR inside a line (not a line end) is shown as \r.
    expectError('[j]\nbs=4q\rxx\n', 2, 'bs=4q\\rxx');
    // A binary byte (0xff decodes to U+FFFD) on a malformed line.
    const bin = expectError(`[j]\n${Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0xff]).toString('utf8')}\n`, 2, '"\\x7fELF\\ufffd"', 'not an option');
    expect(bin.message).not.toMatch(/[\x00-\x1f\x7f\ufffd]/);
    // A 1 MB value: the message keeps 64 escaped characters and says how long the value was.
    const big = expectError(`[j]\nbs=${'9'.repeat(1024 * 1024)}q\n`, 2, '..."(1048577 bytes)');
    expect(big.message.length).toBeLessThan(600);
    // A section name or name= with a control character is refused, escaped.
    expectError('[j\x1b]\n', 1, '"[j\\x1b]"', 'control');
    expectError('[j]\nname=a\x07b\n', 2, 'name=a\\x07b', 'printable');
  });

  it('says which options it ignores in one short line, however long or many the names', () => {
    const long = 'x'.repeat(1024 * 1024);
    const file = parse(`[j]\n${long}=1\n`);
    expect(file.ignored).toEqual([long]);
    expect(formatIgnored(file.ignored)).toBe(`ignoring fio options: ${'x'.repeat(64)}...(1048576 bytes)`);
    const many = Array.from({ length: 20 }, (_, i) => `opt${String(i).padStart(2, '0')}`);
    expect(formatIgnored(parse(`[j]\n${many.map((n) => `${n}=1`).join('\n')}\n`).ignored))
      .toBe(`ignoring fio options: ${many.slice(0, 16).join(', ')}, and 4 more`);
    expect(formatIgnored([])).toBeNull();
  });

  it('rejects an engine it cannot emulate, listing the accepted ones', () => {
    expectError('[j]\nioengine=null\n', 2, 'ioengine=null', 'engine "null"', 'libaio', 'io_uring', 'net');
  });

  it('rejects an unknown verify method', () => {
    expectError('[j]\nverify=sha42\n', 2, 'verify=sha42', 'unknown verify method', 'crc32c-intel');
    expectError('[j]\nverify=pattern\n', 2, 'verify_pattern');
  });

  it('rejects bad block-size forms', () => {
    expectError('[j]\nbssplit=4k/60:8k/50\n', 2, 'bssplit=4k/60:8k/50', '110%', 'size/percent');
    expectError('[j]\nbssplit=4k/ten\n', 2, 'not a whole number', 'size/percent');
    expectError('[j]\nbssplit=4k/50::8k/50\n', 2, 'empty entry');
    expectError('[j]\nbsrange=4k\n', 2, 'bsrange=4k', 'not a range', 'min-max');
    expectError('[j]\nbs=4k-8k\n', 2, 'looks like a range', 'bsrange');
    expectError('[j]\nbs=1k,2k,3k,4k\n', 2, 'read, write, trim at most');
  });

  it('rejects a bad boolean', () => {
    expectError('[j]\ndirect=yes\n', 2, 'direct=yes', 'not a boolean', '1 or 0');
  });

  it('rejects bad cpus_allowed lists', () => {
    expectError('[j]\ncpus_allowed=3-1\n', 2, 'runs backwards', '0-3,8,10-11');
    expectError('[j]\ncpus_allowed=a\n', 2, 'not a CPU number or range');
    expectError('[j]\ncpus_allowed=2000\n', 2, 'from 0 to 1023');
  });

  it('rejects bad counts and durations', () => {
    expectError('[j]\niodepth=0\n', 2, 'iodepth=0', 'from 1 to 65536');
    expectError('[j]\nnumjobs=x\n', 2, 'numjobs=x', 'whole number');
    expectError('[j]\nruntime=10parsecs\n', 2, 'runtime=10parsecs', 'us, ms, s, m, h or d');
    expectError('[j]\nthinktime=fast\n', 2, 'thinktime=fast', 'microseconds when none');
    // 400 digits read as a JavaScript number are Infinity: refused, as any duration above 2^53-1 us.
    const digits = '9'.repeat(400);
    expectError(`[j]\nruntime=${digits}\n`, 2, 'runtime=999', 'too long', 'at most 9007199254740991us');
    expectError(`[j]\nstartdelay=${digits}\n`, 2, 'startdelay=999', 'too long');
    expectError(`[j]\nstartdelay=1-${digits}\n`, 2, 'too long');
    expectError(`[j]\nthinktime=${digits}\n`, 2, 'thinktime=999', 'too long', 'microseconds when none');
    expectError(`[j]\nramp_time=${digits}ms\n`, 2, 'too long');
    // 2^53 us is over the bound; a long but representable one is read exactly.
    expectError('[j]\nthinktime=9007199254740992\n', 2, 'too long');
    expect(job('thinktime=1000000000000').thinktimeUs).toBe(1e12);
    // Sizes: too large, not "not a whole number".
    expectError(`[j]\nsize=${digits}\n`, 2, 'size=999', 'too large', 'at most 9007199254740991 bytes');
    expectError(`[j]\nrate=${digits}k\n`, 2, 'too large');
  });

  it('rejects a missing value', () => {
    expectError('[j]\nbs\n', 2, 'bs:', 'needs a value');
    expectError('[j]\nrw=\n', 2, 'rw=', 'needs a value');
  });

  it('rejects environment variables, $keywords, arithmetic and kb_base=1000', () => {
    expectError('[j]\nsize=${SIZE}\n', 2, 'environment variables');
    expectError('[j]\nnumjobs=$ncpus\n', 2, '$keywords');
    expectError('[j]\nsize=(4*1024)\n', 2, 'arithmetic');
    expectError('[j]\nkb_base=1000\n', 2, 'kb_base=1000', '1024');
  });

  it('reports an error in [global] at its own line, counting comments and blank lines', () => {
    expectError('; a\n\n# b\n[global]\niodepth=-3\n[j]\n', 5, 'iodepth=-3');
  });
});

describe('job files on disk', () => {
  const jobsDir = (name: string) => fileURLToPath(new URL(`../../jobs/${name}`, import.meta.url));

  it('ships randrw-4k.fio: mixed 4k random I/O, iodepth 16, 4 clones, crc32c, 10 s time-based', () => {
    const file = readFioJobFile(jobsDir('randrw-4k.fio'));
    expect(file.ignored).toEqual([]);
    expect(file.jobs).toHaveLength(1);
    const j = file.jobs[0]!;
    expect([j.rw, j.rwmixread, j.bs, j.iodepth, j.numjobs, j.verify, j.timeBased, j.runtimeMs, j.engine]).toEqual(
      ['randrw', 50, { read: fixed(4 * KiB), write: fixed(4 * KiB) }, 16, 4, 'crc32c', true, 10_000, 'storage']);
  });

  it('ships seq-large.fio: 1M sequential writes, then reads behind a stonewall, iodepth 8, 64M', () => {
    const file = readFioJobFile(jobsDir('seq-large.fio'));
    expect(file.ignored).toEqual([]);
    expect(file.jobs.map((j) => [j.name, j.rw, j.stonewall, j.bs.read, j.bs.write, j.iodepth, j.sizeBytes])).toEqual([
      ['seq-write', 'write', false, fixed(MiB), fixed(MiB), 8, 64 * MiB],
      ['seq-read', 'read', true, fixed(MiB), fixed(MiB), 8, 64 * MiB],
    ]);
    expect(file.jobs[0]!.filename).toBe(file.jobs[1]!.filename);
  });

  it('ships net.fio: the net engine with 1500-byte packets', () => {
    const file = readFioJobFile(jobsDir('net.fio'));
    expect(file.ignored).toEqual(['hostname', 'listen', 'port', 'protocol']);
    expect(file.jobs.map((j) => [j.name, j.engine, j.ioengine, j.rw, j.bs.read, j.bs.write])).toEqual([
      ['receiver', 'net', 'net', 'read', fixed(1500), fixed(1500)],
      ['sender', 'net', 'net', 'write', fixed(1500), fixed(1500)],
    ]);
  });

  it('ships heavy.fio (Kelley\'s claim) and md-deadlock.fio (the RFC\'s self-deadlock)', () => {
    const heavy = readFioJobFile(jobsDir('heavy.fio'));
    expect(heavy.ignored).toEqual([]);
    expect(heavy.jobs.map((j) => [j.rw, j.iodepth, j.numjobs, j.sizeBytes, j.verify, j.runtimeMs])).toEqual([['randrw', 16, 8, 32 * MiB, 'crc32c', 5000]]);
    const md = readFioJobFile(jobsDir('md-deadlock.fio'));
    expect(md.ignored).toEqual([]);
    expect(md.jobs.map((j) => [j.rw, j.bs.write, j.iodepth, j.numjobs, j.mdPerIoSizeBytes])).toEqual([['randwrite', fixed(128 * KiB), 8, 8, 4 * KiB]]);
  });

  it('ships ramp.fio: 32 clones of 64 KiB random I/O, 4 s after a 2 s ramp', () => {
    const file = readFioJobFile(jobsDir('ramp.fio'));
    expect(file.ignored).toEqual([]);
    expect(file.jobs.map((j) => [j.rw, j.numjobs, j.runtimeMs, j.rampTimeMs, j.timeBased])).toEqual([['randrw', 32, 4000, 2000, true]]);
  });

  it('names an unreadable file and why', () => {
    let caught: unknown;
    try {
      readFioJobFile('/nonexistent/dir/missing.fio');
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(InputError);
    expect((caught as InputError).exitStatus).toBe(2);
    expect((caught as InputError).message).toBe('cannot read job file /nonexistent/dir/missing.fio: ENOENT: no such file or directory');
  });

  /** The InputError readFioJobFile throws for `path`. */
  const readError = (path: string): InputError => {
    try {
      readFioJobFile(path);
    } catch (e) {
      expect(e).toBeInstanceOf(InputError);
      return e as InputError;
    }
    throw new Error(`${path} was read`);
  };

  it('refuses a file that is not regular (a device, a directory) before reading it', () => {
    // /dev/zero would read for ever (16 GB, then a native abort); it is refused from its fstat.
    const zero = readError('/dev/zero');
    expect(zero.exitStatus).toBe(2);
    expect(zero.message).toBe(`job file /dev/zero: is not a regular file (a device, FIFO or socket: save a piped job to a file first); expected a regular file of at most ${MAX_JOB_FILE_BYTES} bytes (1 MiB) in fio's job-file format`);
    expect(readError(jobsDir('.')).message).toContain(': is a directory; expected a regular file');
  });

  it(`refuses a file above ${MAX_JOB_FILE_BYTES} bytes, and reads one of exactly that size`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'fio-size-'));
    try {
      const big = join(dir, 'big.fio');
      // A valid job followed by comment lines, padded to one byte over the limit.
      const head = '[j]\nbs=4k\n';
      writeFileSync(big, head + ';'.repeat(MAX_JOB_FILE_BYTES + 1 - head.length));
      expect(readError(big).message).toBe(`job file ${big}: is ${MAX_JOB_FILE_BYTES + 1} bytes; expected a regular file of at most ${MAX_JOB_FILE_BYTES} bytes (1 MiB) in fio's job-file format`);
      writeFileSync(big, head + ';'.repeat(MAX_JOB_FILE_BYTES - head.length));
      expect(readFioJobFile(big).jobs.map((j) => j.name)).toEqual(['j']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('uses the path it was given in parse errors', () => {
    const err = (() => {
      try {
        readFioJobFile(jobsDir('../package.json'));
      } catch (e) {
        return e as InputError;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(InputError);
    expect(err!.message).toContain(`${jobsDir('../package.json')}:1: `);
  });
});

describe('I/O log options (read_iolog, write_iolog, replay_*)', () => {
  const at = (text: string, fileName = '/work/jobs/replay.fio') => parseFioJobFile(text, fileName).jobs[0]!;

  it('resolves log paths against the job file\'s directory, and splits read_iolog on ":" (one per clone)', () => {
    const job = at('[r]\nread_iolog=a.log:/abs/b.log:sub/c\\:d.log\nnumjobs=3');
    expect(job.readIolog).toEqual(['/work/jobs/a.log', '/abs/b.log', '/work/jobs/sub/c:d.log']);
    expect(at('[w]\nwrite_iolog=../out.log').writeIolog).toBe('/work/out.log');
    expect(at('[r]\nread_iolog=x.log', 'rel/dir/j.fio').readIolog![0]).toMatch(/\/rel\/dir\/x\.log$/);
    expect(parse('[r]\nread_iolog=x.log').ignored).toEqual([]);
  });

  it('reads the replay options, with fio\'s defaults', () => {
    expect(at('[r]\nread_iolog=x').replay).toEqual({ noStall: false, timeScale: 100, redirect: undefined, align: 0, scale: 1, skip: { read: false, write: false, trim: false, sync: false } });
    const job = at('[r]\nread_iolog=x\nreplay_no_stall=1\nreplay_time_scale=200\nreplay_redirect=/dev/nvme0n1\nreplay_align=4k\nreplay_scale=8\nreplay_skip=write,trim\nread_iolog_chunked=1');
    expect(job.replay).toEqual({ noStall: true, timeScale: 200, redirect: '/dev/nvme0n1', align: 4096, scale: 8, skip: { read: false, write: true, trim: true, sync: false } });
  });

  it.each([
    ['[r]\nread_iolog=-', 'stdin/stdout is not supported'],
    ['[r]\nread_iolog=a::b', 'an empty file name'],
    ['[r]\nreplay_align=3000', 'is not a power of 2'],
    ['[r]\nreplay_skip=read,erase', '"erase" is not an I/O type'],
    ['[r]\nreplay_time_scale=0', 'replay_time_scale=0'],
    ['[r]\nread_iolog=x\nverify=crc32c', 'verify with read_iolog is not supported'],
    ['[r]\nread_iolog=x\ntime_based\nruntime=1s', 'time_based with read_iolog'],
    ['[r]\nread_iolog=x\nioengine=net', 'read_iolog with ioengine=net'],
    ['[r]\nread_iolog=x\nwrite_iolog=y', 'fio writes no log while it replays one'],
    ['[w]\nwrite_iolog=y\nnumjobs=2', 'write_iolog with numjobs=2'],
  ])('refuses %j', (text, problem) => {
    expect(() => parse(text)).toThrow(InputError);
    expect(() => parse(text)).toThrow(problem);
  });
});
