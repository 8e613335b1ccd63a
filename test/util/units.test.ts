// formatSizeExact: the job-file form parseSize reads back to the same byte count.
import { describe, expect, it } from 'vitest';
import { formatSizeExact, parseSize } from '../../src/util/units.js';

describe('formatSizeExact', () => {
  it('uses the largest binary suffix that divides the count, else bytes', () => {
    expect(formatSizeExact(4096)).toBe('4k');
    expect(formatSizeExact(65536)).toBe('64k');
    expect(formatSizeExact(1024 * 1024)).toBe('1m');
    expect(formatSizeExact(3 * 1024 ** 3)).toBe('3g');
    expect(formatSizeExact(2 * 1024 ** 4)).toBe('2t');
    // Not a multiple of 1 KiB: plain bytes, never a rounded "1.5KiB" (which would read as 1536).
    expect(formatSizeExact(1500)).toBe('1500');
    expect(formatSizeExact(1536)).toBe('1536');
    expect(formatSizeExact(512)).toBe('512');
  });

  it('reads back through parseSize to the same count', () => {
    for (const n of [1, 512, 1500, 4096, 6144, 1048577, 5 * 1024 ** 3]) expect(parseSize(formatSizeExact(n), 'x')).toBe(n);
  });
});
