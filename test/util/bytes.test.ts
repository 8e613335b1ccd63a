// fillBytes gives the bytes a plain fill gives, whatever the view's offset in its buffer, the range's
// alignment and the value (0x80 and above make a negative word).
import { describe, expect, it } from 'vitest';
import { fillBytes } from '../../src/util/bytes.js';

describe('fillBytes', () => {
  it('matches Uint8Array.fill over offsets, lengths and values', () => {
    const sab = new SharedArrayBuffer(1024);
    for (const viewOff of [0, 1, 3, 4]) {
      const a = new Uint8Array(sab, viewOff, 1000);
      const ref = new Uint8Array(1000);
      for (const [start, end] of [[0, 1000], [1, 999], [3, 70], [5, 5], [7, 63], [64, 200], [2, 130]] as const) {
        for (const value of [0, 0x5a, 0x80, 0xff, 0x1ff]) {
          new Uint8Array(sab).fill(0);
          a.fill(0x11);
          ref.fill(0x11);
          fillBytes(a, value, start, end);
          ref.fill(value, start, end);
          expect(Array.from(a)).toEqual(Array.from(ref));
          // Nothing outside the view.
          const all = new Uint8Array(sab);
          expect([...all.subarray(0, viewOff), ...all.subarray(viewOff + 1000)].every((b) => b === 0)).toBe(true);
        }
      }
    }
  });
});
