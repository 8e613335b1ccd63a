// fio I/O logs (read_iolog=, write_iolog=): the text formats "fio version 2 iolog" and "fio version
// 3 iolog" of axboe/fio's HOWTO.rst ("Trace file format") as iolog.c reads and writes them.
//
// Grammar (iolog.c read_iolog, one sscanf per line):
//   line 1   "fio version 2 iolog" or "fio version 3 iolog" (a prefix match, as fio's strncmp)
//   v2       FILE ACTION                       file actions: add, open, close
//            FILE ACTION OFFSET LENGTH         I/O actions: read, write, sync, datasync, trim, wait
//   v3       TIME FILE ACTION                  TIME: microseconds since the start of the run
//            TIME FILE ACTION OFFSET LENGTH    as v2; 'wait' is not allowed in v3 (fio ignores it)
// FILE is a word of at most 256 characters (%256s), OFFSET a %llu, LENGTH a %u (32 bits).
//
// Timing, as fio replays it:
// - v3: each line's delay is its timestamp minus the previous line's (delay_since_ttime), scaled by
//   100 / replay_time_scale, and 0 when the previous timestamp was 0, when time went backwards, or
//   with replay_no_stall. fio's quirk is kept: the line after one stamped 0 has no delay, so a log
//   whose I/O starts at 0 runs its first gap at once. The delay is a gap since the previous issue
//   (iolog_delay: time already spent since the last issue counts against it).
// - v2: 'wait OFFSET' holds the next action until OFFSET milliseconds after the start of the run
//   (read_iolog_get compares it with mtime_since_genesis). HOWTO.rst says "microseconds, relative to
//   the previous wait"; the code, which is what fio does, reads an absolute time in milliseconds.
//   replay_no_stall drops the waits.
//
// Where the emulator differs from fio, and why:
// - A line fio rejects ("bad iolog", an unknown action, a file never added) is skipped by fio with
//   a message; here it is an InputError (exit 2) naming the file, the line and the expected form, so
//   that a run never reports figures for a log it only half replayed. Trailing words after a line's
//   fields (which sscanf ignores) are refused too; blank lines are skipped (fio complains and goes on).
// - An I/O on a file that no 'add' named: fio indexes its file table with -1 (undefined behaviour);
//   it is refused. I/O on a file added but not opened is accepted: the emulator has no descriptors.
// - A read, write or trim of 0 bytes is refused (an NVMe command moves at least one block).
// - A 'wait' in a v3 log is ignored as fio ignores it, and counted (the report says how many).
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { InputError } from '../errors.js';
import { LineSplitter } from '../analyze/lines.js';
import { printable, quote } from '../util/quote.js';

export const IOLOG_V2_HEADER = 'fio version 2 iolog';
export const IOLOG_V3_HEADER = 'fio version 3 iolog';

// Actions, in fio's enum fio_ddir order for the I/O ones (io_ddir_name), then the file actions.
export const A_READ = 0;
export const A_WRITE = 1;
export const A_TRIM = 2;
export const A_SYNC = 3;
export const A_DATASYNC = 4;
export const A_WAIT = 5;
export const A_ADD = 6;
export const A_OPEN = 7;
export const A_CLOSE = 8;
/** The action names as they appear in a log (io_ddir_name and log_file's act[]). */
export const ACTION_NAMES = ['read', 'write', 'trim', 'sync', 'datasync', 'wait', 'add', 'open', 'close'] as const;
const IO_ACTIONS: ReadonlyMap<string, number> = new Map([['read', A_READ], ['write', A_WRITE], ['trim', A_TRIM], ['sync', A_SYNC], ['datasync', A_DATASYNC], ['wait', A_WAIT]]);
const FILE_ACTIONS: ReadonlyMap<string, number> = new Map([['add', A_ADD], ['open', A_OPEN], ['close', A_CLOSE]]);

/** fio's %256s: the longest file name a line can carry. */
export const IOLOG_NAME_MAX = 256;
/** fio reads a line with fgets(str, 4096): a longer one is not a line of the format. */
export const IOLOG_LINE_MAX = 4095;
const U32_MAX = 0xffff_ffff;

/** The replay options of a job (fio's replay_* options, children of read_iolog). */
export interface ReplayOptions {
  /** replay_no_stall: ignore the log's timing (v3 timestamps, v2 waits). Default false. */
  readonly noStall: boolean;
  /** replay_time_scale, percent: 200 replays twice as fast. Default 100. */
  readonly timeScale: number;
  /** replay_redirect: every file of the log is this one. Default undefined. */
  readonly redirect: string | undefined;
  /** replay_align: offsets rounded down to a multiple of this power of two (0: none). Default 0. */
  readonly align: number;
  /** replay_scale: offsets divided by this (integer division, before the alignment; 0 or 1: none). Default 1. */
  readonly scale: number;
  /** replay_skip: actions not replayed (read, write, trim, sync). Default none. */
  readonly skip: { readonly read: boolean; readonly write: boolean; readonly trim: boolean; readonly sync: boolean };
}

export const DEFAULT_REPLAY: ReplayOptions = {
  noStall: false, timeScale: 100, redirect: undefined, align: 0, scale: 1, skip: { read: false, write: false, trim: false, sync: false },
};

/** One action of a log, as replayed. Objects are reused by IologParser.line: copy what is kept. */
export interface IologAction {
  /** A_READ ... A_CLOSE. */
  op: number;
  /** Index of the file in the order the log added them (0 under replay_redirect). */
  file: number;
  /** Bytes, after replay_scale and replay_align. */
  offset: number;
  length: number;
  /** v3: microseconds to wait after the previous issue (delay_since_ttime, scaled); 0 otherwise. */
  delayUs: number;
  /** v2 wait: not before this many milliseconds after the start of the run. */
  atMs: number;
  /** 1-based line of the log. */
  line: number;
}

const V2_FORM = `"${IOLOG_V2_HEADER}" lines of the form FILE add|open|close, or FILE read|write|trim|sync|datasync|wait OFFSET LENGTH`;
const V3_FORM = `"${IOLOG_V3_HEADER}" lines of the form TIME FILE add|open|close, or TIME FILE read|write|trim|sync|datasync OFFSET LENGTH (TIME in microseconds)`;
const HEADER_FORM = `a first line "${IOLOG_V2_HEADER}" or "${IOLOG_V3_HEADER}" (fio's iolog version 1 is no longer supported, as in fio)`;

/**
 * Line-by-line parser of one log: the header, then one action per line (null for a line that is
 * not replayed: a blank line, a v3 wait, a replay_skip'd action, a v2 wait under replay_no_stall).
 * Throws InputError on the first malformed line.
 */
export class IologParser {
  version: 2 | 3 | 0 = 0;
  /** File names in the order the log added them (just the redirect target under replay_redirect). */
  readonly files: string[] = [];
  private readonly index = new Map<string, number>();
  /** v3: the previous line's timestamp (fio's io_log_last_ttime). */
  lastTtime = 0;
  /** v3 'wait' lines, ignored as fio ignores them. */
  v3WaitsIgnored = 0;
  /** Lines replay_skip left out. */
  skipped = 0;
  private readonly out: IologAction = { op: 0, file: 0, offset: 0, length: 0, delayUs: 0, atMs: 0, line: 0 };

  constructor(private readonly shown: string, private readonly opts: ReplayOptions = DEFAULT_REPLAY) {}

  private fail(lineNo: number, text: string, problem: string): never {
    const form = this.version === 3 ? V3_FORM : this.version === 2 ? V2_FORM : HEADER_FORM;
    throw new InputError('EBADIOLOG', `iolog ${this.shown}:${lineNo}: ${quote(text)}: ${problem}; expected ${form}`);
  }

  /** Parse one line (without its newline). */
  line(text: string, lineNo: number): IologAction | null {
    if (lineNo === 1) {
      const t = text.replace(/^\uFEFF/, '');
      if (t.startsWith(IOLOG_V2_HEADER)) this.version = 2;
      else if (t.startsWith(IOLOG_V3_HEADER)) this.version = 3;
      else this.fail(lineNo, text, 'not a fio iolog header');
      return null;
    }
    if (text.length > IOLOG_LINE_MAX) this.fail(lineNo, text, `a line of ${text.length} characters, longer than fio's ${IOLOG_LINE_MAX}`);
    const words = text.trim().split(/\s+/);
    if (words.length === 1 && words[0] === '') return null;
    const v3 = this.version === 3;
    let w = 0;
    let ttime = 0;
    if (v3) {
      ttime = this.number(words[w++]!, lineNo, text, 'timestamp', Number.MAX_SAFE_INTEGER);
      // delay_since_ttime: none for the first line, after a timestamp of 0, backwards, or no_stall.
      const last = this.lastTtime;
      this.lastTtime = ttime;
      const raw = last === 0 || this.opts.noStall || ttime < last ? 0 : ttime - last;
      this.out.delayUs = this.opts.timeScale === 100 ? raw : Math.floor((raw * 100) / this.opts.timeScale);
      // fio checks for "wait" before it looks at anything else of a v3 line.
      if (words[w + 1] === 'wait') {
        this.v3WaitsIgnored++;
        return null;
      }
    } else this.out.delayUs = 0;
    const fields = words.length - w;
    if (fields !== 2 && fields !== 4) {
      this.fail(lineNo, text, `${fields} fields after the ${v3 ? 'timestamp' : 'start of the line'} (a file action has 2, an I/O action 4)`);
    }
    const name = words[w]!;
    const act = words[w + 1]!;
    if (name.length > IOLOG_NAME_MAX) this.fail(lineNo, text, `a file name of ${name.length} characters, longer than fio's ${IOLOG_NAME_MAX}`);
    const fname = this.opts.redirect ?? name;
    const a = this.out;
    a.line = lineNo;
    a.atMs = 0;
    if (fields === 2) {
      const op = FILE_ACTIONS.get(act);
      if (op === undefined) this.fail(lineNo, text, `${quote(act)} is not a file action (add, open, close)${IO_ACTIONS.has(act) ? `; ${act} needs an offset and a length` : ''}`);
      a.op = op;
      a.offset = 0;
      a.length = 0;
      if (op === A_ADD) {
        let i = this.index.get(fname);
        if (i === undefined) {
          i = this.files.length;
          this.files.push(fname);
          this.index.set(fname, i);
        }
        a.file = i;
        return a;
      }
      a.file = this.fileOf(fname, name, lineNo, text);
      return a;
    }
    const op = IO_ACTIONS.get(act);
    if (op === undefined) this.fail(lineNo, text, `${quote(act)} is not an I/O action (read, write, trim, sync, datasync${v3 ? '' : ', wait'})${FILE_ACTIONS.has(act) ? `; ${act} takes no offset or length` : ''}`);
    const offset = this.number(words[w + 2]!, lineNo, text, 'offset', Number.MAX_SAFE_INTEGER);
    const length = this.number(words[w + 3]!, lineNo, text, 'length', U32_MAX);
    if (op === A_WAIT) {
      if (this.opts.noStall) return null;
      a.op = A_WAIT;
      a.file = 0;
      a.offset = 0;
      a.length = 0;
      a.atMs = offset;
      return a;
    }
    const skip = this.opts.skip;
    if ((op === A_READ && skip.read) || (op === A_WRITE && skip.write) || (op === A_TRIM && skip.trim) || (op === A_SYNC && skip.sync)) {
      this.skipped++;
      return null;
    }
    if (length === 0 && (op === A_READ || op === A_WRITE || op === A_TRIM)) this.fail(lineNo, text, `a ${act} of 0 bytes`);
    a.op = op;
    a.file = this.fileOf(fname, name, lineNo, text);
    let off = this.opts.scale > 1 ? Math.floor(offset / this.opts.scale) : offset;
    if (this.opts.align > 0) off -= off % this.opts.align;
    a.offset = off;
    a.length = length;
    return a;
  }

  private fileOf(fname: string, name: string, lineNo: number, text: string): number {
    const i = this.index.get(fname);
    if (i === undefined) this.fail(lineNo, text, `file ${quote(name)} was never added (an "add" line must name it first)`);
    return i;
  }

  private number(word: string, lineNo: number, text: string, what: string, max: number): number {
    if (!/^\d+$/.test(word)) this.fail(lineNo, text, `the ${what} ${quote(word)} is not a whole number`);
    const n = Number(word);
    if (n > max) this.fail(lineNo, text, `the ${what} ${word} is above ${max === U32_MAX ? "fio's 32-bit limit" : 'the largest exact number'} (${max})`);
    return n;
  }
}

/** What one pass over a log found: enough to plan its replay (regions, buffers) and to report it. */
export interface IologSummary {
  path: string;
  version: 2 | 3;
  lines: number;
  /** File names in add order, and each one's extent (the end of its furthest read, write or trim). */
  files: string[];
  extents: number[];
  reads: number;
  writes: number;
  trims: number;
  syncs: number;
  datasyncs: number;
  waits: number;
  fileActions: number;
  v3WaitsIgnored: number;
  skipped: number;
  readBytes: number;
  writeBytes: number;
  trimBytes: number;
  /** Largest read or write, and the line it is on (0 when there is none). */
  maxLength: number;
  maxLengthLine: number;
  /** v3: the last timestamp (microseconds); v2: the last wait (milliseconds, as microseconds). */
  spanUs: number;
}

/** Bytes read from a log per readSync. */
const CHUNK_BYTES = 64 * 1024;

function openLog(path: string): number {
  const shown = printable(path, IOLOG_NAME_MAX);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    const reason = (err as Error).message.replace(/, \w+ '.*'$/, '');
    throw new InputError('EBADIOLOG', `cannot read iolog ${shown}: ${reason}`);
  }
  const st = fstatSync(fd);
  if (!st.isFile()) {
    closeSync(fd);
    throw new InputError('EBADIOLOG', `iolog ${shown}: is not a regular file (a device, FIFO, socket or directory); expected a fio iolog saved to a file`);
  }
  return fd;
}

/**
 * Read a whole log once, streaming (bounded memory: one chunk and one line at a time), checking
 * every line and summing what it holds. Throws InputError on a bad line or an empty log.
 */
export function scanIolog(path: string, opts: ReplayOptions = DEFAULT_REPLAY): IologSummary {
  const shown = printable(path, IOLOG_NAME_MAX);
  const parser = new IologParser(shown, opts);
  const s: IologSummary = {
    path, version: 2, lines: 0, files: parser.files, extents: [], reads: 0, writes: 0, trims: 0, syncs: 0, datasyncs: 0, waits: 0,
    fileActions: 0, v3WaitsIgnored: 0, skipped: 0, readBytes: 0, writeBytes: 0, trimBytes: 0, maxLength: 0, maxLengthLine: 0, spanUs: 0,
  };
  let ttimeLast = 0;
  const sink = {
    line: (text: string, lineNo: number) => {
      s.lines = lineNo;
      const a = parser.line(text, lineNo);
      if (parser.lastTtime > ttimeLast) ttimeLast = parser.lastTtime;
      if (a === null) return;
      switch (a.op) {
        case A_READ: case A_WRITE: case A_TRIM: {
          if (a.op === A_READ) { s.reads++; s.readBytes += a.length; }
          else if (a.op === A_WRITE) { s.writes++; s.writeBytes += a.length; }
          else { s.trims++; s.trimBytes += a.length; }
          if (a.op !== A_TRIM && a.length > s.maxLength) { s.maxLength = a.length; s.maxLengthLine = a.line; }
          const end = a.offset + a.length;
          if ((s.extents[a.file] ?? 0) < end) s.extents[a.file] = end;
          break;
        }
        case A_SYNC: s.syncs++; break;
        case A_DATASYNC: s.datasyncs++; break;
        case A_WAIT: s.waits++; if (a.atMs * 1000 > ttimeLast) ttimeLast = a.atMs * 1000; break;
        default: s.fileActions++;
      }
    },
    overlong: (lineNo: number, bytes: number) => {
      throw new InputError('EBADIOLOG', `iolog ${shown}:${lineNo}: a line of ${bytes} bytes, longer than fio's ${IOLOG_LINE_MAX}; expected ${parser.version === 3 ? V3_FORM : parser.version === 2 ? V2_FORM : HEADER_FORM}`);
    },
  };
  const splitter = new LineSplitter(sink, IOLOG_LINE_MAX + 2);
  const fd = openLog(path);
  try {
    const buf = Buffer.alloc(CHUNK_BYTES);
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0;) splitter.push(buf.subarray(0, n));
    splitter.end();
  } finally {
    closeSync(fd);
  }
  if (parser.version === 0) throw new InputError('EBADIOLOG', `iolog ${shown}: is empty; expected ${HEADER_FORM}`);
  s.version = parser.version;
  for (let i = 0; i < s.files.length; i++) s.extents[i] ??= 0;
  s.v3WaitsIgnored = parser.v3WaitsIgnored;
  s.skipped = parser.skipped;
  s.spanUs = ttimeLast;
  if (s.reads + s.writes + s.trims + s.syncs + s.datasyncs + s.waits === 0) {
    // fio: read_iolog returns false ("failed initializing iolog") when a log has no read, write, trim or wait.
    throw new InputError('EBADIOLOG', `iolog ${shown}: has no read, write, trim, sync or wait action to replay (fio: failed initializing iolog); expected ${s.version === 3 ? V3_FORM : V2_FORM}`);
  }
  return s;
}

/**
 * The vCPU's side: the actions of a log, read from the file a chunk at a time as they are needed,
 * so that a log of any length is replayed in bounded memory (at most BATCH parsed actions, one chunk
 * and one partial line). The log was checked by scanIolog before the run; a line that no longer
 * parses means the file changed under the run, and is thrown as an Error (the run fails, reported).
 */
export class IologReader {
  /** Parsed actions waiting, at most about BATCH (one chunk's worth more at the end of a refill). */
  private readonly queue: IologAction[] = [];
  private head = 0;
  private fd: number;
  private eof = false;
  private readonly buf = Buffer.alloc(16 * 1024);
  private readonly splitter: LineSplitter;
  private readonly parser: IologParser;
  static readonly BATCH = 256;

  constructor(readonly path: string, opts: ReplayOptions) {
    this.parser = new IologParser(printable(path, IOLOG_NAME_MAX), opts);
    this.splitter = new LineSplitter({
      line: (text, lineNo) => {
        let a: IologAction | null;
        try {
          a = this.parser.line(text, lineNo);
        } catch (e) {
          throw new Error(`the iolog changed during the run: ${(e as Error).message}`);
        }
        if (a !== null) this.queue.push({ ...a });
      },
      overlong: (lineNo) => { throw new Error(`the iolog changed during the run: ${this.path}:${lineNo} is longer than ${IOLOG_LINE_MAX} bytes`); },
    }, IOLOG_LINE_MAX + 2);
    this.fd = openSync(path, 'r');
  }

  /** The next action, or null at the end of the log. */
  peek(): IologAction | null {
    if (this.head === this.queue.length) this.refill();
    return this.head < this.queue.length ? this.queue[this.head]! : null;
  }

  shift(): void {
    this.head++;
  }

  private refill(): void {
    this.queue.length = 0;
    this.head = 0;
    while (!this.eof && this.queue.length < IologReader.BATCH) {
      const n = readSync(this.fd, this.buf, 0, this.buf.length, null);
      if (n === 0) {
        this.eof = true;
        this.splitter.end();
        this.close();
      } else this.splitter.push(this.buf.subarray(0, n));
    }
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

/** Bytes buffered per log before the writer hands them to the file. */
export const IOLOG_WRITE_BUFFER = 64 * 1024;

/**
 * write_iolog: a v3 log, as fio's init_iolog_write, log_file and log_io_u write it: the header,
 * "TIME FILE add" for each file, then "TIME FILE open", one "TIME FILE ACTION OFFSET LENGTH" per I/O
 * issued (failed ones too: fio logs at td_io_queue, before the engine) and "TIME FILE close". TIME is
 * whole microseconds since the job started. One writer per job clone (on the VM, on the main thread:
 * src/vm/iolog-write.ts); lines are buffered and written IOLOG_WRITE_BUFFER bytes at a time, and at close.
 */
export class IologWriter {
  private buf = '';
  private fd: number;

  /** Create (truncate) the log and write its header and add line: on the main thread, before the run, so a bad path is an input error. */
  static create(path: string, fileName: string): void {
    let fd: number;
    try {
      fd = openSync(path, 'w');
    } catch (err) {
      const reason = (err as Error).message.replace(/, \w+ '.*'$/, '');
      throw new InputError('EBADIOLOG', `cannot write iolog ${printable(path, IOLOG_NAME_MAX)} (write_iolog=): ${reason}`);
    }
    try {
      writeSync(fd, `${IOLOG_V3_HEADER}\n0 ${fileName} add\n`);
    } finally {
      closeSync(fd);
    }
  }

  /** Open a log made by create() for appending. */
  constructor(readonly path: string, readonly fileName: string) {
    this.fd = openSync(path, 'a');
  }

  /** A file action (A_OPEN, A_CLOSE) at `us`. */
  file(us: number, op: number): void {
    this.buf += `${Math.max(0, Math.round(us))} ${this.fileName} ${ACTION_NAMES[op]}\n`;
  }

  io(us: number, op: number, offset: number, length: number): void {
    this.buf += `${Math.max(0, Math.round(us))} ${this.fileName} ${ACTION_NAMES[op]} ${offset} ${length}\n`;
    if (this.buf.length >= IOLOG_WRITE_BUFFER) this.flush();
  }

  flush(): void {
    if (this.buf.length === 0) return;
    writeSync(this.fd, this.buf);
    this.buf = '';
  }

  close(): void {
    this.flush();
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
