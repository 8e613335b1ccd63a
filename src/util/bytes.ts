// Filling bytes of shared memory. Uint8Array.prototype.fill on a SharedArrayBuffer stores one byte at
// a time (V8 keeps each store atomic for racing readers): 2.7 us for 4 KiB on a 2-core host, where
// an Int32Array fill of the same bytes takes 0.7 us. fillBytes fills the whole words of a range
// through an Int32Array view of the same buffer and only the ragged ends byte by byte.

/** Below this many bytes the plain fill is as cheap. */
const WORD_FILL_MIN = 64;
const words = new WeakMap<ArrayBufferLike, Int32Array>();

function wordsOf(buffer: ArrayBufferLike): Int32Array {
  let w = words.get(buffer);
  if (w === undefined) {
    w = new Int32Array(buffer, 0, Math.floor(buffer.byteLength / 4));
    words.set(buffer, w);
  }
  return w;
}

/** bytes.fill(value, start, end), by words where it can (same result). */
export function fillBytes(bytes: Uint8Array, value: number, start: number, end: number): void {
  if (end - start < WORD_FILL_MIN) {
    bytes.fill(value, start, end);
    return;
  }
  // Word boundaries in the buffer (the view may start anywhere in it); offsets reach GiBs: no shifts.
  const base = bytes.byteOffset;
  const lo = Math.ceil((base + start) / 4) * 4 - base;
  const hi = Math.floor((base + end) / 4) * 4 - base;
  const v = value & 0xff;
  bytes.fill(v, start, lo);
  wordsOf(bytes.buffer).fill(Math.imul(v, 0x01010101), (base + lo) / 4, (base + hi) / 4);
  bytes.fill(v, hi, end);
}
