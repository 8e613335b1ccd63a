// `npm run vm -- --trace-file FILE`: the run's DMA calls written as tracefs text, in the current
// formats of include/trace/events/dma.h and swiotlb.h, so that `npm run replay` reads it back and a
// person reads it as a real `cat /sys/kernel/tracing/trace`.
//
// Threads: each vCPU formats its own lines (DmaTracer, installed in dma/direct.ts's hook) into its
// own byte ring (src/log/ring.ts, the log's SPSC ring: one copy of the bytes and one Atomics.store per
// line, no message, no system call); the main thread (DmaTraceFile) drains every ring on a timer,
// merges the lines in timestamp order, as tracefs merges its per-CPU buffers, and writes them in
// batches. A ring that stays full for TRACE_FULL_WAIT_MS drops the line, as the kernel's ring buffer
// overwrites: the file then says `CPU:N [LOST M EVENTS]`, as tracefs does.
//
// Order: a ring's lines are in time order. At each drain the watermark is the earliest of now and the
// time at which any producer began a line it has not published (ring.ts STAMPING, read before that
// ring is drained): no line still to come is older, so every queued line at or below it is written.
//
// Columns, stated: TASK-PID is `fio-<4000 + vCPU>` (the VM's jobs are fio's; one pid per vCPU), CPU
// the vCPU, flags `.....` for maps and `d.h1.` for unmaps (the drivers unmap in the completion
// interrupt), timestamps seconds since the VM's boot began, on the run's clock (--time-scale: the
// emulated clock). dev_addr of swiotlb_bounced is the original's address (phys_to_dma: the emulated
// bus has no offset and no encryption bit).
import { closeSync, openSync, writeSync } from 'node:fs';
import { InputError } from '../errors.js';
import { RingReader, RingWriter, createRingBuffer } from '../log/ring.js';
import { quote } from '../util/quote.js';
import { nowMs, timeScale, wallMs } from '../util/clock.js';
import {
  DMA_ATTR_ALLOC_SINGLE_PAGES, DMA_ATTR_FORCE_CONTIGUOUS, DMA_ATTR_MAY_BLOCK, DMA_ATTR_NO_KERNEL_MAPPING, DMA_ATTR_NO_WARN,
  DMA_ATTR_PRIVILEGED, DMA_ATTR_SKIP_CPU_SYNC, DMA_ATTR_WEAK_ORDERING, DMA_ATTR_WRITE_COMBINE,
} from '../swiotlb/constants.js';

/** Bytes of each vCPU's trace ring (the kernel's buffer_size_kb, per CPU). */
export const TRACE_RING_BYTES = 1 << 20;
/** Longest a vCPU waits for room before dropping a line. */
export const TRACE_FULL_WAIT_MS = 100;
const DRAIN_MS = 20;
const DMA_TRACE_MAX_ENTRIES = 128;
const PID_BASE = 4000;

/** What a vCPU needs to write its lines (plain data, in its task). */
export interface DmaTraceChannel {
  ring: SharedArrayBuffer;
  cpu: number;
  /** Run-clock ms at which the VM's boot began: timestamp 0. */
  clockBaseMs: number;
}

const DIR = ['BIDIRECTIONAL', 'TO_DEVICE', 'FROM_DEVICE', 'NONE'];
// decode_dma_attrs's names in bit order; MAY_BLOCK is [RFC] throttling's.
const ATTR_NAMES: [number, string][] = [
  [DMA_ATTR_WEAK_ORDERING, 'WEAK_ORDERING'], [DMA_ATTR_WRITE_COMBINE, 'WRITE_COMBINE'], [DMA_ATTR_NO_KERNEL_MAPPING, 'NO_KERNEL_MAPPING'],
  [DMA_ATTR_SKIP_CPU_SYNC, 'SKIP_CPU_SYNC'], [DMA_ATTR_FORCE_CONTIGUOUS, 'FORCE_CONTIGUOUS'], [DMA_ATTR_ALLOC_SINGLE_PAGES, 'ALLOC_SINGLE_PAGES'],
  [DMA_ATTR_NO_WARN, 'NO_WARN'], [DMA_ATTR_PRIVILEGED, 'PRIVILEGED'], [DMA_ATTR_MAY_BLOCK, 'MAY_BLOCK'],
];
const attrCache = new Map<number, string>();
function attrText(a: number): string {
  let s = attrCache.get(a);
  if (s === undefined) {
    s = ATTR_NAMES.filter(([b]) => (a & b) !== 0).map(([, n]) => n).join('|');
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

/** The vCPU's side: one line per traced call, formatted on this thread. */
export class DmaTracer {
  private readonly w: RingWriter;
  private readonly head: string;
  private readonly base: number;
  private readonly k = timeScale();
  constructor(ch: DmaTraceChannel) {
    this.w = new RingWriter(ch.ring, TRACE_FULL_WAIT_MS);
    this.head = `${'fio'.padStart(16)}-${String(PID_BASE + ch.cpu).padEnd(7)} [${String(ch.cpu).padStart(3, '0')}] `;
    this.base = ch.clockBaseMs;
  }

  /** The previous line's run-clock ms: the next one is stamped no earlier (the ring's watermark, without a clock read). */
  private last = 0;
  private sec = -1;
  private secText = '';

  private line(flags: string, event: string, fields: string): void {
    this.w.beginAt(this.last * this.k);
    const now = nowMs();
    this.last = now;
    const us = Math.floor((now - this.base) * 1000);
    const sec = Math.floor(us / 1e6);
    if (sec !== this.sec) {
      this.sec = sec;
      this.secText = `${String(sec).padStart(5)}.`;
    }
    this.w.writeAscii(`${this.head}${flags} ${this.secText}${String(us - sec * 1e6 + 1e6).slice(1)}: ${event}: ${fields}\n`);
    this.w.end();
  }

  mapPhys(dev: string, phys: number, dma: number, size: number, dir: number, attrs: number): void {
    // dma_addr_t's DMA_MAPPING_ERROR (~0) prints as all ones.
    this.line('.....', 'dma_map_phys', `${dev} dir=${DIR[dir]} dma_addr=${dma < 0 ? 'ffffffffffffffff' : hex(dma)} size=${size} phys_addr=${hex(phys)} attrs=${attrText(attrs)}`);
  }

  unmapPhys(dev: string, dma: number, size: number, dir: number, attrs: number): void {
    this.line('d.h1.', 'dma_unmap_phys', `${dev} dir=${DIR[dir]} dma_addr=${hex(dma)} size=${size} attrs=${attrText(attrs)}`);
  }

  mapSg(dev: string, phys: ArrayLike<number>, dma: ArrayLike<number>, lens: ArrayLike<number>, nents: number, ents: number, dir: number, attrs: number): void {
    const n = Math.min(nents, DMA_TRACE_MAX_ENTRIES);
    const e = Math.min(ents, DMA_TRACE_MAX_ENTRIES);
    const trunc = nents > DMA_TRACE_MAX_ENTRIES || ents > DMA_TRACE_MAX_ENTRIES ? ' [TRUNCATED]' : '';
    this.line('.....', 'dma_map_sg', `${dev} dir=${DIR[dir]} nents=${n}/${nents} ents=${e}/${ents}${trunc} dma_addrs=${arr(dma, e)} sizes=${arr(lens, e)} phys_addrs=${arr(phys, n)} attrs=${attrText(attrs)}`);
  }

  mapSgErr(dev: string, phys: ArrayLike<number>, nents: number, err: number, dir: number, attrs: number): void {
    this.line('.....', 'dma_map_sg_err', `${dev} dir=${DIR[dir]} dma_addrs=${arr(phys, Math.min(nents, DMA_TRACE_MAX_ENTRIES))} err=${err} attrs=${attrText(attrs)}`);
  }

  unmapSg(dev: string, phys: ArrayLike<number>, nents: number, dir: number, attrs: number): void {
    this.line('d.h1.', 'dma_unmap_sg', `${dev} dir=${DIR[dir]} phys_addrs=${arr(phys, Math.min(nents, DMA_TRACE_MAX_ENTRIES))} attrs=${attrText(attrs)}`);
  }

  bounced(dev: string, dmaMask: number, devAddr: number, size: number): void {
    this.line('.....', 'swiotlb_bounced', `dev_name: ${dev} dma_mask=${dmaMask >= Number.MAX_SAFE_INTEGER ? 'ffffffffffffffff' : hex(dmaMask)} dev_addr=${hex(devAddr)} size=${size} FORCE`);
  }

  close(): void {
    this.w.close();
  }
}

const HEADER_COUNTS_WIDTH = 80;

/** A line waiting to be written: its timestamp (us), its vCPU, and its bytes. */
interface Pending {
  t: number;
  cpu: number;
  bytes: Uint8Array;
}

/** The main thread's side: the rings, the drain timer, the file. */
export class DmaTraceFile {
  private readonly fd: number;
  private readonly readers: RingReader[];
  /** Per vCPU, lines drained and not written yet, in time order, from `heads[c]` on. */
  private readonly queues: Pending[][];
  private readonly heads: number[];
  /** Per vCPU, the bytes of a line not yet complete (a line longer than the ring arrives in pieces). */
  private readonly partial: (Uint8Array | null)[];
  private timer: NodeJS.Timeout | null = null;
  private countsAt = 0;
  private written = 0;
  lost = 0;
  private closed = false;

  constructor(readonly file: string, readonly vcpus: number, readonly clockBaseMs: number) {
    try {
      this.fd = openSync(file, 'w');
    } catch (e) {
      throw new InputError('EBADFLAG', `--trace-file: cannot open ${quote(file)} (${(e as NodeJS.ErrnoException).code ?? 'error'}); expected a file in an existing directory`);
    }
    this.readers = Array.from({ length: vcpus }, () => new RingReader(createRingBuffer(TRACE_RING_BYTES)));
    this.queues = this.readers.map(() => []);
    this.heads = this.readers.map(() => 0);
    this.partial = this.readers.map(() => null);
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
    this.timer = setInterval(() => this.drain(false), DRAIN_MS);
    this.timer.unref();
  }

  /** Split a drained chunk into lines (views, no copy), each with its timestamp. */
  private take(c: number, chunk: Uint8Array): void {
    const q = this.queues[c]!;
    let bytes = chunk;
    const part = this.partial[c];
    if (part !== null) {
      bytes = new Uint8Array(part.length + chunk.length);
      bytes.set(part, 0);
      bytes.set(chunk, part.length);
      this.partial[c] = null;
    }
    let at = 0;
    for (;;) {
      const nl = bytes.indexOf(NL, at);
      if (nl < 0) break;
      const line = bytes.subarray(at, nl + 1);
      q.push({ t: lineTimeUs(line), cpu: c, bytes: line });
      at = nl + 1;
    }
    if (at < bytes.length) this.partial[c] = bytes.slice(at);
  }

  /** Take what every ring holds; write what is at or below the watermark (everything when final). */
  drain(final: boolean): void {
    if (this.closed) return;
    let mark = wallMs();
    for (let c = 0; c < this.readers.length; c++) {
      const r = this.readers[c]!;
      mark = Math.min(mark, r.stampingSince());
      const dropped = r.takeDropped();
      if (dropped > 0) {
        this.lost += dropped;
        // Where tracefs prints it: among the CPU's lines, at the time of the drain that noticed it.
        this.queues[c]!.push({ t: LOST_T, cpu: c, bytes: Buffer.from(`CPU:${c} [LOST ${dropped} EVENTS]\n`) });
      }
      const bytes = r.drain();
      if (bytes !== undefined) this.take(c, bytes);
    }
    const limit = final ? Infinity : Math.floor((mark / timeScale() - this.clockBaseMs) * 1000);
    // A k-way merge of the queues' lines at or below the limit (each queue is in time order).
    const out: Uint8Array[] = [];
    let size = 0;
    const qs = this.queues;
    for (;;) {
      let best = -1;
      let bt = Infinity;
      for (let c = 0; c < qs.length; c++) {
        const h = this.heads[c]!;
        const q = qs[c]!;
        if (h >= q.length) continue;
        let t = q[h]!.t;
        if (t === LOST_T) t = h + 1 < q.length ? q[h + 1]!.t : limit; // before the CPU's next line
        if (t <= limit && t < bt) {
          bt = t;
          best = c;
        }
      }
      if (best < 0) break;
      const p = qs[best]![this.heads[best]!++]!;
      out.push(p.bytes);
      size += p.bytes.length;
      if (p.t !== LOST_T) this.written++;
    }
    for (let c = 0; c < qs.length; c++) {
      if (this.heads[c]! > 0) {
        qs[c]!.splice(0, this.heads[c]!);
        this.heads[c] = 0;
      }
    }
    if (size === 0) return;
    const buf = Buffer.allocUnsafe(size);
    let off = 0;
    for (const b of out) {
      buf.set(b, off);
      off += b.length;
    }
    writeSync(this.fd, buf);
  }

  /** After every vCPU closed its tracer: drain the rest, fill in the header's counts, close the file. */
  close(): { file: string; events: number; lost: number } {
    if (this.timer !== null) clearInterval(this.timer);
    this.drain(true);
    this.closed = true;
    writeSync(this.fd, this.countsLine(this.written, this.written + this.lost).padEnd(HEADER_COUNTS_WIDTH), this.countsAt);
    closeSync(this.fd);
    return { file: this.file, events: this.written, lost: this.lost };
  }
}

const NL = 0x0a;
const LOST_T = -1;

/** The timestamp of one of our lines (bytes), in microseconds: the digits before the first ": " after the CPU column. */
function lineTimeUs(line: Uint8Array): number {
  let i = line.indexOf(0x5d); // ']'
  // Skip "] FLAGS " to the seconds, then read SECONDS.USECS.
  i += 2;
  while (line[i] !== 0x20) i++;
  while (line[i] === 0x20) i++;
  let sec = 0;
  while (line[i] !== 0x2e) sec = sec * 10 + (line[i++]! - 48);
  i++;
  let us = 0;
  for (let k = 0; k < 6; k++) us = us * 10 + (line[i++]! - 48);
  return sec * 1e6 + us;
}
