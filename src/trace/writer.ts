// `npm run vm -- --trace-file FILE`: the run's DMA calls written as tracefs text, in the current
// formats of include/trace/events/dma.h and swiotlb.h, so that `npm run replay` reads it back and a
// person reads it as a real `cat /sys/kernel/tracing/trace`.
//
// Threads, as the kernel's tracer works: a traced call on a vCPU writes a small binary record (the
// event's numbers, no text) into its own byte ring (src/log/ring.ts, the log's SPSC ring), built in
// place in the ring's memory: one clock read and a few stores; no message, no system call, no
// formatting, and no Atomics but one store of the ring's head per TRACE_PUBLISH_EVERY records. The
// main thread (DmaTraceFile) drains every ring on a timer and writes its bytes, unformatted and
// uncopied, to one spool file per vCPU beside FILE (tracefs's per-CPU buffers). Formatting happens
// when the run is over, as `cat trace` formats the ring buffer when it is read: close() merges the
// per-vCPU spools in timestamp order, prints each record in the tracepoint's format and deletes the
// spools.
//
// Lost events: a ring that stays full for TRACE_FULL_WAIT_MS drops the record, as the kernel's ring
// buffer loses events when it is full; the ring counts the events the record held (its lines), the
// file then says `CPU:N [LOST M EVENTS]` where the drain noticed them, and the header's
// entries-written counts them, as tracefs does. Nothing else is dropped: a record that names a new
// device travels in the same write as the first event on it, so no event is ever printed without its
// device.
//
// One record for swiotlb_bounced and its dma_map_phys: swiotlb_map fires swiotlb_bounced and then, in
// the same dma_map_phys call, the map's tracepoint fires. The tracer holds the bounce until the map's
// record and writes both as one record with one clock read, printed at close as the kernel's two
// lines, the bounce first, both at the map's timestamp. A bounce that no map of the same device,
// address and size follows (each entry of a scatterlist: dma_map_sg traces the list once) is written
// on its own when the vCPU's next tracepoint fires, stamped then.
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
import { RING_DATA_OFFSET, RingReader, RingWriter, createRingBuffer, ringStats } from '../log/ring.js';
import { quote } from '../util/quote.js';
import { nowMs } from '../util/clock.js';
import { DMA_ATTR_NAMES, DMA_DIR_NAMES as DIR, DMA_TRACE_MAX_ENTRIES } from './tracefs.js';

/** Bytes of each vCPU's trace ring (the kernel's buffer_size_kb, per CPU). */
export const TRACE_RING_BYTES = 1 << 20;
/** Longest a vCPU waits for room before dropping a record. */
export const TRACE_FULL_WAIT_MS = 100;
/** Records a vCPU gathers before it publishes them to the drain with one store of the ring's head. */
export const TRACE_PUBLISH_EVERY = 32;
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

// The binary record, in little-endian 32-bit words (u32 below) and 64-bit floats (f64: addresses and
// masks, exact below 2^53, aligned because every record is a whole number of 8-byte units):
//   word 0: kind (bits 0-3), dir (4-5), F_BOUNCED (6), the device's id on this vCPU (8-31)
//   word 1: for an event, microseconds since the vCPU's previous record (dt)
// then, by kind (sizes and attrs are u32; a K_WIDE record before the event carries larger ones):
const K_MAP_PHYS = 1; // [w0, dt] [phys f64] [dma f64, -1: DMA_MAPPING_ERROR] [size, attrs]: 32 bytes
const K_UNMAP_PHYS = 2; // [w0, dt] [dma f64] [size, attrs]: 24 bytes
const K_MAP_SG = 3; // [w0, dt] [nents, ents] [attrs, 0] then e dma, e sizes, n phys as f64 (e, n capped at 128)
const K_MAP_SG_ERR = 4; // [w0, dt] [nents, err as int32] [attrs, 0] then n phys as f64
const K_UNMAP_SG = 5; // [w0, dt] [nents, attrs] then n phys as f64
const K_BOUNCED = 6; // [w0, dt] [dev_addr f64] [size, 0]: 24 bytes; dma_mask is the device's
const K_DEVICE = 7; // [w0, name length] [dma_mask f64] [the name's UTF-16 units, padded to 8 bytes]: names a device id (again: a new mask)
const K_LOST = 8; // [w0, count]: events the ring dropped (written by the main thread into the spool)
const K_TIME = 9; // [w0, 0] [us since boot f64]: the time the next record's dt counts from (a dt that does not fit 32 bits)
const K_WIDE = 10; // [w0, 0] [size f64] [attrs f64]: the next event's size and attrs, where one does not fit 32 bits
const KIND_MASK = 0xf;
const DIR_SHIFT = 4;
const F_BOUNCED = 1 << 6;
const ID_SHIFT = 8;
const MAX_DEVICE_ID = 2 ** 24 - 1;
const U32_MAX = 0xffffffff;
/** Largest event record: dma_map_sg with 128 entries of each array. */
const MAX_EVENT_BYTES = 24 + 8 * 3 * DMA_TRACE_MAX_ENTRIES;
/** Bytes of a dma_map_phys record (with or without its swiotlb_bounced: the most frequent one, with dma_unmap_phys). */
export const MAP_PHYS_RECORD_BYTES = 32;
/** Bytes of a dma_unmap_phys record. */
export const UNMAP_PHYS_RECORD_BYTES = 24;
const TIME_BYTES = 16;
const WIDE_BYTES = 24;
const LOST_BYTES = 8;
const deviceBytes = (nameLength: number): number => 16 + Math.ceil((2 * nameLength) / 8) * 8;
const sgCount = (n: number): number => Math.min(n, DMA_TRACE_MAX_ENTRIES);

/**
 * A record's length in bytes from its first words (`avail` bytes of them readable from u32 index
 * `i`); Infinity when its header words are not all there yet.
 */
function recordBytes(u: Uint32Array, i: number, avail: number): number {
  if (avail < 8) return Infinity;
  const kind = u[i]! & KIND_MASK;
  switch (kind) {
    case K_MAP_PHYS: return MAP_PHYS_RECORD_BYTES;
    case K_UNMAP_PHYS:
    case K_BOUNCED: return UNMAP_PHYS_RECORD_BYTES;
    case K_LOST: return LOST_BYTES;
    case K_TIME: return TIME_BYTES;
    case K_WIDE: return WIDE_BYTES;
    case K_DEVICE: return deviceBytes(u[i + 1]!);
    default:
  }
  if (avail < 16) return Infinity;
  switch (kind) {
    case K_MAP_SG: return 24 + 8 * (2 * sgCount(u[i + 3]!) + sgCount(u[i + 2]!));
    case K_MAP_SG_ERR: return 24 + 8 * sgCount(u[i + 2]!);
    case K_UNMAP_SG: return 16 + 8 * sgCount(u[i + 2]!);
    default: return NaN;
  }
}

/** The vCPU's side: one binary record per traced call (one for a map and its bounce), written on this thread, formatted at close. */
export class DmaTracer {
  private readonly w: RingWriter;
  private readonly base: number;
  /** The ring's data area: a record with room is built there directly. */
  private readonly ringU32: Uint32Array;
  private readonly ringF64: Float64Array;
  /** Where a record is built when the ring has no contiguous room for it, or needs records before it (a device, a time, wide values). */
  private scratchU8 = new Uint8Array(0);
  private scratchU32 = new Uint32Array(0);
  private scratchF64 = new Float64Array(0);
  /** The record being built: the words it is in, its ring position (-1: in the scratch), its time and device id. */
  private u32: Uint32Array;
  private f64: Float64Array;
  private pos = -1;
  private us = 0;
  private id = 0;
  /** Time (us since boot) of the last record the ring took: the next one's dt counts from it. */
  private lastUs = 0;
  /** Devices this vCPU's ring has named: id, and the dma_mask its last K_DEVICE gave (NaN: none). */
  private readonly ids = new Map<string, number>();
  private readonly masks: number[] = [];
  private nextId = 0;
  private lastDev = '';
  private lastId = -1;
  /** A K_DEVICE in the scratch that the ring has not taken yet (-1: none): applied when the write succeeds. */
  private announcedId = -1;
  private announcedDev = '';
  private announcedMask = NaN;
  /** swiotlb_bounced waiting for its dma_map_phys (dev null: none). */
  private bounceDev: string | null = null;
  private bounceMask = 0;
  private bounceAddr = 0;
  private bounceSize = 0;

  constructor(ch: DmaTraceChannel) {
    this.w = new RingWriter(ch.ring, TRACE_FULL_WAIT_MS, TRACE_PUBLISH_EVERY);
    const dataBytes = ch.ring.byteLength - RING_DATA_OFFSET;
    this.ringU32 = new Uint32Array(ch.ring, RING_DATA_OFFSET, dataBytes / 4);
    this.ringF64 = new Float64Array(ch.ring, RING_DATA_OFFSET, dataBytes / 8);
    this.u32 = this.ringU32;
    this.f64 = this.ringF64;
    this.base = ch.clockBaseMs;
    this.growScratch(MAX_EVENT_BYTES + TIME_BYTES + WIDE_BYTES + deviceBytes(64));
  }

  private growScratch(bytes: number): void {
    if (bytes <= this.scratchU8.length) return;
    const b = new ArrayBuffer(Math.ceil(bytes / 8) * 8);
    this.scratchU8 = new Uint8Array(b);
    this.scratchU32 = new Uint32Array(b);
    this.scratchF64 = new Float64Array(b);
  }

  /**
   * Begin an event record of `bytes` on `dev` at now: the u32 index of its word 0 in this.u32, with
   * dt written and this.id set. `mask` is the bounce's dma_mask the device's record must give (NaN: no
   * bounce); `size` and `attrs` the values the record holds as u32.
   */
  private open(dev: string, mask: number, bytes: number, size: number, attrs: number): number {
    const us = Math.floor((nowMs() - this.base) * 1000);
    this.us = us;
    const dt = us - this.lastUs;
    let id = this.lastId;
    if (dev !== this.lastDev) {
      const known = this.ids.get(dev);
      id = known ?? -1;
      if (known !== undefined) {
        this.lastDev = dev;
        this.lastId = known;
      }
    }
    if (id >= 0 && (mask !== mask || this.masks[id] === mask) && dt >= 0 && dt <= U32_MAX && size >>> 0 === size && attrs >>> 0 === attrs) {
      const pos = this.w.reserve(bytes);
      if (pos >= 0) {
        this.pos = pos;
        this.u32 = this.ringU32;
        this.f64 = this.ringF64;
        this.id = id;
        const at = pos >> 2;
        this.ringU32[at + 1] = dt;
        return at;
      }
    }
    return this.openInScratch(dev, id, mask, dt, size, attrs);
  }

  /** open() in the scratch, after the records the event needs first: its device's, a time base, wide values. */
  private openInScratch(dev: string, id: number, mask: number, dt: number, size: number, attrs: number): number {
    this.pos = -1;
    let at = 0;
    if (id < 0 || (mask === mask && this.masks[id] !== mask)) {
      if (id < 0) {
        id = this.ids.get(dev) ?? this.nextId++;
        assert(id <= MAX_DEVICE_ID, `--trace-file: more than ${MAX_DEVICE_ID + 1} device names on one vCPU`);
      }
      const m = mask === mask ? mask : (this.masks[id] ?? NaN);
      this.growScratch(deviceBytes(dev.length) + MAX_EVENT_BYTES + TIME_BYTES + WIDE_BYTES);
      const u = this.scratchU32;
      u[0] = K_DEVICE | (id << ID_SHIFT);
      u[1] = dev.length;
      this.scratchF64[1] = m;
      const units = new Uint16Array(this.scratchU8.buffer, 16, Math.ceil(dev.length / 4) * 4).fill(0);
      for (let i = 0; i < dev.length; i++) units[i] = dev.charCodeAt(i);
      at = deviceBytes(dev.length) / 4;
      this.announcedId = id;
      this.announcedDev = dev;
      this.announcedMask = m;
    }
    if (!(dt >= 0 && dt <= U32_MAX)) {
      this.scratchU32[at] = K_TIME;
      this.scratchU32[at + 1] = 0;
      this.scratchF64[(at >> 1) + 1] = this.us;
      at += TIME_BYTES / 4;
      dt = 0;
    }
    if (size >>> 0 !== size || attrs >>> 0 !== attrs) {
      assert(Number.isSafeInteger(size) && size >= 0 && Number.isSafeInteger(attrs) && attrs >= 0, `--trace-file: size ${size} or attrs ${attrs} is not a count`);
      this.scratchU32[at] = K_WIDE;
      this.scratchU32[at + 1] = 0;
      this.scratchF64[(at >> 1) + 1] = size;
      this.scratchF64[(at >> 1) + 2] = attrs;
      at += WIDE_BYTES / 4;
    }
    this.u32 = this.scratchU32;
    this.f64 = this.scratchF64;
    this.id = id;
    this.u32[at + 1] = dt;
    return at;
  }

  /** Finish the record opened at u32 index `at`, of `bytes`, holding `events` lines. */
  private close_(at: number, bytes: number, events: number): void {
    if (this.pos >= 0) {
      this.w.commit(bytes);
      this.lastUs = this.us;
      return;
    }
    // In the scratch: one write with the records before it, whole or (ring full) dropped whole.
    if (this.w.writeBytes(this.scratchU8, at * 4 + bytes, events)) {
      this.lastUs = this.us;
      if (this.announcedId >= 0) {
        this.ids.set(this.announcedDev, this.announcedId);
        this.masks[this.announcedId] = this.announcedMask;
        this.lastDev = this.announcedDev;
        this.lastId = this.announcedId;
      }
    }
    this.announcedId = -1;
  }

  /** A held swiotlb_bounced that no dma_map_phys took: its own record, stamped now. */
  private writeBounce(): void {
    const dev = this.bounceDev!;
    this.bounceDev = null;
    const at = this.open(dev, this.bounceMask, 24, this.bounceSize, 0);
    const u = this.u32;
    u[at] = K_BOUNCED | (this.id << ID_SHIFT);
    this.f64[(at >> 1) + 1] = this.bounceAddr;
    u[at + 4] = this.bounceSize;
    u[at + 5] = 0;
    this.close_(at, 24, 1);
  }

  mapPhys(dev: string, phys: number, dma: number, size: number, dir: number, attrs: number): void {
    let flags = 0;
    let mask = NaN;
    if (this.bounceDev !== null) {
      if (this.bounceDev === dev && this.bounceAddr === phys && this.bounceSize === size) {
        flags = F_BOUNCED;
        mask = this.bounceMask;
        this.bounceDev = null;
      } else this.writeBounce();
    }
    const at = this.open(dev, mask, MAP_PHYS_RECORD_BYTES, size, attrs);
    const u = this.u32;
    const f = this.f64;
    u[at] = K_MAP_PHYS | ((dir & 3) << DIR_SHIFT) | flags | (this.id << ID_SHIFT);
    f[(at >> 1) + 1] = phys;
    f[(at >> 1) + 2] = dma < 0 ? -1 : dma;
    u[at + 6] = size;
    u[at + 7] = attrs;
    this.close_(at, MAP_PHYS_RECORD_BYTES, flags === 0 ? 1 : 2);
  }

  unmapPhys(dev: string, dma: number, size: number, dir: number, attrs: number): void {
    if (this.bounceDev !== null) this.writeBounce();
    const at = this.open(dev, NaN, UNMAP_PHYS_RECORD_BYTES, size, attrs);
    const u = this.u32;
    u[at] = K_UNMAP_PHYS | ((dir & 3) << DIR_SHIFT) | (this.id << ID_SHIFT);
    this.f64[(at >> 1) + 1] = dma;
    u[at + 4] = size;
    u[at + 5] = attrs;
    this.close_(at, UNMAP_PHYS_RECORD_BYTES, 1);
  }

  private put(at: number, xs: ArrayLike<number>, n: number): number {
    const f = this.f64;
    const d = at >> 1;
    for (let i = 0; i < n; i++) f[d + i] = xs[i]!;
    return at + 2 * n;
  }

  mapSg(dev: string, phys: ArrayLike<number>, dma: ArrayLike<number>, lens: ArrayLike<number>, nents: number, ents: number, dir: number, attrs: number): void {
    if (this.bounceDev !== null) this.writeBounce();
    const e = sgCount(ents);
    const n = sgCount(nents);
    const bytes = 24 + 8 * (2 * e + n);
    const at = this.open(dev, NaN, bytes, 0, attrs);
    const u = this.u32;
    u[at] = K_MAP_SG | ((dir & 3) << DIR_SHIFT) | (this.id << ID_SHIFT);
    u[at + 2] = nents;
    u[at + 3] = ents;
    u[at + 4] = attrs;
    u[at + 5] = 0;
    this.put(this.put(this.put(at + 6, dma, e), lens, e), phys, n);
    this.close_(at, bytes, 1);
  }

  mapSgErr(dev: string, phys: ArrayLike<number>, nents: number, err: number, dir: number, attrs: number): void {
    if (this.bounceDev !== null) this.writeBounce();
    const n = sgCount(nents);
    const bytes = 24 + 8 * n;
    const at = this.open(dev, NaN, bytes, 0, attrs);
    const u = this.u32;
    u[at] = K_MAP_SG_ERR | ((dir & 3) << DIR_SHIFT) | (this.id << ID_SHIFT);
    u[at + 2] = nents;
    u[at + 3] = err;
    u[at + 4] = attrs;
    u[at + 5] = 0;
    this.put(at + 6, phys, n);
    this.close_(at, bytes, 1);
  }

  unmapSg(dev: string, phys: ArrayLike<number>, nents: number, dir: number, attrs: number): void {
    if (this.bounceDev !== null) this.writeBounce();
    const n = sgCount(nents);
    const bytes = 16 + 8 * n;
    const at = this.open(dev, NaN, bytes, 0, attrs);
    const u = this.u32;
    u[at] = K_UNMAP_SG | ((dir & 3) << DIR_SHIFT) | (this.id << ID_SHIFT);
    u[at + 2] = nents;
    u[at + 3] = attrs;
    this.put(at + 4, phys, n);
    this.close_(at, bytes, 1);
  }

  bounced(dev: string, dmaMask: number, devAddr: number, size: number): void {
    if (this.bounceDev !== null) this.writeBounce();
    this.bounceDev = dev;
    this.bounceMask = dmaMask;
    this.bounceAddr = devAddr;
    this.bounceSize = size;
  }

  /** The vCPU is done: a held bounce is written, every record published, the ring closed. */
  close(): void {
    if (this.bounceDev !== null) this.writeBounce();
    this.w.close();
  }
}

/** One vCPU's spool, read back record by record at close. */
class SpoolReader {
  private readonly buf = new ArrayBuffer(SPOOL_READ_BYTES);
  readonly u8 = new Uint8Array(this.buf);
  readonly u16 = new Uint16Array(this.buf);
  readonly u32 = new Uint32Array(this.buf);
  readonly f64 = new Float64Array(this.buf);
  /** Byte offset of the current record, and the end of the valid bytes. */
  at = 0;
  private end = 0;
  private eof = false;
  /** Bytes of the spool read so far (the file's position is its end: the drains appended there). */
  private readAt = 0;
  /** Time (us since boot) of the last event taken, and of the current one (the merge's key). */
  us = 0;
  t = 0;
  /** A K_WIDE's size and attrs for the current event (NaN: none). */
  wideSize = NaN;
  wideAttrs = NaN;
  readonly names: string[] = [];
  readonly masks: number[] = [];
  /** The line's TASK-PID and CPU columns, the same on every line of this vCPU. */
  readonly head: string;
  constructor(private readonly fd: number, readonly cpu: number) {
    this.head = `${'fio'.padStart(16)}-${String(PID_BASE + cpu).padEnd(7)} [${String(cpu).padStart(3, '0')}] `;
  }

  /** Bytes of the record at `at`, made whole in the buffer; 0 at the end of the spool. */
  ready(): number {
    for (;;) {
      const len = recordBytes(this.u32, this.at >> 2, this.end - this.at);
      assert(!Number.isNaN(len), `--trace-file: record kind ${this.u32[this.at >> 2]! & KIND_MASK} in vCPU ${this.cpu}'s spool is not one the tracer writes`);
      if (this.at + len <= this.end) return len;
      if (this.eof) {
        assert(this.at === this.end, `--trace-file: vCPU ${this.cpu}'s spool ends inside a record`);
        return 0;
      }
      assert(len === Infinity || len <= SPOOL_READ_BYTES, `--trace-file: corrupt record in vCPU ${this.cpu}'s spool (length ${len})`);
      // Move what is left of the buffer to its start (records are whole 8-byte units), then read more.
      this.u8.copyWithin(0, this.at, this.end);
      this.end -= this.at;
      this.at = 0;
      const n = readSync(this.fd, this.u8, this.end, SPOOL_READ_BYTES - this.end, this.readAt);
      this.readAt += n;
      if (n === 0) this.eof = true;
      assert(n % 8 === 0, `--trace-file: vCPU ${this.cpu}'s spool is not whole 8-byte units`);
      this.end += n;
    }
  }
}

/** A record's text, as the tracepoint prints it (TP_printk), with the line's columns: one line, or two for a map and its bounce. */
function formatRecord(sp: SpoolReader): string {
  const u = sp.u32;
  const f64 = sp.f64;
  const i = sp.at >> 2;
  const w0 = u[i]!;
  const kind = w0 & KIND_MASK;
  const dir = DIR[(w0 >>> DIR_SHIFT) & 3];
  const id = w0 >>> ID_SHIFT;
  const dev = sp.names[id]!;
  const us = sp.t;
  const d = i >> 1;
  const sec = Math.floor(us / 1e6);
  const stamp = `${String(sec).padStart(5)}.${String(us - sec * 1e6 + 1e6).slice(1)}`;
  const line = (flags: string, event: string, fields: string) => `${sp.head}${flags} ${stamp}: ${event}: ${fields}\n`;
  const wide = sp.wideSize === sp.wideSize;
  const size = (word: number) => (wide ? sp.wideSize : u[word]!);
  const attrs = (word: number) => attrText(wide ? sp.wideAttrs : u[word]!);
  const list = (from: number, n: number) => arr(f64.subarray(from, from + n), n);
  const bounced = (addr: number, sz: number) => {
    const mask = sp.masks[id]!;
    return line('.....', 'swiotlb_bounced', `dev_name: ${dev} dma_mask=${mask >= Number.MAX_SAFE_INTEGER ? 'ffffffffffffffff' : hex(mask)} dev_addr=${hex(addr)} size=${sz} FORCE`);
  };
  switch (kind) {
    case K_MAP_PHYS: {
      // dma_addr_t's DMA_MAPPING_ERROR (~0) prints as all ones.
      const phys = f64[d + 1]!;
      const dma = f64[d + 2]!;
      const sz = size(i + 6);
      const map = line('.....', 'dma_map_phys', `${dev} dir=${dir} dma_addr=${dma < 0 ? 'ffffffffffffffff' : hex(dma)} size=${sz} phys_addr=${hex(phys)} attrs=${attrs(i + 7)}`);
      return (w0 & F_BOUNCED) !== 0 ? bounced(phys, sz) + map : map;
    }
    case K_UNMAP_PHYS:
      return line('d.h1.', 'dma_unmap_phys', `${dev} dir=${dir} dma_addr=${hex(f64[d + 1]!)} size=${size(i + 4)} attrs=${attrs(i + 5)}`);
    case K_MAP_SG: {
      const nents = u[i + 2]!;
      const ents = u[i + 3]!;
      const n = sgCount(nents);
      const e = sgCount(ents);
      const trunc = nents > DMA_TRACE_MAX_ENTRIES || ents > DMA_TRACE_MAX_ENTRIES ? ' [TRUNCATED]' : '';
      const a = d + 3;
      return line('.....', 'dma_map_sg', `${dev} dir=${dir} nents=${n}/${nents} ents=${e}/${ents}${trunc} dma_addrs=${list(a, e)} sizes=${list(a + e, e)} phys_addrs=${list(a + 2 * e, n)} attrs=${attrs(i + 4)}`);
    }
    case K_MAP_SG_ERR:
      return line('.....', 'dma_map_sg_err', `${dev} dir=${dir} dma_addrs=${list(d + 3, sgCount(u[i + 2]!))} err=${u[i + 3]! | 0} attrs=${attrs(i + 4)}`);
    case K_UNMAP_SG:
      return line('d.h1.', 'dma_unmap_sg', `${dev} dir=${dir} phys_addrs=${list(d + 2, sgCount(u[i + 2]!))} attrs=${attrs(i + 3)}`);
    case K_BOUNCED:
      return bounced(f64[d + 1]!, size(i + 4));
    default:
      throw new InvariantError(`--trace-file: record kind ${kind} in vCPU ${sp.cpu}'s spool is not an event`);
  }
}

const HEADER_COUNTS_WIDTH = 80;

/** Bytes of text close() encodes before each write to the file. */
const FORMAT_OUT_BYTES = 1 << 20;

/** Bytes each spool reader holds at once while close() merges (a record is at most a few KiB). */
const SPOOL_READ_BYTES = 1 << 20;

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
  private readonly lostRecord = new Uint32Array(LOST_BYTES / 4);

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

  /** Times a vCPU found its ring full and waited for the drain (back-pressure; a wait past TRACE_FULL_WAIT_MS lost its record). */
  fullWaits(): number {
    return this.readers.reduce((n, r) => n + ringStats(r.sab).fullWaits, 0);
  }

  start(): void {
    this.timer = setInterval(() => this.drain(), DRAIN_MS);
    this.timer.unref();
  }

  /** Write what every ring holds, as it is and straight from the ring, to its vCPU's spool (a dropped count first, as a K_LOST record). */
  drain(): void {
    if (this.closed) return;
    for (let c = 0; c < this.readers.length; c++) {
      const r = this.readers[c]!;
      const fd = this.spoolFds[c]!;
      const dropped = r.takeDropped();
      if (dropped > 0) {
        this.lost += dropped;
        this.lostRecord[0] = K_LOST;
        this.lostRecord[1] = dropped;
        writeSync(fd, this.lostRecord);
      }
      r.drainTo((bytes) => {
        for (let off = 0; off < bytes.length;) off += writeSync(fd, bytes, off);
      });
    }
  }

  /**
   * After every vCPU's thread is done: drain the rest (with the last batch of a vCPU that ended
   * without closing its tracer), format the spools merged in time order, fill in the header's counts.
   */
  close(): { file: string; events: number; lost: number } {
    if (this.timer !== null) clearInterval(this.timer);
    for (const r of this.readers) r.adoptBatch();
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
    // Each line encoded into one output buffer as it is made (a line is a tree of concatenated
    // strings: encoding it alone costs far less than joining thousands of them first).
    const ob = Buffer.allocUnsafe(FORMAT_OUT_BYTES);
    let off = 0;
    const flush = () => {
      for (let o = 0; o < off;) o += writeSync(this.fd, ob, o, off - o);
      off = 0;
    };
    const put = (text: string) => {
      if (off + text.length > FORMAT_OUT_BYTES) {
        flush();
        if (text.length > FORMAT_OUT_BYTES) {
          writeSync(this.fd, text, null, 'latin1');
          return;
        }
      }
      off += ob.write(text, off, 'latin1');
    };
    /** The spool's next event record, with its time in sp.t (the records before it taken on the way); false at its end. */
    const head = (sp: SpoolReader): boolean => {
      sp.wideSize = NaN;
      sp.wideAttrs = NaN;
      for (let len = sp.ready(); len > 0; len = sp.ready()) {
        const i = sp.at >> 2;
        const w0 = sp.u32[i]!;
        switch (w0 & KIND_MASK) {
          case K_DEVICE: {
            const n = sp.u32[i + 1]!;
            let name = '';
            for (let k = 0; k < n; k++) name += String.fromCharCode(sp.u16[(sp.at + 16) / 2 + k]!);
            sp.names[w0 >>> ID_SHIFT] = name;
            sp.masks[w0 >>> ID_SHIFT] = sp.f64[(i >> 1) + 1]!;
            break;
          }
          case K_LOST:
            put(`CPU:${sp.cpu} [LOST ${sp.u32[i + 1]} EVENTS]\n`);
            break;
          case K_TIME:
            sp.us = sp.f64[(i >> 1) + 1]!;
            break;
          case K_WIDE:
            sp.wideSize = sp.f64[(i >> 1) + 1]!;
            sp.wideAttrs = sp.f64[(i >> 1) + 2]!;
            break;
          default:
            assert(sp.names[w0 >>> ID_SHIFT] !== undefined, `--trace-file: vCPU ${sp.cpu}'s spool has an event on device id ${w0 >>> ID_SHIFT} before its name`);
            sp.t = sp.us + sp.u32[i + 1]!;
            return true;
        }
        sp.at += len;
      }
      return false;
    };
    const live = spools.filter((sp) => head(sp));
    while (live.length > 0) {
      let best = 0;
      for (let i = 1; i < live.length; i++) if (live[i]!.t < live[best]!.t) best = i;
      const sp = live[best]!;
      put(formatRecord(sp));
      this.written += (sp.u32[sp.at >> 2]! & F_BOUNCED) !== 0 ? 2 : 1;
      sp.us = sp.t;
      sp.at += recordBytes(sp.u32, sp.at >> 2, Infinity);
      if (!head(sp)) live.splice(best, 1);
    }
    flush();
  }
}
