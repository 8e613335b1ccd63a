// A single-producer, single-consumer byte ring in a SharedArrayBuffer that carries finished NDJSON
// lines from one worker thread (the producer: pino writes each record into it) to the main thread
// (the consumer: it copies whole lines out and writes them to the log file in batches).
//
// Why a ring and not postMessage: a message costs a structured clone and a wake-up of the main
// thread's event loop per send; the ring costs one copy of the line's bytes and one Atomics.store,
// and the main thread collects everything that has accumulated on its next drain. It can also be
// drained synchronously from an 'exit' or signal handler, so a crash loses nothing that a worker had
// finished writing.
//
// Protocol. The header holds two byte counters, head (bytes ever written) and tail (bytes ever
// consumed), as wrapping int32s; a position in the data area is counter & (capacity - 1), and the
// fill is (head - tail) | 0, valid because capacity <= 2^30. The producer copies a line into the data
// area and only then publishes it with Atomics.store(head); the consumer copies [tail, head) and then
// publishes Atomics.store(tail) and notifies the producer. Every record pino writes ends with '\n'
// and is published whole, so the consumer never sees half a line (a line longer than the whole ring,
// which the catalogue's records never are, is published in pieces).
//
// When the ring is full the producer parks on tail with Atomics.wait, in slices of FULL_WAIT_SLICE_MS,
// for at most fullWaitMs in total; then it drops the line and counts it in DROPPED, which the
// consumer turns into a log_overflow record. That bounds how long a log burst can hold up a vCPU.
//
// Batched records (the DMA trace writer, src/trace/writer.ts): reserve(n) gives room for a record
// after every byte reserved so far, published or not, and commit(n) adds it to a batch that is
// published with one Atomics.store(head) once `publishEvery` records are waiting, by flush(), or
// before any other write (write, writeBytes and close flush first, so bytes stay in order). The
// producer re-reads tail only when the room it last saw is too small: tail only grows, so a stale
// tail under-states the room and never lets a record overwrite bytes the consumer has not taken.
// A batch not yet published is in the ring but invisible to the consumer until then; it is never
// dropped. COMMITTED says where it ends: a producer whose thread ended without closing the ring (a
// vCPU that failed, or was terminated) leaves whole records there, which the consumer adopts
// (adoptBatch) once that thread is gone.
//
// Time order. A record's time is taken before it is published, so a drain can miss a record stamped
// before lines it does take. The producer says when it is between the two: STAMPING holds the
// (clock) ms at which it began a record, relative to the ring's BASE, and 0 when it is not writing
// one. A consumer that reads STAMPING before draining knows that every record it has not taken yet
// is stamped at or after min(STAMPING, the time it read it): the logger's ordering watermark.

import { assert } from '../errors.js';
import { wallMs } from '../util/clock.js';

/** Int32 slots of the header, before the data area. */
const HEAD = 0; // bytes ever published by the producer (wrapping int32)
const TAIL = 1; // bytes ever consumed (wrapping int32)
const DROPPED = 2; // lines dropped because the ring stayed full (the DMA trace: events, writeBytes' weight)
const FULL_WAITS = 3; // times the producer had to wait for room
const LINES = 4; // lines published
const CLOSED = 5; // 1 once the producer has closed its end
const CAPACITY = 6; // data area size in bytes (power of two)
const PRODUCER = 7; // 1 once a RingWriter has claimed the ring (there may be only one)
const BASE_HI = 8; // floor(wallMs()) when the ring was created, split in two int32s (high, then low 2^24)
const BASE_LO = 9;
const STAMPING = 10; // 1 + floor(wallMs()) - base at which the producer began the record it writes; 0 = none
const COMMITTED = 11; // head plus the batch committed and not yet published (plain stores by the producer: for adoptBatch)
const HEADER_INTS = 16; // 64 bytes: the header fills one cache line
const HEADER_BYTES = HEADER_INTS * 4;
/** Where the data area begins in a ring's SharedArrayBuffer (a multiple of 8: records of whole Float64 words stay aligned). */
export const RING_DATA_OFFSET = HEADER_BYTES;

// Atomics.waitAsync is in Node 20 (V8) but not in TypeScript's ES2022 lib.
type WaitAsyncResult = { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
const waitAsync = (Atomics as unknown as {
  waitAsync(ta: Int32Array, index: number, value: number, timeoutMs: number): WaitAsyncResult;
}).waitAsync.bind(Atomics);

/** Longest single park while the ring is full, before re-checking. */
const FULL_WAIT_SLICE_MS = 5;

export const MIN_RING_BYTES = 4096;
export const MAX_RING_BYTES = 2 ** 30;

/** Round a requested ring size to the power of two the ring uses. */
export function ringCapacity(bytes: number): number {
  assert(Number.isSafeInteger(bytes) && bytes >= MIN_RING_BYTES && bytes <= MAX_RING_BYTES, `log ring size ${bytes} out of range`);
  return 2 ** Math.ceil(Math.log2(bytes));
}

/** Allocate the shared memory of one ring. */
export function createRingBuffer(bytes: number): SharedArrayBuffer {
  const capacity = ringCapacity(bytes);
  const sab = new SharedArrayBuffer(HEADER_BYTES + capacity);
  const hdr = new Int32Array(sab, 0, HEADER_INTS);
  hdr[CAPACITY] = capacity;
  const base = Math.floor(wallMs()); // the clock of the records' time (time.ts)
  hdr[BASE_HI] = Math.floor(base / 2 ** 24);
  hdr[BASE_LO] = base % 2 ** 24;
  return sab;
}

/** Counters of one ring, read without stopping either side. */
export interface RingStats {
  capacity: number;
  used: number;
  lines: number;
  dropped: number;
  fullWaits: number;
  closed: boolean;
}

function ringBase(hdr: Int32Array): number {
  return hdr[BASE_HI]! * 2 ** 24 + hdr[BASE_LO]!;
}

function views(sab: SharedArrayBuffer): { hdr: Int32Array; data: Uint8Array; capacity: number } {
  const hdr = new Int32Array(sab, 0, HEADER_INTS);
  const capacity = hdr[CAPACITY]!;
  assert(capacity >= MIN_RING_BYTES && (capacity & (capacity - 1)) === 0 && sab.byteLength === HEADER_BYTES + capacity, 'not a log ring');
  return { hdr, data: new Uint8Array(sab, HEADER_BYTES, capacity), capacity };
}

export function ringStats(sab: SharedArrayBuffer): RingStats {
  const { hdr, capacity } = views(sab);
  return {
    capacity,
    used: (Atomics.load(hdr, HEAD) - Atomics.load(hdr, TAIL)) | 0,
    lines: Atomics.load(hdr, LINES),
    dropped: Atomics.load(hdr, DROPPED),
    fullWaits: Atomics.load(hdr, FULL_WAITS),
    closed: Atomics.load(hdr, CLOSED) === 1,
  };
}

/** The producer's end. Owned by one thread. */
export class RingWriter {
  private readonly hdr: Int32Array;
  private readonly data: Uint8Array;
  private readonly capacity: number;
  private readonly mask: number;
  /** The data area as a Buffer, for Buffer#write's native UTF-8 encoder. */
  private readonly view: Buffer;
  private readonly encoder = new TextEncoder();
  private scratch = new Uint8Array(4096);
  private lines = 0;
  private readonly base: number;
  /** Batched records: bytes committed past HEAD and not yet published, the records among them, and tail as last read. */
  private batchBytes = 0;
  private batchRecords = 0;
  private tailSeen = 0;

  /** publishEvery: records commit() gathers before it publishes them (1: each at once). */
  constructor(sab: SharedArrayBuffer, private readonly fullWaitMs: number, private readonly publishEvery = 1) {
    const v = views(sab);
    this.hdr = v.hdr;
    this.data = v.data;
    this.capacity = v.capacity;
    this.mask = v.capacity - 1;
    this.view = Buffer.from(sab, HEADER_BYTES, v.capacity);
    this.base = ringBase(v.hdr);
    // Single producer: a second writer would interleave bytes inside lines.
    assert(Atomics.compareExchange(this.hdr, PRODUCER, 0, 1) === 0, 'log channel is already attached to a worker logger; create one channel per worker');
  }

  /**
   * A record is about to be stamped (call before its time is taken): until end(), the consumer holds
   * back lines stamped after now, since this one may belong before them.
   */
  begin(): void {
    Atomics.store(this.hdr, STAMPING, 1 + Math.floor(wallMs()) - this.base);
  }

  /** The record is published (or dropped). */
  end(): void {
    Atomics.store(this.hdr, STAMPING, 0);
  }

  /** Append a string (normally one finished NDJSON line). Returns false if it was dropped. */
  write(s: string): boolean {
    if (this.batchBytes !== 0) this.flush();
    // Fast path: UTF-8 needs at most 3 bytes per UTF-16 unit, so when that much room is free and
    // contiguous, encode straight into the ring (no scratch copy), then publish.
    const head = this.hdr[HEAD]!; // only this thread writes head
    const pos = head & this.mask;
    const worst = s.length * 3;
    if (pos + worst <= this.capacity && worst <= this.capacity - ((head - Atomics.load(this.hdr, TAIL)) | 0)) {
      const n = this.view.write(s, pos, 'utf8');
      Atomics.store(this.hdr, HEAD, (head + n) | 0);
      this.hdr[COMMITTED] = (head + n) | 0;
      Atomics.store(this.hdr, LINES, ++this.lines);
      return true;
    }
    let r = this.encoder.encodeInto(s, this.scratch);
    if (r.read! < s.length) {
      this.scratch = new Uint8Array(Math.max(worst, this.scratch.length * 2));
      r = this.encoder.encodeInto(s, this.scratch);
    }
    return this.publish(this.scratch.subarray(0, r.written!));
  }

  /**
   * Room for `n` bytes, contiguous, after every byte reserved so far: the data-area byte position to
   * write them at, or -1 (then writeBytes, which waits or wraps). commit(n) makes them a record.
   */
  reserve(n: number): number {
    const at = (this.hdr[HEAD]! + this.batchBytes) | 0; // only this thread writes head
    const pos = at & this.mask;
    if (pos + n > this.capacity) return -1;
    if (n > this.capacity - ((at - this.tailSeen) | 0)) {
      this.tailSeen = Atomics.load(this.hdr, TAIL);
      if (n > this.capacity - ((at - this.tailSeen) | 0)) return -1;
    }
    return pos;
  }

  /** The `n` bytes written at reserve()'s position are one record; published with its batch. */
  commit(n: number): void {
    this.batchBytes += n;
    this.hdr[COMMITTED] = (this.hdr[HEAD]! + this.batchBytes) | 0;
    if (++this.batchRecords >= this.publishEvery) this.flush();
  }

  /** Publish every committed record (one store of head). */
  flush(): void {
    if (this.batchRecords === 0) return;
    Atomics.store(this.hdr, HEAD, (this.hdr[HEAD]! + this.batchBytes) | 0);
    this.lines += this.batchRecords;
    Atomics.store(this.hdr, LINES, this.lines);
    this.batchBytes = 0;
    this.batchRecords = 0;
  }

  /**
   * Append `n` bytes of `bytes` as one record (the DMA trace writer's binary records), after the
   * batch. Returns false if it was dropped; a dropped record adds `weight` to the dropped count (the
   * trace counts events, and a record may hold 0, 1 or 2).
   */
  writeBytes(bytes: Uint8Array, n: number, weight = 1): boolean {
    if (this.batchBytes !== 0) this.flush();
    const ok = this.append(bytes, n, weight);
    this.tailSeen = Atomics.load(this.hdr, TAIL);
    return ok;
  }

  private append(bytes: Uint8Array, n: number, weight: number): boolean {
    const head = this.hdr[HEAD]!; // only this thread writes head
    const pos = head & this.mask;
    if (pos + n <= this.capacity && n <= this.capacity - ((head - Atomics.load(this.hdr, TAIL)) | 0)) {
      this.data.set(bytes.subarray(0, n), pos);
      Atomics.store(this.hdr, HEAD, (head + n) | 0);
      this.hdr[COMMITTED] = (head + n) | 0;
      Atomics.store(this.hdr, LINES, ++this.lines);
      return true;
    }
    return this.publish(bytes.subarray(0, n), weight);
  }

  private publish(bytes: Uint8Array, weight = 1): boolean {
    let off = 0;
    while (off < bytes.length) {
      const n = Math.min(bytes.length - off, this.capacity);
      if (!this.waitForRoom(n)) {
        Atomics.add(this.hdr, DROPPED, weight);
        return false;
      }
      const head = this.hdr[HEAD]!; // only this thread writes head
      const pos = head & this.mask;
      const first = Math.min(n, this.capacity - pos);
      this.data.set(bytes.subarray(off, off + first), pos);
      if (first < n) this.data.set(bytes.subarray(off + first, off + n), 0);
      Atomics.store(this.hdr, HEAD, (head + n) | 0);
      this.hdr[COMMITTED] = (head + n) | 0;
      off += n;
    }
    Atomics.store(this.hdr, LINES, ++this.lines);
    return true;
  }

  /** Wait (bounded) until n bytes are free. */
  private waitForRoom(n: number): boolean {
    let tail = Atomics.load(this.hdr, TAIL);
    if (this.capacity - ((this.hdr[HEAD]! - tail) | 0) >= n) return true;
    Atomics.add(this.hdr, FULL_WAITS, 1);
    const deadline = performance.now() + this.fullWaitMs;
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0) return false;
      Atomics.wait(this.hdr, TAIL, tail, Math.min(FULL_WAIT_SLICE_MS, left));
      tail = Atomics.load(this.hdr, TAIL);
      if (this.capacity - ((this.hdr[HEAD]! - tail) | 0) >= n) return true;
    }
  }

  /** Resolves once the consumer has taken everything published so far (or after timeoutMs). */
  async drained(timeoutMs: number): Promise<boolean> {
    const head = Atomics.load(this.hdr, HEAD);
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const tail = Atomics.load(this.hdr, TAIL);
      if (((head - tail) | 0) <= 0) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      const slice = Math.min(50, left);
      const w = waitAsync(this.hdr, TAIL, tail, slice);
      if (w.async) {
        // The promise of Atomics.waitAsync does not keep a thread's event loop alive; a timer does.
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([w.value, new Promise<void>((resolve) => { timer = setTimeout(resolve, slice); })]);
        clearTimeout(timer);
      }
    }
  }

  /** Mark the ring closed: the consumer drains it one last time and forgets it. */
  close(): void {
    this.flush();
    Atomics.store(this.hdr, CLOSED, 1);
  }
}

/** The consumer's end. Owned by the main thread. */
export class RingReader {
  private readonly hdr: Int32Array;
  private readonly data: Uint8Array;
  readonly capacity: number;
  private readonly mask: number;
  private droppedSeen = 0;

  constructor(readonly sab: SharedArrayBuffer) {
    const v = views(sab);
    this.hdr = v.hdr;
    this.data = v.data;
    this.capacity = v.capacity;
    this.mask = v.capacity - 1;
  }

  /**
   * The clock time (ms) at which the producer began the record it is writing, or Infinity when it is
   * writing none. Read before drain(): a record not drained is then stamped no earlier than this.
   */
  stampingSince(): number {
    const v = Atomics.load(this.hdr, STAMPING);
    return v === 0 ? Infinity : ringBase(this.hdr) + v - 1;
  }

  /** Bytes waiting to be drained. */
  pending(): number {
    return (Atomics.load(this.hdr, HEAD) - this.hdr[TAIL]!) | 0;
  }

  /**
   * Copy out every published byte (whole lines) into fresh memory, free the space, and wake the
   * producer if it waits for room. Returns undefined when there is nothing.
   */
  drain(): Uint8Array | undefined {
    const head = Atomics.load(this.hdr, HEAD);
    const tail = this.hdr[TAIL]!; // only this thread writes tail
    const n = (head - tail) | 0;
    if (n === 0) return undefined;
    assert(n > 0 && n <= this.capacity, `log ring corrupt: ${n} bytes pending in ${this.capacity}`);
    const pos = tail & this.mask;
    const first = Math.min(n, this.capacity - pos);
    const out = new Uint8Array(n);
    out.set(this.data.subarray(pos, pos + first), 0);
    if (first < n) out.set(this.data.subarray(0, n - first), first);
    Atomics.store(this.hdr, TAIL, head);
    Atomics.notify(this.hdr, TAIL);
    return out;
  }

  /**
   * Hand every published byte to `sink` as views of the ring itself (one, or two where they wrap),
   * then free the space and wake the producer: drain() without the copy, for a sink that is done with
   * the bytes when it returns (a synchronous file write). Returns the bytes taken.
   */
  drainTo(sink: (bytes: Uint8Array) => void): number {
    const head = Atomics.load(this.hdr, HEAD);
    const tail = this.hdr[TAIL]!; // only this thread writes tail
    const n = (head - tail) | 0;
    if (n === 0) return 0;
    assert(n > 0 && n <= this.capacity, `log ring corrupt: ${n} bytes pending in ${this.capacity}`);
    const pos = tail & this.mask;
    const first = Math.min(n, this.capacity - pos);
    sink(this.data.subarray(pos, pos + first));
    if (first < n) sink(this.data.subarray(0, n - first));
    Atomics.store(this.hdr, TAIL, head);
    Atomics.notify(this.hdr, TAIL);
    return n;
  }

  /**
   * Publish, on the producer's behalf, the records it committed and never published: only once its
   * thread has ended without closing the ring (a closed ring published everything). Returns the bytes
   * adopted (whole records: commit() moves COMMITTED only past a finished record).
   */
  adoptBatch(): number {
    if (this.closed()) return 0;
    const head = Atomics.load(this.hdr, HEAD);
    const committed = this.hdr[COMMITTED]!;
    const n = (committed - head) | 0;
    if (n <= 0) return 0;
    assert(n <= this.capacity - ((head - this.hdr[TAIL]!) | 0), `log ring corrupt: a batch of ${n} bytes past head in ${this.capacity}`);
    Atomics.store(this.hdr, HEAD, committed);
    return n;
  }

  /** Lines dropped since the last call (for log_overflow records). */
  takeDropped(): number {
    const d = Atomics.load(this.hdr, DROPPED);
    const delta = d - this.droppedSeen;
    this.droppedSeen = d;
    return delta;
  }

  closed(): boolean {
    return Atomics.load(this.hdr, CLOSED) === 1;
  }
}
