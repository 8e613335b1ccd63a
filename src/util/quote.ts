// Echoing what a user gave (a flag value, a job-file line, an option name) into an error or warning
// line. The text is escaped so that the line stays one line of plain characters whatever it holds
// (a raw CR would rewrite the terminal line, an ESC starts a terminal control sequence, binary bytes
// show as garbage), and capped so that a 1 MB value gives a short line that says how long it was.
//
// Escapes: \\ for a backslash (so an escape in the output is never ambiguous with text the user
// typed), \t \n \r, \xNN for the other C0 controls, DEL and the C1 controls, \uNNNN for every other
// Unicode "other" character (format characters such as the bidi overrides, lone surrogates, private
// use, unassigned), the line and paragraph separators, and U+FFFD (what an invalid UTF-8 byte in a
// file decodes to). quote() also escapes '"' as \".
//
// Capping: at most `max` characters of escaped text are kept (never half an escape), followed by
// "..." and the original's length in UTF-8 bytes, e.g. "abc\x1b..."(1048576 bytes).

/** Default cap on the escaped characters kept from one piece of user text. */
export const USER_TEXT_MAX = 64;

const NEEDS_ESCAPE = /[\p{C}\p{Zl}\p{Zp}\uFFFD\\]/u;

function escapeChar(ch: string, quoteChar: boolean): string {
  if (ch === '\\') return '\\\\';
  if (quoteChar && ch === '"') return '\\"';
  if (ch === '\t') return '\\t';
  if (ch === '\n') return '\\n';
  if (ch === '\r') return '\\r';
  if (!NEEDS_ESCAPE.test(ch)) return ch;
  const cp = ch.codePointAt(0)!;
  if (cp < 0x100) return `\\x${cp.toString(16).padStart(2, '0')}`;
  if (cp < 0x10000) return `\\u${cp.toString(16).padStart(4, '0')}`;
  return `\\u{${cp.toString(16)}}`;
}

/** The escaped text (at most `max` characters) and whether anything was left out. */
function escapeCapped(text: string, max: number, quoteChar: boolean): { body: string; cut: boolean } {
  const budget = Math.max(0, max);
  let body = '';
  // Iterating code points (for..of) keeps a surrogate pair whole; a lone surrogate comes out alone
  // and is escaped (\p{Cs}). The loop stops at the cap, so a 1 MB text costs O(max).
  for (const ch of text) {
    const e = escapeChar(ch, quoteChar);
    if (body.length + e.length > budget) return { body, cut: true };
    body += e;
  }
  return { body, cut: false };
}

function lengthMarker(text: string): string {
  return `(${Buffer.byteLength(text, 'utf8')} bytes)`;
}

/**
 * User text for an error or warning line, in double quotes: escaped, and capped at `max` escaped
 * characters followed by `..."(N bytes)` when longer. `quote('a\x1bb')` is `"a\x1bb"`.
 */
export function quote(text: string, max = USER_TEXT_MAX): string {
  const { body, cut } = escapeCapped(text, max, true);
  return cut ? `"${body}..."${lengthMarker(text)}` : `"${body}"`;
}

/**
 * User text for a line that shows it bare (a job file's `name=value`): escaped as quote() does but
 * without the quotes; capped with `...(N bytes)`.
 */
export function printable(text: string, max = USER_TEXT_MAX): string {
  const { body, cut } = escapeCapped(text, max, false);
  return cut ? `${body}...${lengthMarker(text)}` : body;
}

/** True when `text` has a character that quote() and printable() would escape (other than '\\'). */
export function hasControlCharacters(text: string): boolean {
  return /[\p{C}\p{Zl}\p{Zp}\uFFFD]/u.test(text);
}
