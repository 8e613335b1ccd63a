// The device's backing store: reads return what was written and zeros elsewhere, whatever mix of
// written and never-written pages a range spans, without reading the never-written pages.
import { describe, expect, it } from 'vitest';
import { BackingStore } from '../../src/devices/store.js';
import { CopyRegion } from '../../src/memory/copy.js';
import { PAGE_SIZE } from '../../src/swiotlb/constants.js';

const pattern = (n: number, seed: number): CopyRegion => {
  const r = new CopyRegion(new Uint8Array(new SharedArrayBuffer(n)));
  for (let i = 0; i < n; i++) r.bytes[i] = (i * 7 + seed) & 0xff || 1;
  return r;
};
/** A destination of `n` shared bytes (as the bounce buffers are), filled with `v`. */
const shared = (n: number, v: number): CopyRegion => {
  const r = new CopyRegion(new Uint8Array(new SharedArrayBuffer(n)));
  r.bytes.fill(v);
  return r;
};

describe('BackingStore', () => {
  it('reads zeros where nothing was written, and overwrites stale bytes in the destination', () => {
    const s = new BackingStore(4 * PAGE_SIZE);
    const dst = shared(3 * PAGE_SIZE, 0xee);
    s.read(dst, 100, 512, 2 * PAGE_SIZE);
    expect(dst.bytes.subarray(100, 100 + 2 * PAGE_SIZE).every((b) => b === 0)).toBe(true);
    expect(dst.bytes[99]).toBe(0xee);
    expect(dst.bytes[100 + 2 * PAGE_SIZE]).toBe(0xee);
  });

  it('returns written bytes across written and never-written pages, partial pages included', () => {
    const s = new BackingStore(8 * PAGE_SIZE);
    const a = pattern(PAGE_SIZE + 1000, 3); // pages 1 and 2, page 2 only in part
    s.write(a, 0, PAGE_SIZE + 24, a.bytes.length);
    const b = pattern(512, 9); // page 5, in part
    s.write(b, 0, 5 * PAGE_SIZE + 512, b.bytes.length);
    const expected = new Uint8Array(8 * PAGE_SIZE);
    expected.set(a.bytes, PAGE_SIZE + 24);
    expected.set(b.bytes, 5 * PAGE_SIZE + 512);
    // Every alignment of start and length over the store, against the model.
    for (const off of [0, 1, PAGE_SIZE - 1, PAGE_SIZE, PAGE_SIZE + 24, 2 * PAGE_SIZE + 7, 4 * PAGE_SIZE, 5 * PAGE_SIZE + 600]) {
      for (const len of [1, 511, PAGE_SIZE, 2 * PAGE_SIZE + 3, 8 * PAGE_SIZE - off]) {
        if (!s.fits(off, len)) continue;
        const dst = shared(len + 2, 0xee);
        s.read(dst, 1, off, len);
        expect(Array.from(dst.bytes.subarray(1, 1 + len))).toEqual(Array.from(expected.subarray(off, off + len)));
        expect([dst.bytes[0], dst.bytes[len + 1]]).toEqual([0xee, 0xee]);
      }
    }
  });

  it('says which ranges fit', () => {
    const s = new BackingStore(2 * PAGE_SIZE);
    expect(s.fits(0, 2 * PAGE_SIZE)).toBe(true);
    expect(s.fits(1, 2 * PAGE_SIZE)).toBe(false);
    expect(s.fits(-1, 1)).toBe(false);
  });
});
