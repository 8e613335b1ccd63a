// The bounded queue that feeds one replaying vCPU: a single-producer (the main thread's feeder),
// single-consumer (the vCPU thread) ring of Float64 words in a SharedArrayBuffer, holding replay
// operations in trace order. A trace of any length streams through it: the feeder waits for room
// (backpressure), so memory is the ring's fixed size whatever the trace's.
//
// Layout (this module's own region; sizes fixed at creation):
//   Int32 header, HEADER_INTS words (64 bytes):
//     R_HEAD       words ever published by the producer (wrapping int32)
//     R_TAIL       words ever consumed (wrapping int32)
//     R_ENDED      1 once the producer has published its last record
//     R_FULL_WAITS times the producer found the ring full and waited
//   Float64 data, `capacity` words (a power of two, at most 2^26): records.
//
// A record is REC_HEADER words [op, id, device, dir, attrs, t_us, n] followed by n (size, offset)
// pairs (maps; n = 0 for an unmap): 7 + 2n words, at most 7 + 2 * DMA_TRACE_MAX_ENTRIES.
//
// Protocol and invariants: the producer writes a whole record into free words and only then
// publishes it with Atomics.store(R_HEAD); the consumer reads [tail, head) and frees words with
// Atomics.store(R_TAIL) and a notify. (head - tail) | 0 is the fill, 0..capacity. The producer
// never writes a published, unconsumed word; the consumer may overwrite the op word of a published
// record it has not consumed yet with OP_DONE (an unmap it performed early, while a map waited:
// replay-vcpu.ts), which the producer never reads.
import { assert } from '../errors.js';
import { DMA_TRACE_MAX_ENTRIES } from './tracefs.js';

const R_HEAD = 0;
const R_TAIL = 1;
const R_ENDED = 2;
const R_FULL_WAITS = 3;
const HEADER_INTS = 16;
const HEADER_BYTES = HEADER_INTS * 4;

/** Words of a record's fixed part. */
export const REC_HEADER = 7;
export const REC_OP = 0;
export const REC_ID = 1;
export const REC_DEV = 2;
export const REC_DIR = 3;
export const REC_ATTRS = 4;
export const REC_T_US = 5;
export const REC_N = 6;

/** Record kinds. */
export const OP_MAP = 1;
export const OP_MAP_SG = 2;
export const OP_UNMAP = 3;
/** An unmap already performed out of order (see above): skipped when reached. */
export const OP_DONE = 4;

export const MAX_RECORD_WORDS = REC_HEADER + 2 * DMA_TRACE_MAX_ENTRIES;
export const DEFAULT_RING_WORDS = 1 << 15; // 256 KiB per vCPU

const waitAsync = (Atomics as unknown as {
  waitAsync(ta: Int32Array, index: number, value: number, timeoutMs: number): { async: false; value: string } | { async: true; value: Promise<string> };
}).waitAsync.bind(Atomics);

export function createReplayRing(words = DEFAULT_RING_WORDS): SharedArrayBuffer {
  assert(Number.isInteger(Math.log2(words)) && words >= 2 * MAX_RECORD_WORDS && words <= 2 ** 26, `replay ring of ${words} words`);
  return new SharedArrayBuffer(HEADER_BYTES + words * 8);
}

function views(sab: SharedArrayBuffer): { hdr: Int32Array; data: Float64Array; mask: number } {
  const capacity = (sab.byteLength - HEADER_BYTES) / 8;
  assert(Number.isInteger(Math.log2(capacity)), 'not a replay ring');
  return { hdr: new Int32Array(sab, 0, HEADER_INTS), data: new Float64Array(sab, HEADER_BYTES, capacity), mask: capacity - 1 };
}

/** The feeder's end (main thread). */
export class ReplayRingWriter {
  private readonly hdr: Int32Array;
  private readonly data: Float64Array;
  private readonly mask: number;
  readonly capacity: number;

  constructor(sab: SharedArrayBuffer) {
    const v = views(sab);
    this.hdr = v.hdr;
    this.data = v.data;
    this.mask = v.mask;
    this.capacity = v.mask + 1;
  }

  private free(): number {
    return this.capacity - ((this.hdr[R_HEAD]! - Atomics.load(this.hdr, R_TAIL)) | 0);
  }

  /** Publish one record (its words in `rec`, `len` of them) if it fits; false when the ring is full. */
  tryPush(rec: Float64Array | number[], len: number): boolean {
    assert(len >= REC_HEADER && len <= MAX_RECORD_WORDS, `replay record of ${len} words`);
    if (this.free() < len) return false;
    const head = this.hdr[R_HEAD]!; // only this thread writes head
    for (let i = 0; i < len; i++) this.data[(head + i) & this.mask] = rec[i]!;
    Atomics.store(this.hdr, R_HEAD, (head + len) | 0);
    Atomics.notify(this.hdr, R_HEAD);
    return true;
  }

  /** Resolves when words may have been freed, or after `timeoutMs` (the caller re-checks). */
  async waitForRoom(timeoutMs: number): Promise<void> {
    Atomics.add(this.hdr, R_FULL_WAITS, 1);
    const tail = Atomics.load(this.hdr, R_TAIL);
    const w = waitAsync(this.hdr, R_TAIL, tail, timeoutMs);
    if (!w.async) return;
    // A waitAsync promise does not keep the event loop alive on its own: a timer does.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([w.value, new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs); })]);
    clearTimeout(timer);
  }

  /** No more records. */
  end(): void {
    Atomics.store(this.hdr, R_ENDED, 1);
    Atomics.notify(this.hdr, R_HEAD);
  }

  fullWaits(): number {
    return Atomics.load(this.hdr, R_FULL_WAITS);
  }
}

/** The vCPU's end. */
export class ReplayRingReader {
  readonly data: Float64Array;
  private readonly hdr: Int32Array;
  readonly mask: number;

  constructor(sab: SharedArrayBuffer) {
    const v = views(sab);
    this.hdr = v.hdr;
    this.data = v.data;
    this.mask = v.mask;
  }

  /** Position of the oldest unconsumed word (a wrapping counter: index data with `& mask`). */
  tail(): number {
    return this.hdr[R_TAIL]!; // only this thread writes tail
  }

  /** Words published and not consumed. */
  available(): number {
    return (Atomics.load(this.hdr, R_HEAD) - this.hdr[R_TAIL]!) | 0;
  }

  /** Word `i` of the record at position `pos`. */
  word(pos: number, i: number): number {
    return this.data[(pos + i) & this.mask]!;
  }

  /** Mark the record at `pos` as done (it is skipped when reached). */
  markDone(pos: number): void {
    this.data[pos & this.mask] = OP_DONE;
  }

  /** Free the record at the tail (`len` words) and wake a waiting feeder. */
  consume(len: number): void {
    Atomics.store(this.hdr, R_TAIL, (this.hdr[R_TAIL]! + len) | 0);
    Atomics.notify(this.hdr, R_TAIL);
  }

  ended(): boolean {
    return Atomics.load(this.hdr, R_ENDED) === 1;
  }

  /** Park until something is published or the ring ends, at most `ms` (wall). */
  waitForData(ms: number): void {
    const head = Atomics.load(this.hdr, R_HEAD);
    if (((head - this.hdr[R_TAIL]!) | 0) > 0 || this.ended()) return;
    Atomics.wait(this.hdr, R_HEAD, head, ms);
  }
}

/** Words of the record at `pos`. */
export function recordWords(r: ReplayRingReader, pos: number): number {
  return REC_HEADER + 2 * r.word(pos, REC_N);
}
