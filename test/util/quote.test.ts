// quote() and printable(): user text in error and warning lines. Expected strings are written out
// by hand from the escaping rules in src/util/quote.ts (C0/C1 controls as \xNN, other Unicode
// "other" characters as \uNNNN, the cap counted in escaped characters, the length in UTF-8 bytes).
import { describe, it, expect } from 'vitest';
import { USER_TEXT_MAX, hasControlCharacters, printable, quote } from '../../src/util/quote.js';

describe('quote', () => {
  it('leaves printable text alone, in double quotes', () => {
    expect(quote('4k')).toBe('"4k"');
    expect(quote('héllo wörld')).toBe('"héllo wörld"');
    expect(quote('')).toBe('""');
  });

  it('escapes CR, LF, tab, ESC, NUL, DEL, C1 controls, backslash and the quote', () => {
    expect(quote('a\rb')).toBe('"a\\rb"');
    expect(quote('a\nb\tc')).toBe('"a\\nb\\tc"');
    expect(quote('\x1b[2J')).toBe('"\\x1b[2J"');
    expect(quote('\x00\x7f\x9b')).toBe('"\\x00\\x7f\\x9b"');
    expect(quote('a\\b"c')).toBe('"a\\\\b\\"c"');
  });

  it('escapes bidi overrides, line separators, lone surrogates and U+FFFD (an invalid UTF-8 byte)', () => {
    expect(quote('a\u202eb')).toBe('"a\\u202eb"');
    expect(quote('\u2028')).toBe('"\\u2028"');
    expect(quote('\ud800')).toBe('"\\ud800"');
    // A binary byte read as UTF-8: 0xff decodes to U+FFFD.
    expect(quote(Buffer.from([0x41, 0xff]).toString('utf8'))).toBe('"A\\ufffd"');
    // A surrogate pair is one printable character, kept whole.
    expect(quote('\u{1F600}')).toBe('"\u{1F600}"');
  });

  it('caps a long text with "..." and its length in bytes, never cutting an escape', () => {
    const big = 'abc\x1b' + 'x'.repeat(1024 * 1024 - 4);
    // 'abc' (3) + '\x1b' (4) = 7 escaped characters; the next 'x' would make 8 > 7.
    expect(quote(big, 7)).toBe('"abc\\x1b..."(1048576 bytes)');
    // With a cap of 5 the 4-character escape does not fit after 'abc'.
    expect(quote(big, 5)).toBe('"abc..."(1048576 bytes)');
    const line = quote(big);
    expect(line.length).toBeLessThan(USER_TEXT_MAX + 30);
    expect(line.endsWith('..."(1048576 bytes)')).toBe(true);
    // Bytes are UTF-8 bytes: 'é' is two.
    expect(quote('é'.repeat(100), 4)).toBe('"éééé..."(200 bytes)');
    // Exactly at the cap: not cut.
    expect(quote('x'.repeat(USER_TEXT_MAX))).toBe(`"${'x'.repeat(USER_TEXT_MAX)}"`);
  });
});

describe('printable', () => {
  it('escapes like quote but without quotes (a " stays as it is)', () => {
    expect(printable('bs=4k"\r')).toBe('bs=4k"\\r');
    expect(printable('y'.repeat(1000), 3)).toBe('yyy...(1000 bytes)');
  });
});

describe('hasControlCharacters', () => {
  it('is true for what would be escaped, backslash aside', () => {
    expect(hasControlCharacters('job\x1b')).toBe(true);
    expect(hasControlCharacters('job\ufffd')).toBe(true);
    expect(hasControlCharacters('job 1\\a')).toBe(false);
  });
});
