// `npm run vm -- --trace-file FILE`: the run's DMA calls written as tracefs text, in the current
// formats of include/trace/events/dma.h and swiotlb.h, so that `npm run replay` reads it back and a
// person reads it as a real `cat /sys/kernel/tracing/trace`.
//
// Threads, as the kernel's tracer works: a traced call on a vCPU writes a small binary record (the
// event's numbers, no text) into its own byte ring (src/log/ring.ts, the log's SPSC ring: one copy of
// ~60 bytes and one Atomics.store, no message, no system call, no formatting). The main thread
// (DmaTraceFile) drains every ring on a timer and appends the bytes, unformatted, to one spool file
// per vCPU beside FILE (tracefs's per-CPU buffers). Formatting happens when the run is over, as
// `cat trace` formats the ring buffer when it is read: close() merges the per-vCPU spools in timestamp
// order, prints each record in the tracepoint's format and deletes the spools. A ring that stays
// full for TRACE_FULL_WAIT_MS drops the record, as the kernel's ring buffer overwrites: the file then
// says `CPU:N [LOST M EVENTS]` where the drain noticed it, as tracefs does.
//
// Order: each vCPU's records are in time order (one thread, one clock); the merge at close takes the
// earliest head among the vCPUs, so the file is in time order without any watermark.
//
// Columns, stated: TASK-PID is `fio-<4000 + vCPU>` (the VM's jobs are fio's; one pid per vCPU), CPU
// the vCPU, flags `.....` for maps and `d.h1.` for unmaps (the drivers unmap in the completion
// interrupt), timestamps seconds since the VM's boot began, on the run's clock (--time-scale: the
// emulated clock). dev_addr of swiotlb_bounced is the original's address (phys_to_dma: the emulated
// bus has no offset and no encryption bit).
import { closeSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { InputError, InvariantError, assert } from '../errors.js';
import { RING_DATA_OFFSET, RingReader, RingWriter, createRingBuffer } from '../log/ring.js';
import { quote } from '../util/quote.js';
import { nowMs } from '../util/clock.js';
import { DMA_ATTR_NAMES, DMA_DIR_NAMES as DIR, DMA_TRACE_MAX_ENTRIES } from './tracefs.js';

/** Bytes of each vCPU's trace ring (the kernel's buffer_size_kb, per CPU). */
export const TRACE_RING_BYTES = 1 << 20;
/** Longest a vCPU waits for room before dropping a line. */
export const TRACE_FULL_WAIT_MS = 100;
const DRAIN_MS = 20;
const PID_BASE = 4000;

/** What a vCPU needs to write its lines (plain data, in its task). */
export interface DmaTraceChannel {
  ring: SharedArrayBuffer;
  cpu: number;
  /** Run-clock ms at which the VM's boot began: timestamp 0. */
  clockBaseMs: number;
}

const attrCache = new Map<number, string>();
function attrText(a: number): string {
  let s = attrCache.get(a);
  if (s === undefined) {
    s = DMA_ATTR_NAMES.filter(([b]) => (a & b) !== 0).map(([, n]) => n).join('|');
    attrCache.set(a, s);
  }
  return s;
}
// Hex of an address (< 2^53) from 16-bit digit groups: Number#toString(16) of a value above 2^31
// takes V8's slow double path, and it was the writer's largest cost.
const HEX4 = Array.from({ length: 65536 }, (_, i) => i.toString(16).padStart(4, '0'));
const HEXN = Array.from({ length: 65536 }, (_, i) => i.toString(16));
function hex(n: number): string {
  if (n < 65536) return HEXN[n]!;
  const lo = n >>> 0;
  const hi = (n - lo) / 4294967296;
  if (hi === 0) return lo < 65536 ? HEXN[lo]! : HEXN[lo >>> 16]! + HEX4[lo & 0xffff]!;
  const top = hi < 65536 ? HEXN[hi]! : HEXN[hi >>> 16]! + HEX4[hi & 0xffff]!;
  return top + HEX4[lo >>> 16]! + HEX4[lo & 0xffff]!;
}
function arr(xs: ArrayLike<number>, n: number): string {
  let s = '{';
  for (let i = 0; i < n; i++) s += (i > 0 ? ',0x' : '0x') + hex(xs[i]!);
  return s + '}';
}

// The binary record: Float64 words [length in words, kind, time (us since boot), ...the event's fields].
const R_LEN = 0;
const R_KIND = 1;
const R_TIME = 2;
const R_FIELDS = 3;
const K_MAP_PHYS = 1; // dev, phys, dma (-1: DMA_MAPPING_ERROR), size, dir, attrs
const K_UNMAP_PHYS = 2; // dev, dma, size, dir, attrs
const K_MAP_SG = 3; // dev, nents, ents, dir, attrs, then e dma, e sizes, n phys (e, n capped at 128)
const K_MAP_SG_ERR = 4; // dev, nents, err, dir, attrs, then n phys
const K_UNMAP_SG = 5; // dev, nents, dir, attrs, then n phys
const K_BOUNCED = 6; // dev, dma_mask, dev_addr, size
const K_DEVICE = 7; // id, name length, then one word per character: names a device id on this vCPU
const K_LOST = 8; // count: records the ring dropped (written by the main thread into the spool)
/** Largest record: dma_map_sg with 128 entries of each array. */
const MAX_RECORD_WORDS = R_FIELDS + 5 + 3 * DMA_TRACE_MAX_ENTRIES;
/** Bytes of a dma_map_phys record (the most frequent one, with swiotlb_bounced and dma_unmap_phys). */
export const MAP_PHYS_RECORD_BYTES = (R_FIELDS + 6) * 8;

/** The vCPU's side: one binary record per traced call, written on this thread, formatted at close. */
export class DmaTracer {
  private readonly w: RingWriter;
  private readonly base: number;
  private readonly rec = new Float64Array(MAX_RECORD_WORDS);
  private readonly bytes = new Uint8Array(this.rec.buffer);
  private readonly devices = new Map<string, number>();
  /** The ring's data area as words: a record with room is built there directly, no copy of bytes. */
  private readonly ring64: Float64Array;
  constructor(ch: DmaTraceChannel) {
    this.w = new RingWriter(ch.ring, TRACE_FULL_WAIT_MS);
    this.ring64 = new Float64Array(ch.ring, RING_DATA_OFFSET, (ch.ring.byteLength - RING_DATA_OFFSET) / 8);
    this.base = ch.clockBaseMs;
  }

  /** Start a record of `kind` on `dev` at now; returns the next free word. */
  private open(kind: number, dev: string): number {
    let id = this.devices.get(dev);
    if (id === undefined) {
      id = this.devices.size;
      this.devices.set(dev, id);
      const r = this.rec;
      r[R_KIND] = K_DEVICE;
      r[R_TIME] = 0;
      r[R_FIELDS] = id;
      r[R_FIELDS + 1] = dev.length;
      for (let i = 0; i < dev.length; i++) r[R_FIELDS + 2 + i] = dev.charCodeAt(i);
      this.close_(R_FIELDS + 2 + dev.length);
    }
    this.rec[R_KIND] = kind;
    this.rec[R_TIME] = Math.floor((nowMs() - this.base) * 1000);
    this.rec[R_FIELDS] = id;
    return R_FIELDS + 1;
  }

  private close_(words: number): void {
    const r = this.rec;
    r[R_LEN] = words;
    const pos = this.w.reserve(words * 8);
    if (pos < 0) {
      this.w.writeBytes(this.bytes, words * 8); // waits for room (bounded) or wraps
      return;
    }
    const ring = this.ring64;
    const at = pos / 8;
    for (let i = 0; i < words; i++) ring[at + i] = r[i]!;
    this.w.commit(words * 8);
  }

  private put(at: number, xs: ArrayLike<number>, n: number): number {
    for (let i = 0; i < n; i++) this.rec[at + i] = xs[i]!;
    return at + n;
  }

  mapPhys(dev: string, phys: number, dma: number, size: number, dir: number, attrs: number): void {
    const at = this.open(K_MAP_PHYS, dev);
    const r = this.rec;
    r[at] = phys; r[at + 1] = dma < 0 ? -1 : dma; r[at + 2] = size; r[at + 3] = dir; r[at + 4] = attrs;
    this.close_(at + 5);
  }

  unmapPhys(dev: string, dma: number, size: number, dir: number, attrs: number): void {
    const at = this.open(K_UNMAP_PHYS, dev);
    const r = this.rec;
    r[at] = dma; r[at + 1] = size; r[at + 2] = dir; r[at + 3] = attrs;
    this.close_(at + 4);
  }

  mapSg(dev: string, phys: ArrayLike<number>, dma: ArrayLike<number>, lens: ArrayLike<number>, nents: number, ents: number, dir: number, attrs: number): void {
    const at = this.open(K_MAP_SG, dev);
    const r = this.rec;
    r[at] = nents; r[at + 1] = ents; r[at + 2] = dir; r[at + 3] = attrs;
    const e = Math.min(ents, DMA_TRACE_MAX_ENTRIES);
    const n = Math.min(nents, DMA_TRACE_MAX_ENTRIES);
    this.close_(this.put(this.put(this.put(at + 4, dma, e), lens, e), phys, n));
  }

  mapSgErr(dev: string, phys: ArrayLike<number>, nents: number, err: number, dir: number, attrs: number): void {
    const at = this.open(K_MAP_SG_ERR, dev);
    const r = this.rec;
    r[at] = nents; r[at + 1] = err; r[at + 2] = dir; r[at + 3] = attrs;
    this.close_(this.put(at + 4, phys, Math.min(nents, DMA_TRACE_MAX_ENTRIES)));
  }

  unmapSg(dev: string, phys: ArrayLike<number>, nents: number, dir: number, attrs: number): void {
    const at = this.open(K_UNMAP_SG, dev);
    const r = this.rec;
    r[at] = nents; r[at + 1] = dir; r[at + 2] = attrs;
    this.close_(this.put(at + 3, phys, Math.min(nents, DMA_TRACE_MAX_ENTRIES)));
  }

  bounced(dev: string, dmaMask: number, devAddr: number, size: number): void {
    const at = this.open(K_BOUNCED, dev);
    const r = this.rec;
    r[at] = dmaMask; r[at + 1] = devAddr; r[at + 2] = size;
    this.close_(at + 3);
  }

  close(): void {
    this.w.close();
  }
}

/** A record's text, as the tracepoint prints it (TP_printk), with the line's columns. */
function formatRecord(r: Float64Array, o: number, cpu: number, head: string, names: readonly string[]): string {
  const kind = r[o + R_KIND]!;
  const us = r[o + R_TIME]!;
  const dev = names[r[o + R_FIELDS]!]!;
  const f = o + R_FIELDS + 1;
  const sec = Math.floor(us / 1e6);
  const stamp = `${String(sec).padStart(5)}.${String(us - sec * 1e6 + 1e6).slice(1)}`;
  const line = (flags: string, event: string, fields: string) => `${head}${flags} ${stamp}: ${event}: ${fields}\n`;
  const list = (from: number, n: number) => {
    const xs = new Array<number>(n);
    for (let i = 0; i < n; i++) xs[i] = r[from + i]!;
    return arr(xs, n);
  };
  switch (kind) {
    case K_MAP_PHYS: {
      // dma_addr_t's DMA_MAPPING_ERROR (~0) prints as all ones.
      const dma = r[f + 1]!;
      return line('.....', 'dma_map_phys', `${dev} dir=${DIR[r[f + 3]!]} dma_addr=${dma < 0 ? 'ffffffffffffffff' : hex(dma)} size=${r[f + 2]} phys_addr=${hex(r[f]!)} attrs=${attrText(r[f + 4]!)}`);
    }
    case K_UNMAP_PHYS:
      return line('d.h1.', 'dma_unmap_phys', `${dev} dir=${DIR[r[f + 2]!]} dma_addr=${hex(r[f]!)} size=${r[f + 1]} attrs=${attrText(r[f + 3]!)}`);
    case K_MAP_SG: {
      const nents = r[f]!;
      const ents = r[f + 1]!;
      const n = Math.min(nents, DMA_TRACE_MAX_ENTRIES);
      const e = Math.min(ents, DMA_TRACE_MAX_ENTRIES);
      const trunc = nents > DMA_TRACE_MAX_ENTRIES || ents > DMA_TRACE_MAX_ENTRIES ? ' [TRUNCATED]' : '';
      const a = f + 4;
      return line('.....', 'dma_map_sg', `${dev} dir=${DIR[r[f + 2]!]} nents=${n}/${nents} ents=${e}/${ents}${trunc} dma_addrs=${list(a, e)} sizes=${list(a + e, e)} phys_addrs=${list(a + 2 * e, n)} attrs=${attrText(r[f + 3]!)}`);
    }
    case K_MAP_SG_ERR:
      return line('.....', 'dma_map_sg_err', `${dev} dir=${DIR[r[f + 2]!]} dma_addrs=${list(f + 4, Math.min(r[f]!, DMA_TRACE_MAX_ENTRIES))} err=${r[f + 1]} attrs=${attrText(r[f + 3]!)}`);
    case K_UNMAP_SG:
      return line('d.h1.', 'dma_unmap_sg', `${dev} dir=${DIR[r[f + 1]!]} phys_addrs=${list(f + 3, Math.min(r[f]!, DMA_TRACE_MAX_ENTRIES))} attrs=${attrText(r[f + 2]!)}`);
    case K_BOUNCED: {
      const mask = r[f]!;
      return line('.....', 'swiotlb_bounced', `dev_name: ${dev} dma_mask=${mask >= Number.MAX_SAFE_INTEGER ? 'ffffffffffffffff' : hex(mask)} dev_addr=${hex(r[f + 1]!)} size=${r[f + 2]} FORCE`);
    }
    default:
      throw new InvariantError(`--trace-file: record kind ${kind} in vCPU ${cpu}'s spool is not one the tracer writes`);
  }
}

const HEADER_COUNTS_WIDTH = 80;

/** Bytes each spool reader holds at once while close() merges (a record is at most MAX_RECORD_WORDS words). */
const SPOOL_READ_BYTES = 1 << 20;

/** One vCPU's spool, read back record by record at close. */
class SpoolReader {
  private readonly buf = new ArrayBuffer(SPOOL_READ_BYTES);
  readonly f64 = new Float64Array(this.buf);
  private readonly u8 = new Uint8Array(this.buf);
  /** Word offset of the current record, and the end of the valid bytes (in words). */
  at = 0;
  private end = 0;
  private eof = false;
  /** Bytes of the spool read so far (the file's position is its end: the drains appended there). */
  private readAt = 0;
  readonly names: string[] = [];
  /** The line's TASK-PID and CPU columns, the same on every line of this vCPU. */
  readonly head: string;
  constructor(private readonly fd: number, readonly cpu: number) {
    this.head = `${'fio'.padStart(16)}-${String(PID_BASE + cpu).padEnd(7)} [${String(cpu).padStart(3, '0')}] `;
  }

  /** Make the record at `at` whole in the buffer; false at the end of the spool. */
  ready(): boolean {
    for (;;) {
      if (this.at < this.end) {
        const len = this.f64[this.at + R_LEN]!;
        assert(Number.isInteger(len) && len > R_FIELDS - 1 && len <= MAX_RECORD_WORDS, `--trace-file: corrupt record in vCPU ${this.cpu}'s spool (length ${len})`);
        if (this.at + len <= this.end) return true;
      }
      if (this.eof) {
        assert(this.at === this.end, `--trace-file: vCPU ${this.cpu}'s spool ends inside a record`);
        return false;
      }
      // Move what is left of the buffer to its start (records are whole words), then read more.
      this.u8.copyWithin(0, this.at * 8, this.end * 8);
      this.end -= this.at;
      this.at = 0;
      const n = readSync(this.fd, this.u8, this.end * 8, SPOOL_READ_BYTES - this.end * 8, this.readAt);
      this.readAt += n;
      if (n === 0) this.eof = true;
      assert(n % 8 === 0, `--trace-file: vCPU ${this.cpu}'s spool is not whole words`);
      this.end += n / 8;
    }
  }

  next(): void {
    this.at += this.f64[this.at + R_LEN]!;
  }
}

/** The main thread's side: the rings, the drain timer, the spools, and the file they become at close. */
export class DmaTraceFile {
  private readonly fd: number;
  private readonly readers: RingReader[];
  private readonly spools: string[];
  private readonly spoolFds: number[];
  private timer: NodeJS.Timeout | null = null;
  private countsAt = 0;
  private written = 0;
  lost = 0;
  private closed = false;
  private readonly lostRecord = new Float64Array(R_FIELDS + 1);

  constructor(readonly file: string, readonly vcpus: number, readonly clockBaseMs: number) {
    try {
      this.fd = openSync(file, 'w');
    } catch (e) {
      throw new InputError('EBADFLAG', `--trace-file: cannot open ${quote(file)} (${(e as NodeJS.ErrnoException).code ?? 'error'}); expected a file in an existing directory`);
    }
    this.readers = Array.from({ length: vcpus }, () => new RingReader(createRingBuffer(TRACE_RING_BYTES)));
    this.spools = this.readers.map((_, c) => `${file}.cpu${c}.spool`);
    this.spoolFds = this.spools.map((f) => openSync(f, 'w+'));
    const pre = '# tracer: nop\n#\n';
    this.countsAt = Buffer.byteLength(pre);
    const header = pre + `${this.countsLine(0, 0).padEnd(HEADER_COUNTS_WIDTH)}\n` + [
      '#',
      '#                                _-----=> irqs-off/BH-disabled',
      '#                               / _----=> need-resched',
      '#                              | / _---=> hardirq/softirq',
      '#                              || / _--=> preempt-depth',
      '#                              ||| / _-=> migrate-disable',
      '#                              |||| /     delay',
      '#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION',
      '#              | |         |   |||||     |         |',
    ].join('\n') + '\n';
    writeSync(this.fd, header);
  }

  private countsLine(inBuffer: number, written: number): string {
    return `# entries-in-buffer/entries-written: ${inBuffer}/${written}   #P:${this.vcpus}`;
  }

  channel(cpu: number): DmaTraceChannel {
    return { ring: this.readers[cpu]!.sab, cpu, clockBaseMs: this.clockBaseMs };
  }

  start(): void {
    this.timer = setInterval(() => this.drain(), DRAIN_MS);
    this.timer.unref();
  }

  /** Move what every ring holds, as it is, to its vCPU's spool (a dropped count first, as a K_LOST record). */
  drain(): void {
    if (this.closed) return;
    for (let c = 0; c < this.readers.length; c++) {
      const r = this.readers[c]!;
      const dropped = r.takeDropped();
      if (dropped > 0) {
        this.lost += dropped;
        const l = this.lostRecord;
        l[R_LEN] = R_FIELDS + 1;
        l[R_KIND] = K_LOST;
        l[R_TIME] = -1; // printed before the vCPU's next record
        l[R_FIELDS] = dropped;
        writeSync(this.spoolFds[c]!, new Uint8Array(l.buffer));
      }
      const bytes = r.drain();
      if (bytes !== undefined) writeSync(this.spoolFds[c]!, bytes);
    }
  }

  /** After every vCPU closed its tracer: drain the rest, format the spools merged in time order, fill in the header's counts. */
  close(): { file: string; events: number; lost: number } {
    if (this.timer !== null) clearInterval(this.timer);
    this.drain();
    this.closed = true;
    try {
      this.format();
    } finally {
      for (let c = 0; c < this.spools.length; c++) {
        closeSync(this.spoolFds[c]!);
        unlinkSync(this.spools[c]!);
      }
    }
    writeSync(this.fd, this.countsLine(this.written, this.written + this.lost).padEnd(HEADER_COUNTS_WIDTH), this.countsAt);
    closeSync(this.fd);
    return { file: this.file, events: this.written, lost: this.lost };
  }

  /** A k-way merge of the spools by timestamp (each in time order), printed in batches. */
  private format(): void {
    const spools = this.spoolFds.map((fd, c) => new SpoolReader(fd, c));
    const out: string[] = [];
    let outChars = 0;
    const flush = () => {
      if (out.length === 0) return;
      writeSync(this.fd, out.join(''), null, 'latin1');
      out.length = 0;
      outChars = 0;
    };
    /** The spool's next event record (device and lost records taken on the way); false at its end. */
    const head = (sp: SpoolReader): boolean => {
      while (sp.ready()) {
        const k = sp.f64[sp.at + R_KIND]!;
        if (k === K_DEVICE) {
          const o = sp.at + R_FIELDS;
          let name = '';
          for (let i = 0; i < sp.f64[o + 1]!; i++) name += String.fromCharCode(sp.f64[o + 2 + i]!);
          sp.names[sp.f64[o]!] = name;
        } else if (k === K_LOST) {
          out.push(`CPU:${sp.cpu} [LOST ${sp.f64[sp.at + R_FIELDS]} EVENTS]\n`);
        } else return true;
        sp.next();
      }
      return false;
    };
    const live = spools.filter((sp) => head(sp));
    while (live.length > 0) {
      let best = 0;
      for (let i = 1; i < live.length; i++) if (live[i]!.f64[live[i]!.at + R_TIME]! < live[best]!.f64[live[best]!.at + R_TIME]!) best = i;
      const sp = live[best]!;
      const text = formatRecord(sp.f64, sp.at, sp.cpu, sp.head, sp.names);
      out.push(text);
      outChars += text.length;
      this.written++;
      sp.next();
      if (!head(sp)) live.splice(best, 1);
      if (outChars >= 1 << 20) flush();
    }
    flush();
  }
}

