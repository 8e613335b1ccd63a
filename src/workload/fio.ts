// fio job files: the part of fio's job-file format (axboe/fio HOWTO.rst, "Job file format" and "Job
// file parameters") that the emulator can run. A job file is parsed once, at the boundary, into
// fully-resolved FioJob objects, so the workload generators never see fio syntax.
//
// Semantics follow fio where it matters for the DMA path (which sizes, how many in flight, how fast,
// for how long), including its quirks where they change results (bssplit's remainder, an explicit 0%
// meaning "blank", comma-separated read,write values with a trailing comma meaning "reads only").
// Options fio has but we do not are listed in `ignored`; they never stop a run. Every bad value of
// an option we do support is an InputError naming file:line, the option and the accepted form.
//
// Departures from fio, and why:
// - Sizes go through util/units.ts parseSize, so "KiB" is 1024 bytes. fio's default kb_base=1024
//   is a compatibility mode in which "KiB" means 1000 and "k" means 1024; nobody writing "4KiB"
//   wants 4000 bytes, and one size parser for the whole project is worth more than that quirk.
//   kb_base=1000 (which would change what "k" means) is refused rather than silently ignored.
// - bs=4k:8k and bs=4k-8k (fio reads both as read,write) are refused: they look like ranges, and
//   bsrange is the option for ranges.
// - Bare boolean options are accepted for every boolean (fio accepts "direct" only as direct=1).
// - ${VAR} expansion, $ncpus-style keywords, (arithmetic), include directives and the rw=<mode>:<nr>
//   offset modifier are refused with a clear error rather than half-supported.
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync } from 'node:fs';
import { dirname, resolve as resolvePath } from 'node:path';
import { InputError } from '../errors.js';
import { DEFAULT_REPLAY, type ReplayOptions } from './iolog.js';
import { hasControlCharacters, printable, quote } from '../util/quote.js';
import { DURATION_FORM, SIZE_FORM, parseDuration, parseIntInRange, parsePercent, parseSize } from '../util/units.js';

/** fio's I/O patterns that the emulator runs ('rw' in a job file is an alias of 'readwrite'). */
export type FioRw = 'read' | 'write' | 'randread' | 'randwrite' | 'readwrite' | 'randrw';

/** Checksum algorithms fio's verify= accepts ('crc32c-intel' is stored as 'crc32c'). */
export type FioVerify =
  | 'none' | 'md5' | 'crc64' | 'crc32c' | 'crc32' | 'crc16' | 'crc7' | 'xxhash'
  | 'sha512' | 'sha256' | 'sha1' | 'sha3-224' | 'sha3-256' | 'sha3-384' | 'sha3-512' | 'meta' | 'null';

/** One weighted size of a bssplit. */
export interface FioBssplitEntry {
  readonly bytes: number;
  /** Share of I/Os, in percent; the entries of one direction add up to exactly 100. */
  readonly percent: number;
}

/** How one data direction picks the size of each I/O. */
export type FioBlockSize =
  /** Every I/O is `bytes` long (bs=). */
  | { readonly kind: 'fixed'; readonly bytes: number }
  /** Uniform in [minBytes, maxBytes] (bsrange=), see FioJob.blocksizeUnaligned for alignment. */
  | { readonly kind: 'range'; readonly minBytes: number; readonly maxBytes: number }
  /** Weighted sizes (bssplit=), in the order written. */
  | { readonly kind: 'split'; readonly entries: readonly FioBssplitEntry[] };

/** A value per data direction (fio's "read,write" pairs; trim values are parsed and dropped). */
export interface FioPerDirection<T> {
  readonly read: T;
  readonly write: T;
}

/** One job section, with [global] defaults applied and every option resolved to numbers. */
export interface FioJob {
  /** The section name, or the job's (or an earlier [global]'s) name= option. */
  readonly name: string;
  /** 1-based line of the job's [section] header. */
  readonly line: number;
  /** I/O pattern (rw=, readwrite=). Default 'read', as in fio. */
  readonly rw: FioRw;
  /** Percent of a mixed workload's I/Os that are reads, 0..100 (rwmixread=, or 100 - rwmixwrite=). Default 50. */
  readonly rwmixread: number;
  /** Block size per direction (bs=, bsrange=, bssplit=; the last one given wins). Default fixed 4096. */
  readonly bs: FioPerDirection<FioBlockSize>;
  /**
   * blocksize_unaligned / bs_unaligned. Default false: like fio, sizes drawn from a bsrange or bssplit
   * are rounded down to a multiple of that direction's smallest size. True: any size in the range.
   */
  readonly blocksizeUnaligned: boolean;
  /** I/Os kept in flight per job clone (iodepth=). Default 1. */
  readonly iodepth: number;
  /** Clones of this job (numjobs=). Default 1. */
  readonly numjobs: number;
  /** Region each clone works in, bytes (size=N). Default undefined: the consumer picks. */
  readonly sizeBytes: number | undefined;
  /** size=N%: the region as a percentage (1..100) of the target. Default undefined. Never set with sizeBytes. */
  readonly sizePercent: number | undefined;
  /** Bytes of I/O each clone does, when different from the region (io_size=, io_limit=). Default undefined. */
  readonly ioSizeBytes: number | undefined;
  /** Time limit, ms (runtime=, timeout=; a bare number is seconds; 0 means none). Default undefined: unbounded. */
  readonly runtimeMs: number | undefined;
  /** Keep looping over the region until runtime has passed (time_based). Default false. */
  readonly timeBased: boolean;
  /** Run this long before counting results, ms (ramp_time=; a bare number is seconds). Default 0. */
  readonly rampTimeMs: number;
  /** Bandwidth cap per direction, bytes/s (rate=; 0 means no cap). Default undefined: no cap. */
  readonly rateBytesPerSec: FioPerDirection<number | undefined>;
  /** I/O rate cap per direction, I/Os per second (rate_iops=; 0 means no cap). Default undefined: no cap. */
  readonly rateIops: FioPerDirection<number | undefined>;
  /** Pause after each I/O completes, microseconds (thinktime=; a bare number is microseconds). Default 0. */
  readonly thinktimeUs: number;
  /** Delay before the job starts, ms (startdelay=; a bare number is seconds). Default 0. */
  readonly startdelayMs: number;
  /** Upper end of startdelay=a-b (each clone picks uniformly in [startdelayMs, startdelayMaxMs]). Default = startdelayMs. */
  readonly startdelayMaxMs: number;
  /** Wait for all earlier jobs to finish before starting (stonewall, wait_for_previous). Default false. */
  readonly stonewall: boolean;
  /**
   * Report this job's clones, and the jobs of its reporting group next to it that also set it, as one
   * (group_reporting). Default false: fio reports every clone of numjobs= on its own.
   */
  readonly groupReporting: boolean;
  /** ioengine= as written. Default 'psync' (fio's default everywhere but Windows). */
  readonly ioengine: string;
  /** What the engine drives: block storage (psync, libaio, io_uring, ...) or a network device (net). */
  readonly engine: 'storage' | 'net';
  /** O_DIRECT, bypassing the page cache (direct=, or buffered= inverted). Default false. */
  readonly direct: boolean;
  /** Checksum written with and checked against each block (verify=). Default 'none'. */
  readonly verify: FioVerify;
  /** Read back and check what a write-only job wrote, after its writes (do_verify; only with verify=). Default true, as in fio. */
  readonly doVerify: boolean;
  /** CPUs the clones may run on, sorted and unique (cpus_allowed=0-3,8). Default undefined: any CPU. */
  readonly cpusAllowed: readonly number[] | undefined;
  /** filename= as written (fio separates several files with ':'). Default undefined: the consumer picks. */
  readonly filename: string | undefined;
  /**
   * Separate metadata bytes per I/O (md_per_io_size=, fio's option for NVMe namespaces with a
   * separate metadata buffer). Default 0: none. The storage driver then maps data and metadata, as
   * NVMe's request prep does, each with MAY_BLOCK when throttling is recommended.
   */
  readonly mdPerIoSizeBytes: number;
  /**
   * hipri: polled completions (HOWTO.rst, io_uring/io_uring_cmd/sg hipri: "Normal IO completions
   * generate interrupts to signal the completion of IO, polled completions do not. Hence they require
   * active reaping by the application"; pvsync2 hipri sets RWF_HIPRI). Only those engines take it.
   * Default false. Whether the I/O is really polled depends on the NVMe driver's poll queues
   * (src/vm/polling.ts).
   */
  readonly hipri: boolean;
  /**
   * read_iolog=: the logs to replay, one per clone in turn (fio's ':'-separated list), each resolved
   * against the job file's directory. Default undefined: the job runs its rw/bs pattern.
   */
  readonly readIolog: readonly string[] | undefined;
  /** write_iolog=: where the job's issued I/O is logged (v3), resolved like read_iolog. Default undefined. */
  readonly writeIolog: string | undefined;
  /** replay_no_stall, replay_time_scale, replay_redirect, replay_align, replay_scale, replay_skip. */
  readonly replay: ReplayOptions;
}

export interface FioJobFile {
  /** Job sections in file order. */
  readonly jobs: readonly FioJob[];
  /** Option names fio may know but the emulator does not use, sorted and unique, for one line of output. */
  readonly ignored: readonly string[];
}

// ---- Accepted values -----------------------------------------------------------------------------

const RW_MODES: ReadonlyMap<string, FioRw> = new Map<string, FioRw>([
  ['read', 'read'], ['write', 'write'], ['randread', 'randread'], ['randwrite', 'randwrite'],
  ['readwrite', 'readwrite'], ['rw', 'readwrite'], ['randrw', 'randrw'],
]);
const RW_FORM = 'one of read, write, randread, randwrite, readwrite (or rw), randrw';
const TRIM_MODES = new Set(['trim', 'randtrim', 'trimwrite', 'randtrimwrite']);

/** Engines that move data between memory and a block device: every one of them DMAs through swiotlb. */
const STORAGE_ENGINES: readonly string[] = [
  'psync', 'sync', 'vsync', 'pvsync', 'pvsync2', 'libaio', 'io_uring', 'io_uring_cmd', 'posixaio',
  'solarisaio', 'windowsaio', 'mmap', 'splice', 'sg',
];
const NET_ENGINES: readonly string[] = ['net', 'netsplice'];
/** The engines of the above whose options include hipri (HOWTO.rst, "I/O engine specific parameters"). */
export const HIPRI_ENGINES: readonly string[] = ['io_uring', 'io_uring_cmd', 'pvsync2', 'sg'];
const ENGINE_FORM = `one of ${STORAGE_ENGINES.join(', ')} (storage) or ${NET_ENGINES.join(', ')} (network)`;

const VERIFY_NAMES: ReadonlyMap<string, FioVerify> = new Map<string, FioVerify>([
  ['0', 'none'], ['none', 'none'], ['md5', 'md5'], ['crc64', 'crc64'], ['crc32c', 'crc32c'],
  ['crc32c-intel', 'crc32c'], ['crc32', 'crc32'], ['crc16', 'crc16'], ['crc7', 'crc7'], ['xxhash', 'xxhash'],
  ['sha512', 'sha512'], ['sha256', 'sha256'], ['sha1', 'sha1'], ['sha3-224', 'sha3-224'], ['sha3-256', 'sha3-256'],
  ['sha3-384', 'sha3-384'], ['sha3-512', 'sha3-512'], ['meta', 'meta'], ['null', 'null'],
]);
const VERIFY_FORM = `one of ${[...VERIFY_NAMES.keys()].join(', ')}`;

const DEFAULT_BS_BYTES = 4096;
const MAX_IODEPTH = 65_536;
/** fio's own limit on jobs (REAL_MAX_JOBS). */
const MAX_NUMJOBS = 4096;
/** fio's FIO_MAX_CPUS on Linux (glibc's CPU_SETSIZE). */
const MAX_CPU = 1023;
/** fio's BSSPLIT_MAX: weighted sizes per direction. */
const BSSPLIT_MAX = 64;
const MAX_RATE_IOPS = 1_000_000_000;

const BOOL_FORM = '1 or 0, or the bare option name for 1';
const PER_DIRECTION_NOTE = '; a second comma-separated value is for writes (e.g. 4k,64k)';
const BS_FORM = `a size: ${SIZE_FORM}${PER_DIRECTION_NOTE}`;
const BSRANGE_FORM = 'min-max (or min:max) sizes, e.g. 1k-4k; a second range after a comma is for writes (1k-4k,8k-16k)';
const BSSPLIT_FORM = 'size/percent entries separated by ":", e.g. 4k/10:64k/50:32k/40 (a blank percent shares what is left); a second list after a comma is for writes';
const RATE_FORM = `a rate in bytes per second: ${SIZE_FORM}${PER_DIRECTION_NOTE}; 0 means no cap`;
const RATE_IOPS_FORM = `whole numbers of I/Os per second from 0 to ${MAX_RATE_IOPS}${PER_DIRECTION_NOTE}; 0 means no cap`;
const CPUS_FORM = `CPU numbers 0..${MAX_CPU} and ranges separated by commas, e.g. 0-3,8,10-11`;
const JOBFILE_FORM = '[global] or [jobname] section headers, option=value lines, bare boolean options, and comments starting with ; or #';

// ---- Parsing state -------------------------------------------------------------------------------

/** Options as they accumulate in a [global] section or a job: a mutable FioJob without derived fields. */
interface Draft {
  name: string | undefined;
  rw: FioRw;
  rwmixread: number;
  bs: { read: FioBlockSize; write: FioBlockSize };
  blocksizeUnaligned: boolean;
  iodepth: number;
  numjobs: number;
  sizeBytes: number | undefined;
  sizePercent: number | undefined;
  ioSizeBytes: number | undefined;
  runtimeMs: number | undefined;
  timeBased: boolean;
  rampTimeMs: number;
  rateBytesPerSec: { read: number | undefined; write: number | undefined };
  rateIops: { read: number | undefined; write: number | undefined };
  thinktimeUs: number;
  startdelayMs: number;
  startdelayMaxMs: number;
  stonewall: boolean;
  groupReporting: boolean;
  ioengine: string;
  direct: boolean;
  verify: FioVerify;
  doVerify: boolean;
  cpusAllowed: number[] | undefined;
  filename: string | undefined;
  mdPerIoSizeBytes: number;
  hipri: boolean;
  /** Where hipri was set, for the message when the job's engine does not take it. */
  hipriWhere: string | undefined;
  readIolog: string[] | undefined;
  writeIolog: string | undefined;
  replay: { -readonly [K in keyof ReplayOptions]: ReplayOptions[K] };
}

function defaultDraft(): Draft {
  const bs: FioBlockSize = { kind: 'fixed', bytes: DEFAULT_BS_BYTES };
  return {
    name: undefined, rw: 'read', rwmixread: 50, bs: { read: bs, write: bs }, blocksizeUnaligned: false,
    iodepth: 1, numjobs: 1, sizeBytes: undefined, sizePercent: undefined, ioSizeBytes: undefined,
    runtimeMs: undefined, timeBased: false, rampTimeMs: 0,
    rateBytesPerSec: { read: undefined, write: undefined }, rateIops: { read: undefined, write: undefined },
    thinktimeUs: 0, startdelayMs: 0, startdelayMaxMs: 0, stonewall: false, groupReporting: false, ioengine: 'psync', direct: false,
    verify: 'none', doVerify: true, cpusAllowed: undefined, filename: undefined, mdPerIoSizeBytes: 0,
    hipri: false, hipriWhere: undefined,
    readIolog: undefined, writeIolog: undefined, replay: { ...DEFAULT_REPLAY, skip: { ...DEFAULT_REPLAY.skip } },
  };
}

/** One option line, with what every message about it starts with: "file:line: name=value". */
interface OptionLine {
  readonly name: string;
  readonly value: string | undefined;
  readonly where: string;
  /** The job file's directory: relative paths in values (read_iolog, write_iolog) are resolved against it. */
  readonly dir: string;
}

function fail(o: OptionLine, problem: string, form: string): never {
  throw new InputError('EFIOJOB', `${o.where}: ${problem}; expected ${form}`);
}

function needValue(o: OptionLine, form: string): string {
  if (o.value === undefined || o.value === '') fail(o, 'needs a value', form);
  return o.value;
}

function parseBool(o: OptionLine): boolean {
  if (o.value === undefined || o.value === '1') return true;
  if (o.value === '0') return false;
  return fail(o, `${quote(o.value)} is not a boolean`, BOOL_FORM);
}

/** A size in bytes that must be at least 1. */
function positiveSize(o: OptionLine, text: string, form: string): number {
  if (/^\s*-/.test(text)) fail(o, `${quote(text)} is negative`, form);
  const bytes = parseSize(text, o.where);
  if (bytes === 0) fail(o, 'a size of zero is not allowed', form);
  return bytes;
}

/**
 * Split "read,write[,trim]" the way fio does (HOWTO.rst, bs=): a value applies to its own direction
 * and, when it is the last one written, to the directions after it; an empty value leaves its
 * direction unchanged. So "8k" is all three, "8k,32k" is 8k reads and 32k writes, "500k," is reads
 * only and ",8k" is writes only. The trim value is returned so that it is validated, then dropped.
 */
function splitPerDirection(o: OptionLine, value: string, form: string): [string | undefined, string | undefined, string | undefined] {
  const parts = value.split(',').map((p) => p.trim());
  if (parts.length > 3) fail(o, `${parts.length} comma-separated values (read, write, trim at most)`, form);
  const slots: [string | undefined, string | undefined, string | undefined] = [undefined, undefined, undefined];
  parts.forEach((part, i) => {
    if (part === '') return;
    for (let d = i; d < (i === parts.length - 1 ? 3 : i + 1); d++) slots[d] = part;
  });
  if (slots.every((s) => s === undefined)) fail(o, 'needs a value', form);
  return slots;
}

/** A direction's new value; `undefined` in its place means the option leaves that direction alone. */
type DirectionValue<T> = { readonly value: T } | undefined;

/** Apply `parse` to each direction that the value sets; returns [read, write]. */
function perDirection<T>(o: OptionLine, form: string, parse: (text: string) => T, value = needValue(o, form)): [DirectionValue<T>, DirectionValue<T>] {
  const [r, w, t] = splitPerDirection(o, value, form);
  if (t !== undefined) parse(t);
  return [r === undefined ? undefined : { value: parse(r) }, w === undefined ? undefined : { value: parse(w) }];
}

function parseBsFixed(o: OptionLine, text: string): FioBlockSize {
  if (!/^\s*-/.test(text) && /[:-]/.test(text)) fail(o, `${quote(text)} looks like a range`, `${BS_FORM} (use bsrange= for a range)`);
  return { kind: 'fixed', bytes: positiveSize(o, text, BS_FORM) };
}

function parseBsRange(o: OptionLine, text: string): FioBlockSize {
  const m = /^([^:-]+)[:-]([^:-]+)$/.exec(text);
  if (!m) fail(o, `${quote(text)} is not a range`, BSRANGE_FORM);
  const a = positiveSize(o, m[1]!, BSRANGE_FORM);
  const b = positiveSize(o, m[2]!, BSRANGE_FORM);
  // fio swaps a range written high-low.
  return { kind: 'range', minBytes: Math.min(a, b), maxBytes: Math.max(a, b) };
}

/**
 * One direction of bssplit, resolved as fio resolves it (options.c bssplit_ddir, io_u.c
 * get_next_buflen): a blank or 0 percentage is "blank"; explicit ones may add up to at most 100;
 * the blanks share what is left equally, in whole percents; whatever is still missing to reach 100
 * (the blanks' rounding, or explicit percentages adding up to less than 100) goes to the entry with
 * the largest percentage, because fio's lookup walks the entries sorted by percentage and falls
 * through to the last one. Among equal largest percentages the last one written gets it.
 */
function parseBssplit(o: OptionLine, text: string): FioBlockSize {
  const items = text.split(':').map((s) => s.trim());
  if (items.length > 1 && items.at(-1) === '') items.pop();
  if (items.length > BSSPLIT_MAX) fail(o, `${items.length} entries (fio allows ${BSSPLIT_MAX})`, BSSPLIT_FORM);
  const parsed = items.map((item) => {
    if (item === '') fail(o, 'empty entry', BSSPLIT_FORM);
    const slash = item.indexOf('/');
    const sizeText = slash < 0 ? item : item.slice(0, slash);
    const percentText = slash < 0 ? '' : item.slice(slash + 1).trim().replace(/%$/, '');
    const bytes = positiveSize(o, sizeText, BSSPLIT_FORM);
    if (percentText === '') return { bytes, percent: undefined };
    if (!/^\d+$/.test(percentText)) fail(o, `${quote(item)} has a percentage that is not a whole number`, BSSPLIT_FORM);
    const percent = Number(percentText);
    return { bytes, percent: percent === 0 ? undefined : percent };
  });
  const given = parsed.reduce((sum, e) => sum + (e.percent ?? 0), 0);
  if (given > 100) fail(o, `percentages add up to ${given}%, more than 100%`, BSSPLIT_FORM);
  const blanks = parsed.filter((e) => e.percent === undefined).length;
  const share = blanks === 0 ? 0 : Math.floor((100 - given) / blanks);
  const entries = parsed.map((e) => ({ bytes: e.bytes, percent: e.percent ?? share }));
  const missing = 100 - entries.reduce((sum, e) => sum + e.percent, 0);
  if (missing > 0) {
    let largest = 0;
    entries.forEach((e, i) => { if (e.percent >= entries[largest]!.percent) largest = i; });
    entries[largest]!.percent += missing;
  }
  return { kind: 'split', entries };
}

function parseRw(o: OptionLine): FioRw {
  const value = needValue(o, RW_FORM);
  const base = value.split(':')[0]!.trim();
  const rw = RW_MODES.get(base);
  if (rw !== undefined && base !== value) {
    fail(o, `the ":<nr>" offset modifier is not supported`, `${RW_FORM}, without a suffix`);
  }
  if (rw !== undefined) return rw;
  if (TRIM_MODES.has(base)) fail(o, `trim workloads are not supported (no data moves, so nothing is bounced)`, RW_FORM);
  return fail(o, `unknown I/O pattern ${quote(value)}`, RW_FORM);
}

function parseCpus(o: OptionLine): number[] {
  const value = needValue(o, CPUS_FORM);
  const cpus = new Set<number>();
  for (const item of value.split(',').map((s) => s.trim())) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(item);
    if (!m) fail(o, `${quote(item)} is not a CPU number or range`, CPUS_FORM);
    const lo = parseIntInRange(m[1]!, o.where, 0, MAX_CPU);
    const hi = m[2] === undefined ? lo : parseIntInRange(m[2], o.where, 0, MAX_CPU);
    if (hi < lo) fail(o, `range ${quote(item)} runs backwards`, CPUS_FORM);
    for (let cpu = lo; cpu <= hi; cpu++) cpus.add(cpu);
  }
  return [...cpus].sort((a, b) => a - b);
}

function parseRate(o: OptionLine, text: string): number | undefined {
  if (/^\s*-/.test(text)) fail(o, `${quote(text)} is negative`, RATE_FORM);
  const bytesPerSec = parseSize(text, o.where);
  return bytesPerSec === 0 ? undefined : bytesPerSec;
}

function setPerDirection<T>(target: { read: T; write: T }, [r, w]: [DirectionValue<T>, DirectionValue<T>]): void {
  if (r !== undefined) target.read = r.value;
  if (w !== undefined) target.write = w.value;
}

function parseStartdelay(d: Draft, o: OptionLine): void {
  const value = needValue(o, `${DURATION_FORM}, or a range of two such durations (1-5)`);
  const m = /^([^:-]+)[:-]([^:-]+)$/.exec(value);
  const a = parseDuration(m ? m[1]! : value, o.where);
  const b = m ? parseDuration(m[2]!, o.where) : a;
  d.startdelayMs = Math.min(a, b);
  d.startdelayMaxMs = Math.max(a, b);
}

const IOLOG_PATH_FORM = 'a file name, relative to the job file\'s directory or absolute (several for read_iolog separated by ":", "\\:" for a colon in a name)';

/** fio's ':'-separated file list (filename=, read_iolog=), with "\\:" for a ':' inside a name. */
function splitNames(o: OptionLine, value: string): string[] {
  const names: string[] = [];
  let cur = '';
  for (let i = 0; i < value.length; i++) {
    if (value[i] === '\\' && value[i + 1] === ':') { cur += ':'; i++; }
    else if (value[i] === ':') { names.push(cur); cur = ''; }
    else cur += value[i];
  }
  names.push(cur);
  if (names.some((n) => n.trim() === '')) fail(o, 'an empty file name in the list', IOLOG_PATH_FORM);
  return names.map((n) => n.trim());
}

function iologPath(o: OptionLine, name: string): string {
  if (name === '-') fail(o, 'reading or writing an iolog on stdin/stdout is not supported', `${IOLOG_PATH_FORM}; save the log to a file`);
  return resolvePath(o.dir, name);
}

const REPLAY_SKIP_FORM = 'a comma-separated list of read, write, trim, sync';

const THINKTIME_FORM = DURATION_FORM.replace('seconds when none', 'microseconds when none');

/** fio reads a bare thinktime in microseconds; whole microseconds are fio's resolution. */
function parseThinktime(o: OptionLine): number {
  return Math.round(parseDuration(needValue(o, THINKTIME_FORM), o.where, 0.001, THINKTIME_FORM) * 1000);
}

type Handler = (d: Draft, o: OptionLine) => void;

/**
 * Every option the emulator uses, under fio's names and documented aliases. Anything else in a job
 * file goes to FioJobFile.ignored.
 */
const SUPPORTED: ReadonlyArray<readonly [names: readonly string[], handler: Handler]> = [
  [['name'], (d, o) => {
    const value = needValue(o, 'a job name');
    if (hasControlCharacters(value)) fail(o, 'the name has a control or non-printable character', 'a job name of printable characters');
    d.name = value;
  }],
  [['rw', 'readwrite'], (d, o) => { d.rw = parseRw(o); }],
  [['rwmixread'], (d, o) => { d.rwmixread = parseIntInRange(needValue(o, 'a percentage from 0 to 100'), o.where, 0, 100); }],
  [['rwmixwrite'], (d, o) => { d.rwmixread = 100 - parseIntInRange(needValue(o, 'a percentage from 0 to 100'), o.where, 0, 100); }],
  [['bs', 'blocksize'], (d, o) => setPerDirection(d.bs, perDirection(o, BS_FORM, (t) => parseBsFixed(o, t)))],
  [['bsrange', 'blocksize_range'], (d, o) => {
    const value = needValue(o, BSRANGE_FORM);
    // HOWTO.rst (irange): the two sets may also be separated by '/'.
    const sets = value.includes(',') ? value : value.replaceAll('/', ',');
    setPerDirection(d.bs, perDirection(o, BSRANGE_FORM, (t) => parseBsRange(o, t), sets));
  }],
  [['bssplit'], (d, o) => setPerDirection(d.bs, perDirection(o, BSSPLIT_FORM, (t) => parseBssplit(o, t)))],
  [['bs_unaligned', 'blocksize_unaligned'], (d, o) => { d.blocksizeUnaligned = parseBool(o); }],
  [['iodepth'], (d, o) => { d.iodepth = parseIntInRange(needValue(o, `a whole number from 1 to ${MAX_IODEPTH}`), o.where, 1, MAX_IODEPTH); }],
  [['numjobs'], (d, o) => { d.numjobs = parseIntInRange(needValue(o, `a whole number from 1 to ${MAX_NUMJOBS}`), o.where, 1, MAX_NUMJOBS); }],
  [['size'], (d, o) => {
    const value = needValue(o, `${SIZE_FORM}, or a percentage such as 20%`);
    if (value.trim().endsWith('%')) {
      d.sizePercent = parsePercent(value, o.where);
      d.sizeBytes = undefined;
    } else {
      d.sizeBytes = positiveSize(o, value, `${SIZE_FORM}, or a percentage such as 20%`);
      d.sizePercent = undefined;
    }
  }],
  [['io_size', 'io_limit'], (d, o) => { d.ioSizeBytes = positiveSize(o, needValue(o, SIZE_FORM), SIZE_FORM); }],
  [['runtime', 'timeout'], (d, o) => {
    const ms = parseDuration(needValue(o, DURATION_FORM), o.where);
    d.runtimeMs = ms === 0 ? undefined : ms;
  }],
  [['time_based'], (d, o) => { d.timeBased = parseBool(o); }],
  [['ramp_time'], (d, o) => { d.rampTimeMs = parseDuration(needValue(o, DURATION_FORM), o.where); }],
  [['rate'], (d, o) => setPerDirection(d.rateBytesPerSec, perDirection(o, RATE_FORM, (t) => parseRate(o, t)))],
  [['rate_iops'], (d, o) => setPerDirection(d.rateIops, perDirection(o, RATE_IOPS_FORM, (t) => {
    const iops = parseIntInRange(t, o.where, 0, MAX_RATE_IOPS);
    return iops === 0 ? undefined : iops;
  }))],
  [['thinktime'], (d, o) => { d.thinktimeUs = parseThinktime(o); }],
  [['startdelay'], parseStartdelay],
  [['stonewall', 'wait_for_previous'], (d, o) => { d.stonewall = parseBool(o); }],
  [['group_reporting'], (d, o) => { d.groupReporting = parseBool(o); }],
  [['ioengine'], (d, o) => {
    const value = needValue(o, ENGINE_FORM);
    if (!STORAGE_ENGINES.includes(value) && !NET_ENGINES.includes(value)) fail(o, `engine ${quote(value)} is not supported`, ENGINE_FORM);
    d.ioengine = value;
  }],
  [['direct'], (d, o) => { d.direct = parseBool(o); }],
  [['buffered'], (d, o) => { d.direct = !parseBool(o); }],
  [['verify'], (d, o) => {
    const value = needValue(o, VERIFY_FORM);
    const verify = VERIFY_NAMES.get(value);
    if (verify === undefined) {
      const why = value === 'pattern' ? 'verify=pattern needs verify_pattern, which is not supported' : `unknown verify method ${quote(value)}`;
      fail(o, why, VERIFY_FORM);
    }
    d.verify = verify;
  }],
  [['do_verify'], (d, o) => { d.doVerify = parseBool(o); }],
  [['cpus_allowed'], (d, o) => { d.cpusAllowed = parseCpus(o); }],
  [['filename'], (d, o) => { d.filename = needValue(o, 'a file or device name'); }],
  [['md_per_io_size'], (d, o) => { d.mdPerIoSizeBytes = positiveSize(o, needValue(o, SIZE_FORM), SIZE_FORM); }],
  [['hipri'], (d, o) => {
    d.hipri = parseBool(o);
    d.hipriWhere = o.where;
  }],
  [['read_iolog'], (d, o) => { d.readIolog = splitNames(o, needValue(o, IOLOG_PATH_FORM)).map((n) => iologPath(o, n)); }],
  [['write_iolog'], (d, o) => { d.writeIolog = iologPath(o, needValue(o, IOLOG_PATH_FORM)); }],
  // fio reads a log whole unless read_iolog_chunked; the emulator always streams it, so both are one.
  [['read_iolog_chunked'], (_d, o) => { parseBool(o); }],
  [['replay_no_stall'], (d, o) => { d.replay.noStall = parseBool(o); }],
  [['replay_time_scale'], (d, o) => { d.replay.timeScale = parseIntInRange(needValue(o, 'a percentage from 1 to 1000000'), o.where, 1, 1_000_000); }],
  [['replay_redirect'], (d, o) => {
    const value = needValue(o, 'a file or device name');
    if (/\s/.test(value)) fail(o, 'a name with white space cannot appear in an iolog line', 'a file or device name without spaces');
    d.replay.redirect = value;
  }],
  [['replay_align'], (d, o) => {
    const n = parseSize(needValue(o, 'a power of 2 in bytes, e.g. 4k'), o.where);
    if (n !== 0 && (n & (n - 1)) !== 0) fail(o, `${n} is not a power of 2`, 'a power of 2 in bytes, e.g. 4k');
    d.replay.align = n;
  }],
  [['replay_scale'], (d, o) => { d.replay.scale = parseIntInRange(needValue(o, 'a whole number from 1'), o.where, 1, Number.MAX_SAFE_INTEGER); }],
  [['replay_skip'], (d, o) => {
    const skip = { read: false, write: false, trim: false, sync: false };
    for (const item of needValue(o, REPLAY_SKIP_FORM).split(',').map((x) => x.trim())) {
      if (item !== 'read' && item !== 'write' && item !== 'trim' && item !== 'sync') fail(o, `${quote(item)} is not an I/O type`, REPLAY_SKIP_FORM);
      skip[item] = true;
    }
    d.replay.skip = skip;
  }],
  [['kb_base'], (_d, o) => {
    if (needValue(o, '1024') !== '1024') fail(o, 'only binary units are supported (k = 1024)', '1024');
  }],
];

const HANDLERS: ReadonlyMap<string, Handler> = new Map(SUPPORTED.flatMap(([names, h]) => names.map((n) => [n, h] as const)));

/** Every option name the parser uses, aliases included, sorted. */
export const FIO_SUPPORTED_OPTIONS: readonly string[] = [...HANDLERS.keys()].sort();

/** Characters of a job file's name kept in messages (a path; longer ones end in "...(N bytes)"). */
const FILE_NAME_MAX = 256;
/** Option names listed by formatIgnored before "and N more". */
const IGNORED_LISTED = 16;

/**
 * The one warning line for the options a job file set that the emulator does not use (null when
 * there are none): each name escaped and capped as any user text, at most IGNORED_LISTED of them.
 */
export function formatIgnored(ignored: readonly string[]): string | null {
  if (ignored.length === 0) return null;
  const listed = ignored.slice(0, IGNORED_LISTED).map((n) => printable(n)).join(', ');
  const more = ignored.length > IGNORED_LISTED ? `, and ${ignored.length - IGNORED_LISTED} more` : '';
  return `ignoring fio options: ${listed}${more}`;
}

/** fio's option names: letters, digits, '_' and '-' (hugepage-size), starting with a letter or '_'. */
const OPTION_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/**
 * The I/O log options against the rest of the job (where fio's own rules leave a run undefined or
 * silently different, the job is refused with the reason).
 */
function checkIologOptions(d: Draft, where: string): void {
  const refuse = (problem: string, form: string): never => {
    throw new InputError('EFIOJOB', `${where}: ${problem}; ${form}`);
  };
  const net = NET_ENGINES.includes(d.ioengine);
  if (d.readIolog !== undefined) {
    if (net) refuse(`read_iolog with ioengine=${d.ioengine}: an iolog is block I/O (offsets on files)`, 'use a storage engine (libaio, io_uring, psync, ...)');
    if (d.writeIolog !== undefined) refuse('read_iolog and write_iolog together: fio writes no log while it replays one (init_iolog)', 'drop write_iolog');
    if (d.verify !== 'none') refuse('verify with read_iolog is not supported: the log, not the job, decides what is written where', 'drop verify');
    if (d.timeBased) refuse('time_based with read_iolog is not supported: the replay ends with the log', 'drop time_based (runtime= still caps the replay)');
  }
  if (d.writeIolog !== undefined) {
    if (net) refuse(`write_iolog with ioengine=${d.ioengine}: the NIC has no offsets to log`, 'use write_iolog on storage jobs');
    if (d.numjobs > 1) refuse(`write_iolog with numjobs=${d.numjobs}: fio appends every clone to the one file, interspersed (HOWTO.rst: "specify a separate file for each job")`, 'use numjobs=1, or one job section per log');
  }
}

function finishJob(d: Draft, header: string, line: number, file: string): FioJob {
  checkIologOptions(d, `${file}:${line}: job ${printable(d.name ?? header)}`);
  // An engine option given to another engine: fio refuses the job file ("Bad option"). Checked when
  // the job closes, as ioengine= may come after hipri in the section or in [global].
  if (d.hipri && !HIPRI_ENGINES.includes(d.ioengine)) {
    throw new InputError('EFIOJOB', `${d.hipriWhere}: hipri is an option of the ${HIPRI_ENGINES.join(', ')} engines, and job ${printable(d.name ?? header)} uses ioengine=${d.ioengine}; expected ioengine= one of ${HIPRI_ENGINES.join(', ')} with hipri`);
  }
  return {
    name: d.name ?? header,
    line,
    rw: d.rw,
    rwmixread: d.rwmixread,
    bs: d.bs,
    blocksizeUnaligned: d.blocksizeUnaligned,
    iodepth: d.iodepth,
    numjobs: d.numjobs,
    sizeBytes: d.sizeBytes,
    sizePercent: d.sizePercent,
    ioSizeBytes: d.ioSizeBytes,
    runtimeMs: d.runtimeMs,
    timeBased: d.timeBased,
    rampTimeMs: d.rampTimeMs,
    rateBytesPerSec: d.rateBytesPerSec,
    rateIops: d.rateIops,
    thinktimeUs: d.thinktimeUs,
    startdelayMs: d.startdelayMs,
    startdelayMaxMs: d.startdelayMaxMs,
    stonewall: d.stonewall,
    groupReporting: d.groupReporting,
    ioengine: d.ioengine,
    engine: NET_ENGINES.includes(d.ioengine) ? 'net' : 'storage',
    direct: d.direct,
    verify: d.verify,
    doVerify: d.doVerify,
    cpusAllowed: d.cpusAllowed,
    filename: d.filename,
    mdPerIoSizeBytes: d.mdPerIoSizeBytes,
    hipri: d.hipri,
    readIolog: d.readIolog,
    writeIolog: d.writeIolog,
    replay: d.replay,
  };
}

/**
 * Parse a fio job file. `fileName` is only used in messages. Throws InputError (exit status 2) on
 * the first bad line, with a one-line message "file:line: option=value: problem; expected form".
 */
export function parseFioJobFile(text: string, fileName: string): FioJobFile {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const file = printable(fileName, FILE_NAME_MAX);
  const dir = dirname(fileName);
  // fio semantics: a [global] section changes the defaults of the jobs after it, and only those.
  const globals = defaultDraft();
  let section: { draft: Draft; header: string; line: number } | 'global' | undefined;
  const jobs: FioJob[] = [];
  const ignored = new Set<string>();
  const closeSection = (): void => {
    if (section !== undefined && section !== 'global') jobs.push(finishJob(section.draft, section.header, section.line, file));
  };

  lines.forEach((raw, index) => {
    const line = index + 1;
    // fio discards from the first ';' or '#' to the end of the line (parse.c strip_blank_end).
    const content = raw.replace(/[;#].*$/, '').trim();
    if (content === '') return;
    const malformed = (problem: string): never => {
      throw new InputError('EFIOJOB', `${file}:${line}: ${quote(content)}: ${problem}; expected ${JOBFILE_FORM}`);
    };

    if (content.startsWith('[')) {
      const m = /^\[([^[\]]*)\]$/.exec(content);
      const header = m?.[1]!.trim();
      if (!header) return malformed('not a section header');
      if (hasControlCharacters(header)) return malformed('the section name has a control or non-printable character');
      closeSection();
      section = header === 'global' ? 'global' : { draft: structuredClone(globals), header, line };
      return;
    }
    if (/^include\s/.test(content)) return malformed('include directives are not supported');

    const eq = content.indexOf('=');
    const name = (eq < 0 ? content : content.slice(0, eq)).trim();
    const value = eq < 0 ? undefined : content.slice(eq + 1).trim();
    if (!OPTION_NAME.test(name)) return malformed('not an option');
    const o: OptionLine = { name, value, dir, where: `${file}:${line}: ${value === undefined ? printable(name) : `${printable(name)}=${printable(value)}`}` };
    if (section === undefined) fail(o, 'option outside of any section', 'a [global] or [jobname] header before the first option');

    const handler = HANDLERS.get(name);
    if (handler === undefined) {
      ignored.add(name);
      return;
    }
    if (value !== undefined && /\$\{|\$(pagesize|mb_memory|ncpus)\b/.test(value)) {
      fail(o, 'environment variables and $keywords are not expanded', 'the value written out');
    }
    if (value !== undefined && value.startsWith('(')) fail(o, 'arithmetic expressions are not supported', 'the value written out');
    handler(section === 'global' ? globals : section.draft, o);
  });
  closeSection();

  if (jobs.length === 0) {
    const lastLine = Math.max(1, lines.length - (lines.at(-1) === '' ? 1 : 0));
    throw new InputError('EFIOJOB', `${file}:${lastLine}: no job sections; expected at least one [jobname] section (a [global] section alone defines no job)`);
  }
  return { jobs, ignored: [...ignored].sort() };
}

/**
 * Largest job file read: 1 MiB. fio's own job files are a few KiB (its largest example, under 10 KiB);
 * a file above this is not a job file, and reading one whole (`--job /dev/zero`) never ends.
 */
export const MAX_JOB_FILE_BYTES = 1024 * 1024;

/**
 * Read and parse a job file. An unreadable file, one that is not a regular file (a device, a FIFO,
 * a directory) or one above MAX_JOB_FILE_BYTES is an InputError naming it, decided before reading
 * its contents. The size is checked on the open descriptor and the read stops one byte past the
 * limit, so a file that grows between the check and the read is still refused.
 */
export function readFioJobFile(path: string): FioJobFile {
  const shown = printable(path, FILE_NAME_MAX);
  const refuse = (problem: string): never => {
    throw new InputError('EJOBFILE', `job file ${shown}: ${problem}; expected a regular file of at most ${MAX_JOB_FILE_BYTES} bytes (1 MiB) in fio's job-file format`);
  };
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever before fstat can refuse it.
    fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch (err) {
    // Node's message repeats the path ("ENOENT: no such file or directory, open 'x'"); keep the reason.
    const reason = (err as Error).message.replace(/, \w+ '.*'$/, '');
    throw new InputError('EJOBFILE', `cannot read job file ${shown}: ${reason}`);
  }
  let text: string;
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) refuse('is a directory');
    if (!st.isFile()) refuse('is not a regular file (a device, FIFO or socket: save a piped job to a file first)');
    if (st.size > MAX_JOB_FILE_BYTES) refuse(`is ${st.size} bytes`);
    const buf = Buffer.alloc(MAX_JOB_FILE_BYTES + 1);
    let got = 0;
    for (let n; got < buf.length && (n = readSync(fd, buf, got, buf.length - got, null)) > 0;) got += n;
    if (got > MAX_JOB_FILE_BYTES) refuse(`grew above ${MAX_JOB_FILE_BYTES} bytes while being read`);
    text = buf.toString('utf8', 0, got);
  } finally {
    closeSync(fd);
  }
  return parseFioJobFile(text, path);
}
