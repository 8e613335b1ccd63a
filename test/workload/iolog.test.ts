// fio I/O logs: the v2 and v3 text formats as HOWTO.rst ("Trace file format") and iolog.c define
// them. Expected values are worked out from those (delay_since_ttime, read_iolog's sscanf forms),
// not from the emulator's own output.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import {
  A_ADD, A_CLOSE, A_DATASYNC, A_OPEN, A_READ, A_SYNC, A_TRIM, A_WAIT, A_WRITE, DEFAULT_REPLAY, type IologAction, IologParser, IologReader,
  IologWriter, type ReplayOptions, scanIolog,
} from '../../src/workload/iolog.js';

function parse(text: string, opts: Partial<ReplayOptions> = {}): { actions: IologAction[]; parser: IologParser } {
  const parser = new IologParser('t.log', { ...DEFAULT_REPLAY, ...opts });
  const actions: IologAction[] = [];
  text.split('\n').forEach((line, i) => {
    const a = parser.line(line, i + 1);
    if (a !== null) actions.push({ ...a });
  });
  return { actions, parser };
}

function parseError(text: string, opts: Partial<ReplayOptions> = {}): string {
  try {
    parse(text, opts);
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    expect((e as InputError).exitStatus).toBe(2);
    return (e as Error).message;
  }
  throw new Error('expected an InputError');
}

const tmp = mkdtempSync(join(tmpdir(), 'iolog-'));
function file(name: string, text: string): string {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
}

describe('iolog version 2', () => {
  // HOWTO.rst: "filename action" and "filename action offset length", after the header line.
  const V2 = [
    'fio version 2 iolog',
    '/dev/sdb add',
    '/dev/sda add',
    '/dev/sdb open',
    '/dev/sdb read 0 4096',
    '/dev/sdb write 8192 65536',
    '/dev/sda trim 1048576 524288',
    '/dev/sdb wait 250 0',
    '/dev/sdb sync 0 0',
    '/dev/sda datasync 0 0',
    '/dev/sdb close',
  ].join('\n');

  it('reads file actions and every I/O action with its offset and length', () => {
    const { actions, parser } = parse(V2);
    expect(parser.version).toBe(2);
    expect(parser.files).toEqual(['/dev/sdb', '/dev/sda']);
    expect(actions.map((a) => [a.op, a.file, a.offset, a.length, a.line])).toEqual([
      [A_ADD, 0, 0, 0, 2], [A_ADD, 1, 0, 0, 3], [A_OPEN, 0, 0, 0, 4],
      [A_READ, 0, 0, 4096, 5], [A_WRITE, 0, 8192, 65536, 6], [A_TRIM, 1, 1048576, 524288, 7],
      [A_WAIT, 0, 0, 0, 8], [A_SYNC, 0, 0, 0, 9], [A_DATASYNC, 1, 0, 0, 10], [A_CLOSE, 0, 0, 0, 11],
    ]);
    // v2 lines carry no timestamps: no delay; a wait holds until OFFSET ms after the start (read_iolog_get).
    expect(actions.every((a) => a.delayUs === 0)).toBe(true);
    expect(actions[6]!.atMs).toBe(250);
  });

  it('drops waits under replay_no_stall (read_iolog: "if (td->o.no_stall) continue")', () => {
    const { actions } = parse(V2, { noStall: true });
    expect(actions.some((a) => a.op === A_WAIT)).toBe(false);
    expect(actions).toHaveLength(9);
  });

  it('replay_scale divides offsets, replay_align rounds them down, replay_redirect names one file', () => {
    const text = 'fio version 2 iolog\na add\nb add\na read 10000 512\nb write 7000 512';
    const { actions, parser } = parse(text, { scale: 3, align: 1024, redirect: '/dev/x' });
    // 10000 / 3 = 3333, down to 1024 -> 3072; 7000 / 3 = 2333 -> 2048; both files are /dev/x.
    expect(parser.files).toEqual(['/dev/x']);
    expect(actions.filter((a) => a.op <= A_WRITE).map((a) => [a.file, a.offset])).toEqual([[0, 3072], [0, 2048]]);
  });

  it('replay_skip leaves out the actions it names', () => {
    const { actions, parser } = parse(V2, { skip: { read: true, write: false, trim: true, sync: true } });
    expect(actions.map((a) => a.op)).toEqual([A_ADD, A_ADD, A_OPEN, A_WRITE, A_WAIT, A_DATASYNC, A_CLOSE]);
    expect(parser.skipped).toBe(3);
  });
});

describe('iolog version 3', () => {
  // HOWTO.rst: "timestamp filename action [offset length]", timestamps in microseconds from 0.
  const V3 = [
    'fio version 3 iolog',
    '0 /dev/nvme0n1 add',
    '0 /dev/nvme0n1 open',
    '15 /dev/nvme0n1 read 0 4096',
    '40 /dev/nvme0n1 write 4096 8192',
    '1040 /dev/nvme0n1 trim 0 4096',
    '1000 /dev/nvme0n1 read 0 512',
    '3000 /dev/nvme0n1 sync 0 0',
    '3500 /dev/nvme0n1 close',
  ].join('\n');

  it('turns timestamps into delays as delay_since_ttime does', () => {
    const { actions, parser } = parse(V3);
    expect(parser.version).toBe(3);
    // Previous stamp 0 -> no delay (fio's "!*last_ttime"): the read at 15 after the open at 0 goes at once.
    // 40-15 = 25; 1040-40 = 1000; 1000 < 1040 went backwards -> 0; 3000-1000 = 2000; 3500-3000 = 500.
    expect(actions.map((a) => a.delayUs)).toEqual([0, 0, 0, 25, 1000, 0, 2000, 500]);
    expect(actions.map((a) => a.op)).toEqual([A_ADD, A_OPEN, A_READ, A_WRITE, A_TRIM, A_READ, A_SYNC, A_CLOSE]);
  });

  it('scales delays by 100 / replay_time_scale and drops them with replay_no_stall', () => {
    expect(parse(V3, { timeScale: 200 }).actions.map((a) => a.delayUs)).toEqual([0, 0, 0, 12, 500, 0, 1000, 250]);
    expect(parse(V3, { timeScale: 50 }).actions.map((a) => a.delayUs)).toEqual([0, 0, 0, 50, 2000, 0, 4000, 1000]);
    expect(parse(V3, { noStall: true }).actions.map((a) => a.delayUs)).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it('ignores a wait, which version 3 does not allow, and counts it', () => {
    const { actions, parser } = parse('fio version 3 iolog\n0 f add\n10 f wait 100 0\n20 f read 0 512');
    expect(actions.map((a) => a.op)).toEqual([A_ADD, A_READ]);
    expect(parser.v3WaitsIgnored).toBe(1);
    // The wait's timestamp still moved io_log_last_ttime: 20 - 10 = 10.
    expect(actions[1]!.delayUs).toBe(10);
  });
});

describe('malformed logs', () => {
  it.each([
    ['a first line that is no header', 'fio version 1 iolog\nf add', 't.log:1', 'not a fio iolog header'],
    ['an unknown I/O action', 'fio version 2 iolog\nf add\nf erase 0 512', 't.log:3', 'is not an I/O action'],
    ['an unknown file action', 'fio version 2 iolog\nf unlink', 't.log:2', 'is not a file action'],
    ['an I/O action without its numbers', 'fio version 2 iolog\nf add\nf read', 't.log:3', 'read needs an offset and a length'],
    ['three fields in v2', 'fio version 2 iolog\nf add\nf read 0', 't.log:3', '3 fields'],
    ['a trailing word', 'fio version 2 iolog\nf add\nf read 0 512 x', 't.log:3', '5 fields'],
    ['a file that was never added', 'fio version 2 iolog\nf read 0 512', 't.log:2', 'was never added'],
    ['a negative offset', 'fio version 2 iolog\nf add\nf read -512 512', 't.log:3', 'not a whole number'],
    ['a length above %u', 'fio version 2 iolog\nf add\nf write 0 4294967296', 't.log:3', "fio's 32-bit limit"],
    ['a read of 0 bytes', 'fio version 2 iolog\nf add\nf read 0 0', 't.log:3', 'a read of 0 bytes'],
    ['a v3 line without its timestamp', 'fio version 3 iolog\nf add', 't.log:2', 'the timestamp "f" is not a whole number'],
    ['a v2 line in a v3 log', 'fio version 3 iolog\n0 f add\nf read 0 512', 't.log:3', 'not a whole number'],
  ])('refuses %s, naming the file and line and the expected form', (_what, text, where, problem) => {
    const msg = parseError(text);
    expect(msg).toContain(`iolog ${where}:`);
    expect(msg).toContain(problem);
    expect(msg).toMatch(/; expected .*(fio version [23] iolog)/);
    expect(msg).not.toContain('\n');
  });

  it('skips blank lines', () => {
    expect(parse('fio version 2 iolog\n\nf add\n   \nf read 0 512\n').actions).toHaveLength(2);
  });
});

describe('scanIolog', () => {
  it('sums a log in one streaming pass: counts, bytes, the extent of each file, the largest I/O', () => {
    const p = file('scan.log', 'fio version 3 iolog\n0 a add\n0 b add\n5 a read 4096 8192\n9 b write 0 131072\n12 a trim 65536 4096\n20 a sync 0 0\n30 a datasync 0 0\n31 a close\n');
    const s = scanIolog(p);
    expect(s).toMatchObject({
      version: 3, files: ['a', 'b'], reads: 1, writes: 1, trims: 1, syncs: 1, datasyncs: 1, fileActions: 3,
      readBytes: 8192, writeBytes: 131072, trimBytes: 4096, maxLength: 131072, maxLengthLine: 5, spanUs: 31,
    });
    // a: the trim ends at 65536 + 4096; b: the write at 131072.
    expect(s.extents).toEqual([69632, 131072]);
  });

  it('refuses an empty file and a log with nothing to replay (fio: failed initializing iolog)', () => {
    expect(() => scanIolog(file('empty.log', ''))).toThrow(/is empty; expected a first line "fio version 2 iolog"/);
    expect(() => scanIolog(file('adds.log', 'fio version 2 iolog\nf add\nf open\nf close\n'))).toThrow(/has no read, write, trim, sync or wait/);
    expect(() => scanIolog(join(tmp, 'missing.log'))).toThrow(/cannot read iolog .*missing\.log/);
    expect(() => scanIolog(tmp)).toThrow(/not a regular file/);
  });

  it('refuses a line longer than fio\'s 4096-byte fgets buffer', () => {
    const p = file('long.log', `fio version 2 iolog\nf add\n${'f'.repeat(5000)} read 0 512\n`);
    expect(() => scanIolog(p)).toThrow(/long\.log:3: a line of 50\d\d bytes/);
  });
});

describe('IologReader', () => {
  it('streams a large log in batches: every action, in order, across chunk boundaries', () => {
    const n = 20_000;
    const lines = ['fio version 3 iolog', '0 /dev/d add'];
    for (let i = 0; i < n; i++) lines.push(`${i * 3} /dev/d ${i % 2 === 0 ? 'read' : 'write'} ${i * 4096} ${4096 + (i % 7) * 512}`);
    const p = file('big.log', lines.join('\n') + '\n');
    const r = new IologReader(p, DEFAULT_REPLAY);
    let count = 0;
    let bytes = 0;
    let expectBytes = 0;
    let misplaced = 0;
    for (let i = 0; i < n; i++) expectBytes += 4096 + (i % 7) * 512;
    for (let a = r.peek(); a !== null; a = r.peek()) {
      if (a.op === A_READ || a.op === A_WRITE) {
        if (a.offset !== count * 4096 || a.op !== (count % 2 === 0 ? A_READ : A_WRITE)) misplaced++;
        count++;
        bytes += a.length;
      }
      r.shift();
    }
    expect(count).toBe(n);
    expect(misplaced).toBe(0);
    expect(bytes).toBe(expectBytes);
  });
});

describe('IologWriter', () => {
  it('writes fio\'s v3 format (init_iolog_write, log_file, log_io_u), which the parser reads back', () => {
    const p = join(tmp, 'out.log');
    IologWriter.create(p, 'job.0.0');
    const w = new IologWriter(p, 'job.0.0');
    w.file(0, A_OPEN);
    w.io(12.4, A_READ, 0, 4096);
    w.io(1000.6, A_WRITE, 8192, 512);
    w.file(2000, A_CLOSE);
    w.close();
    expect(readFileSync(p, 'utf8')).toBe('fio version 3 iolog\n0 job.0.0 add\n0 job.0.0 open\n12 job.0.0 read 0 4096\n1001 job.0.0 write 8192 512\n2000 job.0.0 close\n');
    const s = scanIolog(p);
    expect([s.reads, s.writes, s.fileActions, s.readBytes + s.writeBytes]).toEqual([1, 1, 3, 4608]);
  });

  it('makes a bad write_iolog path an input error', () => {
    expect(() => IologWriter.create(join(tmp, 'no', 'such', 'dir.log'), 'f')).toThrow(/cannot write iolog .*write_iolog=/);
  });
});
