// Parsing of the sizes and durations users type: "64M", "16G", "4k", "256KiB", "10s", "2m".
// One parser for flags, environment variables, the kernel command line and fio job files.
import { InputError } from '../errors.js';
import { quote } from './quote.js';

export const SIZE_FORM = 'a whole number of bytes with an optional suffix k, K, KiB, m, M, MiB, g, G, GiB, t, T or TiB (binary multiples, as fio and the kernel read them), e.g. 4k, 64M, 16G';

const SIZE_MULTIPLIERS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  k: 1024, kb: 1024, kib: 1024,
  m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3,
  t: 1024 ** 4, tb: 1024 ** 4, tib: 1024 ** 4,
};

/**
 * Parse a size in bytes. Suffixes are binary multiples whatever their case ("4k" is 4096, as in
 * fio with its default kb_base=1024 and in the kernel's memparse). Fractions are accepted only when
 * the result is a whole number of bytes ("1.5k" is 1536).
 */
export function parseSize(text: string, what: string, minBytes = 0): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  if (!m) throw new InputError('EBADSIZE', `${what}: ${quote(text)} is not a size; expected ${SIZE_FORM}`);
  const mult = SIZE_MULTIPLIERS[m[2]!.toLowerCase()];
  if (mult === undefined) {
    throw new InputError('EBADSIZE', `${what}: unknown size suffix ${quote(m[2]!)} in ${quote(text)}; expected ${SIZE_FORM}`);
  }
  const bytes = Number(m[1]) * mult;
  // A 400-digit number reads as Infinity: too large, not "not whole".
  if (!(bytes <= Number.MAX_SAFE_INTEGER)) {
    throw new InputError('EBADSIZE', `${what}: ${quote(text)} is too large; expected at most ${MAX_SIZE_TEXT}`);
  }
  if (!Number.isSafeInteger(bytes)) {
    throw new InputError('EBADSIZE', `${what}: ${quote(text)} is not a whole number of bytes; expected ${SIZE_FORM}`);
  }
  if (bytes < minBytes) {
    throw new InputError('EBADSIZE', `${what}: ${quote(text)} is ${bytes === 0 ? 'zero' : 'too small'}; expected at least ${minBytes} byte${minBytes === 1 ? '' : 's'}, ${SIZE_FORM}`);
  }
  return bytes;
}

/** Largest size parseSize accepts: 2^53 - 1 bytes (8 PiB less a byte), the largest exact byte count. */
const MAX_SIZE_TEXT = `${Number.MAX_SAFE_INTEGER} bytes (8 PiB - 1)`;

/**
 * Largest duration parseDuration accepts, in milliseconds: 2^53 - 1 microseconds (about 285 years),
 * so that every accepted duration is an exact whole number of microseconds (fio's resolution).
 * Callers that arm a timer bound it further to what the run can honour.
 */
export const MAX_DURATION_MS = Number.MAX_SAFE_INTEGER / 1000;

export const DURATION_FORM = 'a number with an optional unit us, ms, s, m, h or d (seconds when none), e.g. 500ms, 10s, 2m';

const DURATION_MS: Readonly<Record<string, number>> = {
  '': 1000, s: 1000, sec: 1000, us: 0.001, usec: 0.001, ms: 1, msec: 1, m: 60_000, min: 60_000, h: 3_600_000,
  d: 86_400_000,
};

/** Parse a duration into milliseconds. A bare number means seconds, as in fio's runtime. */
export function parseDuration(text: string, what: string, defaultUnitMs = 1000, form = DURATION_FORM): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? m[2]!.toLowerCase() : '';
  const mult = unit === '' ? defaultUnitMs : DURATION_MS[unit];
  if (!m || mult === undefined) {
    throw new InputError('EBADDURATION', `${what}: ${quote(text)} is not a duration; expected ${form}`);
  }
  const ms = Number(m[1]) * mult;
  // A 400-digit number reads as Infinity, which every timer and comparison would take at face value.
  if (!(ms <= MAX_DURATION_MS)) {
    throw new InputError('EBADDURATION', `${what}: ${quote(text)} is too long; expected at most ${Number.MAX_SAFE_INTEGER}us (about 285 years), ${form}`);
  }
  return ms;
}

const PERCENT_FORM = 'a whole-number percentage followed by %, e.g. 20%';

/** Parse a percentage written "N%" (fio's size=20%) and return N, a whole number within [min, max]. */
export function parsePercent(text: string, what: string, min = 1, max = 100): number {
  const m = /^\s*(\d+)\s*%\s*$/.exec(text);
  const v = m ? Number(m[1]) : NaN;
  if (!Number.isSafeInteger(v) || v < min || v > max) {
    throw new InputError('EBADPERCENT', `${what}: ${quote(text)} is not a percentage from ${min}% to ${max}%; expected ${PERCENT_FORM}`);
  }
  return v;
}

/** Parse an integer within [min, max] inclusive. */
export function parseIntInRange(text: string, what: string, min: number, max: number): number {
  const t = text.trim();
  const v = /^-?\d+$/.test(t) ? Number(t) : NaN;
  if (!Number.isSafeInteger(v) || v < min || v > max) {
    throw new InputError('EBADINT', `${what}: ${quote(text)} is not valid; expected a whole number from ${min} to ${max}`);
  }
  return v;
}

/**
 * A byte count in the job-file form parseSize reads back exactly: the largest binary suffix that
 * divides it ("4k", "64m", "1g"), else plain bytes ("1500").
 */
export function formatSizeExact(bytes: number): string {
  for (const [suffix, mult] of [['t', 1024 ** 4], ['g', 1024 ** 3], ['m', 1024 ** 2], ['k', 1024]] as const) {
    if (bytes >= mult && bytes % mult === 0) return `${bytes / mult}${suffix}`;
  }
  return String(bytes);
}

/** Format a byte count the way the kernel prints pool sizes (whole MiB). */
export function formatMiB(bytes: number): string {
  return `${Math.floor(bytes / (1024 * 1024))}MB`;
}

/** Human-readable binary size for reports: 4KiB, 1.5MiB, 64MiB. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)}${units[u]}`;
}

/**
 * The longest delay a Node timer honours (setTimeout, setInterval: a signed 32-bit count of
 * milliseconds, about 24.8 days); a longer one fires after 1 ms with a TimeoutOverflowWarning.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** The range a duration must fall in; `minExclusive` makes the lower bound strict (longer than 0). */
export interface DurationBounds {
  minMs: number;
  maxMs: number;
  minExclusive?: boolean;
  /** Only whole milliseconds (the value is stored as an integer count of them). */
  wholeMs?: boolean;
}

const SHOW_UNITS: readonly [string, number][] = [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000], ['ms', 1], ['us', 0.001]];

/** A duration as a user would type it, in the largest unit that keeps it at least 1: 250ms, 10s, 24.86d. */
export function formatDurationMs(ms: number): string {
  if (ms === 0) return '0';
  for (const [unit, size] of SHOW_UNITS) {
    if (ms >= size || unit === 'us') return `${Number((ms / size).toFixed(2))}${unit}`;
  }
  return `${ms}ms`;
}

/** "from 1ms to 1m", "longer than 0 and at most 24.86d (the longest timer Node can set)". */
export function durationBoundsText(b: DurationBounds): string {
  const max = `${formatDurationMs(b.maxMs)}${b.maxMs === MAX_TIMER_MS ? ' (2^31-1 ms, the longest timer Node honours)' : ''}`;
  return b.minExclusive === true ? `longer than ${formatDurationMs(b.minMs)} and at most ${max}` : `from ${formatDurationMs(b.minMs)} to ${max}`;
}

/**
 * A duration (parseDuration's forms) within bounds: every duration that becomes a timer or a wait
 * is bounded by what the run can honour, and the error says the bound.
 */
export function parseDurationInRange(text: string, what: string, b: DurationBounds, defaultUnitMs = 1000): number {
  const ms = parseDuration(text, what, defaultUnitMs);
  const low = b.minExclusive === true ? !(ms > b.minMs) : !(ms >= b.minMs);
  if (low || !(ms <= b.maxMs) || (b.wholeMs === true && !Number.isInteger(ms))) {
    throw new InputError('EBADDURATION', `${what}: ${quote(text)} is out of range; expected a duration ${durationBoundsText(b)}${b.wholeMs === true ? ' in whole milliseconds' : ''}, e.g. ${formatDurationMs(Math.min(Math.max(b.minMs, 1000), b.maxMs))}`);
  }
  return ms;
}
