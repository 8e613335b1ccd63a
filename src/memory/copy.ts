// The one bounce copy: every copy between private memory and the bounce buffers (swiotlb_bounce,
// mem.ts) and between the bounce buffers and a device's own store (devices/device.ts) goes through
// copyBytes. Two paths, chosen once per thread when this module loads:
//   memcpy  the project's Node-API addon (native/bounce-copy.c, built by `npm ci` into
//           build/Release/bounce_copy.node): the C library's memmove;
//   set     TypedArray.prototype.set, when the addon is absent (it did not build) or
//           COCO_BOUNCE_COPY=set. V8 copies into and out of a SharedArrayBuffer with a
//           word-at-a-time relaxed-atomic loop, 2-3x slower than memmove for 4 KiB (README, Benchmarks).
// Either path copies the same bytes and rejects the same ranges. Nothing here changes what a thread
// can reach: a region is a view the thread already holds (a device thread is never given private
// memory, so it can never name it).
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { configValue, envOrigin } from '../config.js';
import { InputError } from '../errors.js';
import { projectRoot } from '../util/worker-file.js';

interface BounceCopyAddon {
  set_args(block: Float64Array): void;
  register(bytes: Uint8Array, sab: SharedArrayBuffer): number;
  /** Copies as the argument block says (ARG_*). */
  copy(): void;
  /** The same copy `times` times in one call. */
  memmove_loop(times: number): void;
}

// The addon's argument block (bounce-copy.c): copy() takes its operands from it, as reading call
// arguments through Node-API costs more than the 4 KiB memmove. One per thread, never shared.
const ARG_DST_ID = 0;
const ARG_DST_OFF = 1;
const ARG_SRC_ID = 2;
const ARG_SRC_OFF = 3;
const ARG_LEN = 4;
const ARGS = 5;
const args = new Float64Array(new SharedArrayBuffer(ARGS * 8));

/** Where `npm ci` (binding.gyp) puts the addon. */
export const BOUNCE_COPY_ADDON = join('build', 'Release', 'bounce_copy.node');

/** Which copy path this thread runs, and why when it is not memcpy. */
export interface CopyPath {
  kind: 'memcpy' | 'set';
  /** One line: what ran, and for `set` the reason. */
  what: string;
}

/** COCO_BOUNCE_COPY, validated. */
export function bounceCopySetting(): CopyPath['kind'] {
  const want = configValue('COCO_BOUNCE_COPY');
  if (want !== 'memcpy' && want !== 'set') {
    throw new InputError('ECONFIG', `${envOrigin('COCO_BOUNCE_COPY')}: "${want}" is not valid; expected memcpy or set`);
  }
  return want;
}

function loadAddon(): { addon: BounceCopyAddon | null; path: CopyPath; bad?: InputError } {
  let want: CopyPath['kind'];
  try {
    want = bounceCopySetting();
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    // Thrown by the first CopyRegion, inside the tool's main (a one-line error), not at import.
    return { addon: null, path: { kind: 'set', what: 'none (COCO_BOUNCE_COPY is not valid)' }, bad: e };
  }
  if (want === 'set') return { addon: null, path: { kind: 'set', what: 'TypedArray.set (COCO_BOUNCE_COPY=set)' } };
  const file = join(projectRoot(), BOUNCE_COPY_ADDON);
  try {
    const addon = createRequire(join(projectRoot(), 'package.json'))(file) as BounceCopyAddon;
    addon.set_args(args);
    return { addon, path: { kind: 'memcpy', what: `memcpy (Node-API addon ${BOUNCE_COPY_ADDON})` } };
  } catch (e) {
    const why = e instanceof Error ? e.message.split('\n')[0]! : String(e);
    return { addon: null, path: { kind: 'set', what: `TypedArray.set (the addon did not load: ${why}; see the README's Set-up)` } };
  }
}

const loaded = loadAddon();
const addon = loaded.addon;

/** The copy path of this thread (every thread decides the same way, from the same files and settings). */
export const copyPath: CopyPath = loaded.path;

/** Ids of the SharedArrayBuffers this thread registered with the addon (the addon frees an id when its buffer is collected). */
const ids = new WeakMap<SharedArrayBuffer, number>();

/**
 * Bytes a copy can name: a view over shared memory this thread holds, registered once with the addon
 * (by its SharedArrayBuffer, so many views over one arena share an id). Holding the region holds
 * the buffer, which keeps the addon's id valid.
 */
export class CopyRegion {
  /** The addon's id of the view's buffer; -1 on the set path or for memory that is not shared. */
  readonly id: number;
  /** The view's byte offset in its buffer. */
  readonly base: number;
  readonly length: number;

  constructor(readonly bytes: Uint8Array) {
    if (loaded.bad !== undefined) throw loaded.bad;
    this.base = bytes.byteOffset;
    this.length = bytes.length;
    const sab = bytes.buffer;
    if (addon === null || !(sab instanceof SharedArrayBuffer)) {
      this.id = -1;
      return;
    }
    let id = ids.get(sab);
    if (id === undefined) {
      id = addon.register(new Uint8Array(sab), sab);
      ids.set(sab, id);
    }
    this.id = id;
  }
}

function outOfRange(dst: CopyRegion, dstOff: number, src: CopyRegion, srcOff: number, len: number): RangeError {
  return new RangeError(`copy of ${len} bytes from offset ${srcOff} of ${src.length} to offset ${dstOff} of ${dst.length}: outside a region`);
}

function inRange(dst: CopyRegion, dstOff: number, src: CopyRegion, srcOff: number, len: number): boolean {
  return len >= 0 && dstOff >= 0 && srcOff >= 0 && dstOff + len <= dst.length && srcOff + len <= src.length;
}

/** The set path: TypedArray.prototype.set of a subarray. Exported for the bench's comparison row only. */
export function copyBytesSet(dst: CopyRegion, dstOff: number, src: CopyRegion, srcOff: number, len: number): void {
  if (!inRange(dst, dstOff, src, srcOff, len)) throw outOfRange(dst, dstOff, src, srcOff, len);
  dst.bytes.set(src.bytes.subarray(srcOff, srcOff + len), dstOff);
}

function setArgs(dst: CopyRegion, dstOff: number, src: CopyRegion, srcOff: number, len: number): void {
  args[ARG_DST_ID] = dst.id;
  args[ARG_DST_OFF] = dst.base + dstOff;
  args[ARG_SRC_ID] = src.id;
  args[ARG_SRC_OFF] = src.base + srcOff;
  args[ARG_LEN] = len;
}

function copyBytesMemcpy(dst: CopyRegion, dstOff: number, src: CopyRegion, srcOff: number, len: number): void {
  if (!inRange(dst, dstOff, src, srcOff, len)) throw outOfRange(dst, dstOff, src, srcOff, len);
  if ((dst.id | src.id) < 0) dst.bytes.set(src.bytes.subarray(srcOff, srcOff + len), dstOff);
  else {
    setArgs(dst, dstOff, src, srcOff, len);
    addon!.copy();
  }
}

/**
 * Copy `len` bytes from offset `srcOff` of `src` to offset `dstOff` of `dst` (overlap allowed, as
 * memmove). A range outside its region is a RangeError and copies nothing.
 */
export const copyBytes: (dst: CopyRegion, dstOff: number, src: CopyRegion, srcOff: number, len: number) => void =
  addon === null ? copyBytesSet : copyBytesMemcpy;

/**
 * The bench's native reference: the memmove copyBytes would make, `times` times inside one call to
 * the addon (no JavaScript between copies). False, and nothing copied, without the addon.
 */
export function memmoveLoop(dst: CopyRegion, dstOff: number, src: CopyRegion, srcOff: number, len: number, times: number): boolean {
  if (addon === null || (dst.id | src.id) < 0) return false;
  if (!inRange(dst, dstOff, src, srcOff, len)) throw outOfRange(dst, dstOff, src, srcOff, len);
  setArgs(dst, dstOff, src, srcOff, len);
  addon.memmove_loop(times);
  return true;
}
