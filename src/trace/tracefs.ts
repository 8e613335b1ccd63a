// Streaming parser of kernel DMA trace text: what `cat /sys/kernel/tracing/trace` and
// `trace-cmd report` print for the `dma` and `swiotlb` trace systems.
//
// Formats follow the TP_printk strings of include/trace/events/dma.h and
// include/trace/events/swiotlb.h, in two eras:
//   current: dma_map_phys / dma_unmap_phys, dma_map_sg with "nents=%d/%d ents=%d/%d%s"
//   v6.12:   dma_map_page, dma_map_resource / dma_unmap_page, dma_unmap_resource, and dma_map_sg
//            without the nents/ents counts.
// Addresses (%llx, and the u64 elements of __print_array) are kept exact as bigint: a dma_addr or
// phys_addr may exceed 2^53. Sizes (%zu, and the unsigned int elements of sizes=) are numbers.
//
// Memory: lines come from the bounded LineSplitter (src/analyze/lines.ts), one chunk at a time;
// nothing is kept across lines except counters, so a trace of any length reads in bounded memory.

import { InputError } from '../errors.js';
import {
  DMA_ATTR_ALLOC_SINGLE_PAGES, DMA_ATTR_FORCE_CONTIGUOUS, DMA_ATTR_MAY_BLOCK, DMA_ATTR_NO_KERNEL_MAPPING, DMA_ATTR_NO_WARN,
  DMA_ATTR_PRIVILEGED, DMA_ATTR_SKIP_CPU_SYNC, DMA_ATTR_WEAK_ORDERING, DMA_ATTR_WRITE_COMBINE,
} from '../swiotlb/constants.js';
import { LineSplitter, DEFAULT_MAX_LINE_BYTES } from '../analyze/lines.js';

/** decode_dma_data_direction(): the names __print_symbolic prints. */
export type DmaDir = 'BIDIRECTIONAL' | 'TO_DEVICE' | 'FROM_DEVICE' | 'NONE';
/** The names by enum dma_data_direction value (DMA_BIDIRECTIONAL 0 ... DMA_NONE 3). */
export const DMA_DIR_NAMES: readonly DmaDir[] = ['BIDIRECTIONAL', 'TO_DEVICE', 'FROM_DEVICE', 'NONE'];
const DIRS: ReadonlySet<string> = new Set(DMA_DIR_NAMES);

/** decode_dma_attrs(): each DMA_ATTR_* bit's name, in bit order; MAY_BLOCK is [RFC] throttling's. */
export const DMA_ATTR_NAMES: readonly (readonly [number, string])[] = [
  [DMA_ATTR_WEAK_ORDERING, 'WEAK_ORDERING'], [DMA_ATTR_WRITE_COMBINE, 'WRITE_COMBINE'], [DMA_ATTR_NO_KERNEL_MAPPING, 'NO_KERNEL_MAPPING'],
  [DMA_ATTR_SKIP_CPU_SYNC, 'SKIP_CPU_SYNC'], [DMA_ATTR_FORCE_CONTIGUOUS, 'FORCE_CONTIGUOUS'], [DMA_ATTR_ALLOC_SINGLE_PAGES, 'ALLOC_SINGLE_PAGES'],
  [DMA_ATTR_NO_WARN, 'NO_WARN'], [DMA_ATTR_PRIVILEGED, 'PRIVILEGED'], [DMA_ATTR_MAY_BLOCK, 'MAY_BLOCK'],
];

/** DMA_TRACE_MAX_ENTRIES (include/trace/events/dma.h): the most scatterlist entries one line prints. */
export const DMA_TRACE_MAX_ENTRIES = 128;

/** dma_map_phys (current), dma_map_page / dma_map_resource (v6.12): class dma_map. */
export interface MapFields {
  kind: 'map';
  device: string;
  dir: DmaDir;
  dma_addr: bigint;
  size: number;
  phys_addr: bigint;
  /** decode_dma_attrs(): the names in the order printed; [] when attrs was 0. */
  attrs: string[];
}

/** dma_unmap_phys (current), dma_unmap_page / dma_unmap_resource (v6.12): class dma_unmap. */
export interface UnmapFields {
  kind: 'unmap';
  device: string;
  dir: DmaDir;
  dma_addr: bigint;
  size: number;
  attrs: string[];
}

/** dma_map_sg. `nents`/`ents` are present in the current form only (null in the v6.12 form). */
export interface MapSgFields {
  kind: 'map_sg';
  device: string;
  dir: DmaDir;
  /** Entries traced (at most DMA_TRACE_MAX_ENTRIES = 128) and the scatterlist's full count. */
  nents: { traced: number; full: number } | null;
  ents: { traced: number; full: number } | null;
  /** " [TRUNCATED]" was printed: the arrays hold only the first 128 entries. */
  truncated: boolean;
  dma_addrs: bigint[];
  sizes: number[];
  phys_addrs: bigint[];
  attrs: string[];
}

/** dma_unmap_sg: no sizes; the array holds sg_phys() of each entry. */
export interface UnmapSgFields {
  kind: 'unmap_sg';
  device: string;
  dir: DmaDir;
  phys_addrs: bigint[];
  attrs: string[];
}

/** dma_map_sg_err (current kernels; not in v6.12). The kernel prints the array as "dma_addrs=" but
 *  fills it with sg_phys(): they are physical addresses, named so here. */
export interface MapSgErrFields {
  kind: 'map_sg_err';
  device: string;
  dir: DmaDir;
  phys_addrs: bigint[];
  err: number;
  attrs: string[];
}

/** dma_sync_single_for_cpu / dma_sync_single_for_device. */
export interface SyncSingleFields {
  kind: 'sync_single';
  device: string;
  dir: DmaDir;
  dma_addr: bigint;
  size: number;
}

/** dma_sync_sg_for_cpu / dma_sync_sg_for_device. */
export interface SyncSgFields {
  kind: 'sync_sg';
  device: string;
  dir: DmaDir;
  dma_addrs: bigint[];
  sizes: number[];
}

/** swiotlb:swiotlb_bounced. Fires in swiotlb_map before the slot search; dev_addr is the original
 *  address (not the bounce slot). */
export interface BouncedFields {
  kind: 'bounced';
  device: string;
  dma_mask: bigint;
  dev_addr: bigint;
  size: number;
  /** "FORCE" (swiotlb=force or a CoCo guest) rather than "NORMAL". */
  force: boolean;
}

export type TraceFields =
  | MapFields
  | UnmapFields
  | MapSgFields
  | UnmapSgFields
  | MapSgErrFields
  | SyncSingleFields
  | SyncSgFields
  | BouncedFields;

export interface TraceRecord {
  /** 1-based line number in the input. */
  line: number;
  task: string;
  pid: number;
  cpu: number;
  /** The SECONDS.FRACTION timestamp in whole microseconds (digits past the sixth truncated). */
  timestamp_us: number;
  event: string;
  fields: TraceFields;
}

export interface TraceStats {
  lines: number;
  /** `# ...` comment lines, `cpus=N`, `version = N`, `CPU N is empty`, blank lines. */
  headerLines: number;
  /** Records yielded. */
  records: number;
  /** Yielded records by event name. */
  byEvent: Record<string, number>;
  /** dma_alloc* lines (dma_alloc, dma_alloc_pages, dma_alloc_sgt, dma_alloc_sgt_err): counted only. */
  allocEvents: number;
  /** dma_free* lines (dma_free, dma_free_pages, dma_free_sgt): counted only. */
  freeEvents: number;
  /** Event lines of other events, skipped. */
  otherEvents: number;
  /** Sum of N over `CPU:C [LOST N EVENTS]` lines: the ring buffer overflowed, the trace has gaps. */
  lostEvents: number;
  /** Malformed lines skipped under skipBadLines (otherwise the first one throws). */
  badLines: number;
}

export interface TraceParseOptions {
  /** Count malformed lines instead of throwing on the first one. */
  skipBadLines?: boolean;
  /** Longest line kept (bytes); a longer one is a bad line. */
  maxLineBytes?: number;
}

export function newTraceStats(): TraceStats {
  return {
    lines: 0,
    headerLines: 0,
    records: 0,
    byEvent: {},
    allocEvents: 0,
    freeEvents: 0,
    otherEvents: 0,
    lostEvents: 0,
    badLines: 0,
  };
}

// TASK-PID [CPU] FLAGS TIMESTAMP: EVENT: FIELDS, also with the optional TGID column "(  123)" or
// "(-----)" (options/record-tgid) and without FLAGS (trace-cmd report). Task names may hold spaces
// and dashes: the PID is the "-digits" right before the CPU column, and the task is all before it.
// The search is unanchored (first "-PID [CPU] ... TIMESTAMP: EVENT:" on the line) rather than a
// greedy task pattern, which backtracks over the whole line and was 3x slower.
const EVENT_HEAD =
  /-(\d+)\s+(?:\(\s*(?:\d+|-+)\)\s+)?\[(\d+)\]\s+(?:([^\s:]+)\s+)?(\d+)\.(\d+):\s+([A-Za-z0-9_]+):\s*/;
const LOST_LINE = /^\s*CPU:\s*\d+\s+\[LOST (\d+) EVENTS\]\s*$/;
const HEADER_LINE = /^(?:\s*#.*|\s*|cpus=\d+|version\s*=\s*\S.*|\s*CPU\s*\d+ is empty)$/;

const HEX = '[0-9a-f]+';
const DEC = '\\d+';
// __print_array: "{" then elements "0x%x" (4-byte) or "0x%llx" (8-byte) joined by ",", then "}".
const ARR = '\\{((?:0x[0-9a-f]+(?:,0x[0-9a-f]+)*)?)\\}';
const DIR = '([A-Z_]+)';
// __print_flags(attrs, "|", ...): names joined by "|", empty when 0 (an unknown bit prints as 0x..).
const ATTRS = '((?:[A-Z_]+|0x[0-9a-f]+)(?:\\|(?:[A-Z_]+|0x[0-9a-f]+))*)?';
const DEV = '(\\S+)';

function re(s: string): RegExp {
  return new RegExp(`^${s}\\s*$`);
}

interface Format {
  re: RegExp;
  /** What the line should look like, for the error message. */
  expected: string;
  build(m: RegExpExecArray): TraceFields;
}

const MAP_FMT: Format = {
  re: re(`${DEV} dir=${DIR} dma_addr=(${HEX}) size=(${DEC}) phys_addr=(${HEX}) attrs=${ATTRS}`),
  expected: 'DEVICE dir=DIR dma_addr=HEX size=N phys_addr=HEX attrs=FLAGS',
  build: (m) => ({
    kind: 'map',
    device: m[1],
    dir: dir(m[2]),
    dma_addr: BigInt('0x' + m[3]),
    size: dec(m[4]),
    phys_addr: BigInt('0x' + m[5]),
    attrs: attrs(m[6]),
  }),
};

const UNMAP_FMT: Format = {
  re: re(`${DEV} dir=${DIR} dma_addr=(${HEX}) size=(${DEC}) attrs=${ATTRS}`),
  expected: 'DEVICE dir=DIR dma_addr=HEX size=N attrs=FLAGS',
  build: (m) => ({
    kind: 'unmap',
    device: m[1],
    dir: dir(m[2]),
    dma_addr: BigInt('0x' + m[3]),
    size: dec(m[4]),
    attrs: attrs(m[5]),
  }),
};

const MAP_SG_FMT: Format = {
  re: re(
    `${DEV} dir=${DIR} nents=(${DEC})/(${DEC}) ents=(${DEC})/(${DEC})( \\[TRUNCATED\\])? dma_addrs=${ARR} sizes=${ARR} phys_addrs=${ARR} attrs=${ATTRS}`,
  ),
  expected:
    'DEVICE dir=DIR nents=N/N ents=N/N[ [TRUNCATED]] dma_addrs={0x..} sizes={0x..} phys_addrs={0x..} attrs=FLAGS',
  build: (m) => ({
    kind: 'map_sg',
    device: m[1],
    dir: dir(m[2]),
    nents: { traced: dec(m[3]), full: dec(m[4]) },
    ents: { traced: dec(m[5]), full: dec(m[6]) },
    truncated: m[7] !== undefined,
    dma_addrs: bigArr(m[8]),
    sizes: numArr(m[9]),
    phys_addrs: bigArr(m[10]),
    attrs: attrs(m[11]),
  }),
};

const MAP_SG_612_FMT: Format = {
  re: re(`${DEV} dir=${DIR} dma_addrs=${ARR} sizes=${ARR} phys_addrs=${ARR} attrs=${ATTRS}`),
  expected: 'DEVICE dir=DIR dma_addrs={0x..} sizes={0x..} phys_addrs={0x..} attrs=FLAGS',
  build: (m) => ({
    kind: 'map_sg',
    device: m[1],
    dir: dir(m[2]),
    nents: null,
    ents: null,
    truncated: false,
    dma_addrs: bigArr(m[3]),
    sizes: numArr(m[4]),
    phys_addrs: bigArr(m[5]),
    attrs: attrs(m[6]),
  }),
};

const UNMAP_SG_FMT: Format = {
  re: re(`${DEV} dir=${DIR} phys_addrs=${ARR} attrs=${ATTRS}`),
  expected: 'DEVICE dir=DIR phys_addrs={0x..} attrs=FLAGS',
  build: (m) => ({ kind: 'unmap_sg', device: m[1], dir: dir(m[2]), phys_addrs: bigArr(m[3]), attrs: attrs(m[4]) }),
};

const MAP_SG_ERR_FMT: Format = {
  re: re(`${DEV} dir=${DIR} dma_addrs=${ARR} err=(-?${DEC}) attrs=${ATTRS}`),
  expected: 'DEVICE dir=DIR dma_addrs={0x..} err=N attrs=FLAGS',
  build: (m) => ({
    kind: 'map_sg_err',
    device: m[1],
    dir: dir(m[2]),
    phys_addrs: bigArr(m[3]),
    err: Number(m[4]),
    attrs: attrs(m[5]),
  }),
};

const SYNC_SINGLE_FMT: Format = {
  re: re(`${DEV} dir=${DIR} dma_addr=(${HEX}) size=(${DEC})`),
  expected: 'DEVICE dir=DIR dma_addr=HEX size=N',
  build: (m) => ({ kind: 'sync_single', device: m[1], dir: dir(m[2]), dma_addr: BigInt('0x' + m[3]), size: dec(m[4]) }),
};

const SYNC_SG_FMT: Format = {
  re: re(`${DEV} dir=${DIR} dma_addrs=${ARR} sizes=${ARR}`),
  expected: 'DEVICE dir=DIR dma_addrs={0x..} sizes={0x..}',
  build: (m) => ({ kind: 'sync_sg', device: m[1], dir: dir(m[2]), dma_addrs: bigArr(m[3]), sizes: numArr(m[4]) }),
};

const BOUNCED_FMT: Format = {
  re: re(`dev_name: ${DEV} dma_mask=(${HEX}) dev_addr=(${HEX}) size=(${DEC}) (FORCE|NORMAL)`),
  expected: 'dev_name: DEVICE dma_mask=HEX dev_addr=HEX size=N FORCE|NORMAL',
  build: (m) => ({
    kind: 'bounced',
    device: m[1],
    dma_mask: BigInt('0x' + m[2]),
    dev_addr: BigInt('0x' + m[3]),
    size: dec(m[4]),
    force: m[5] === 'FORCE',
  }),
};

/** Known events and their format(s); dma_map_sg has two (current first, then v6.12). */
const FORMATS: ReadonlyMap<string, readonly Format[]> = new Map<string, readonly Format[]>([
  ['dma_map_phys', [MAP_FMT]],
  ['dma_map_page', [MAP_FMT]],
  ['dma_map_resource', [MAP_FMT]],
  ['dma_unmap_phys', [UNMAP_FMT]],
  ['dma_unmap_page', [UNMAP_FMT]],
  ['dma_unmap_resource', [UNMAP_FMT]],
  ['dma_map_sg', [MAP_SG_FMT, MAP_SG_612_FMT]],
  ['dma_map_sg_err', [MAP_SG_ERR_FMT]],
  ['dma_unmap_sg', [UNMAP_SG_FMT]],
  ['dma_sync_single_for_cpu', [SYNC_SINGLE_FMT]],
  ['dma_sync_single_for_device', [SYNC_SINGLE_FMT]],
  ['dma_sync_sg_for_cpu', [SYNC_SG_FMT]],
  ['dma_sync_sg_for_device', [SYNC_SG_FMT]],
  ['swiotlb_bounced', [BOUNCED_FMT]],
]);

class BadField extends Error {}

function dir(s: string): DmaDir {
  if (!DIRS.has(s)) throw new BadField(`dir=${s} (accepted: BIDIRECTIONAL, TO_DEVICE, FROM_DEVICE, NONE)`);
  return s as DmaDir;
}

function dec(s: string): number {
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new BadField(`${s} is too large for an exact size`);
  return n;
}

function attrs(s: string | undefined): string[] {
  return s === undefined || s === '' ? [] : s.split('|');
}

function bigArr(s: string): bigint[] {
  return s === '' ? [] : s.split(',').map((x) => BigInt(x));
}

function numArr(s: string): number[] {
  return s === '' ? [] : s.split(',').map((x) => dec(String(BigInt(x))));
}

function quote(line: string): string {
  return JSON.stringify(line.length > 200 ? line.slice(0, 200) + '...' : line);
}

/**
 * Parses trace text line by line. `parseLine` is synchronous; `read` streams an input of any size.
 * `stats` is updated as lines are parsed, so it is complete once `read` has finished.
 */
export class TraceParser {
  readonly stats: TraceStats = newTraceStats();
  private readonly skipBadLines: boolean;
  private readonly maxLineBytes: number;

  constructor(opts: TraceParseOptions = {}) {
    this.skipBadLines = opts.skipBadLines ?? false;
    this.maxLineBytes = opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  }

  /** One line (no newline), numbered from 1. Returns the record, or null for a line that yields none. */
  parseLine(text: string, lineNo: number): TraceRecord | null {
    const st = this.stats;
    st.lines++;
    const m = EVENT_HEAD.exec(text);
    const task = m === null ? '' : text.slice(0, m.index).trim();
    if (m === null || task === '') {
      if (HEADER_LINE.test(text)) {
        st.headerLines++;
        return null;
      }
      const lost = LOST_LINE.exec(text);
      if (lost !== null) {
        st.lostEvents += Number(lost[1]);
        return null;
      }
      return this.bad(lineNo, `expected a header line or an event line "TASK-PID [CPU] [FLAGS] SECONDS.USECS: EVENT: FIELDS", got ${quote(text)}`);
    }
    const event = m[6];
    const formats = FORMATS.get(event);
    if (formats === undefined) {
      if (event.startsWith('dma_alloc')) st.allocEvents++;
      else if (event.startsWith('dma_free')) st.freeEvents++;
      else st.otherEvents++;
      return null;
    }
    const body = text.slice(m.index + m[0].length);
    for (const f of formats) {
      const fm = f.re.exec(body);
      if (fm === null) continue;
      let fields: TraceFields;
      try {
        fields = f.build(fm);
      } catch (e) {
        if (e instanceof BadField) return this.bad(lineNo, `${event}: ${e.message}, in ${quote(text)}`);
        throw e;
      }
      const frac = m[5].length >= 6 ? m[5].slice(0, 6) : m[5].padEnd(6, '0');
      const rec: TraceRecord = {
        line: lineNo,
        task,
        pid: Number(m[1]),
        cpu: Number(m[2]),
        timestamp_us: Number(m[4]) * 1_000_000 + Number(frac),
        event,
        fields,
      };
      st.records++;
      st.byEvent[event] = (st.byEvent[event] ?? 0) + 1;
      return rec;
    }
    const expected = formats.map((f) => `"${f.expected}"`).join(' or ');
    return this.bad(lineNo, `${event}: expected ${expected}, got ${quote(body)}`);
  }

  private bad(lineNo: number, what: string): null {
    if (this.skipBadLines) {
      this.stats.badLines++;
      return null;
    }
    throw new InputError('EBADTRACE', `trace line ${lineNo}: ${what}`);
  }

  /** Streams records from a byte (or string) stream, such as fs.createReadStream(path). */
  async *read(input: AsyncIterable<Buffer | string>): AsyncGenerator<TraceRecord> {
    for await (const batch of this.readBatches(input)) yield* batch;
  }

  /**
   * The same records, one array per chunk of input: a consumer of millions of lines pays one await
   * per chunk, not per record (npm run replay's passes). Memory: one chunk's records at a time.
   */
  async *readBatches(input: AsyncIterable<Buffer | string>): AsyncGenerator<TraceRecord[]> {
    let pending: TraceRecord[] = [];
    let overlong: { lineNo: number; bytes: number } | null = null;
    const splitter = new LineSplitter(
      {
        line: (text, lineNo) => {
          const r = this.parseLine(text, lineNo);
          if (r !== null) pending.push(r);
        },
        overlong: (lineNo, bytes) => {
          this.stats.lines++;
          if (this.skipBadLines) this.stats.badLines++;
          else overlong ??= { lineNo, bytes };
        },
      },
      this.maxLineBytes,
    );
    const take = (): TraceRecord[] => {
      const out = pending;
      pending = [];
      return out;
    };
    const check = (): void => {
      if (overlong !== null) {
        throw new InputError(
          'EBADTRACE',
          `trace line ${overlong.lineNo}: ${overlong.bytes} bytes, longer than the ${this.maxLineBytes}-byte limit of a trace line`,
        );
      }
    };
    for await (const chunk of input) {
      splitter.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk);
      const out = take();
      if (out.length > 0) yield out;
      check();
    }
    splitter.end();
    const out = take();
    if (out.length > 0) yield out;
    check();
  }
}
