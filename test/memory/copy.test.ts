// The bounce copy (src/memory/copy.ts): both paths copy the same bytes and refuse the same ranges;
// the addon's own guards (src/memory/native/bounce-copy.c) and its id reuse, in a child process of
// their own; the VM on the TypedArray.set path still verifies its data.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { BOUNCE_COPY_ADDON, CopyRegion, copyBytes, copyBytesSet, copyPath, memmoveLoop } from '../../src/memory/copy.js';
import { projectRoot } from '../../src/util/worker-file.js';
import { vmProcess } from '../helpers/vm-process.js';
import type { RunReport } from '../../src/vm/report.js';

const run = promisify(execFile);
const ADDON = join(projectRoot(), BOUNCE_COPY_ADDON);

/** A region over `len` shared bytes at byte offset `at` of a larger buffer, filled with a pattern from `seed`. */
function region(len: number, at: number, seed: number): CopyRegion {
  const sab = new SharedArrayBuffer(at + len + 64);
  const bytes = new Uint8Array(sab, at, len);
  for (let i = 0; i < len; i++) bytes[i] = (i * 7 + seed) & 0xff;
  new Uint8Array(sab).fill(0xee, 0, at); // bytes before the view: must never change
  return new CopyRegion(bytes);
}

describe('copyBytes', () => {
  it('runs the addon whenever npm ci built it', () => {
    if (existsSync(ADDON) && process.env['COCO_BOUNCE_COPY'] !== 'set') expect(copyPath).toMatchObject({ kind: 'memcpy' });
    else expect(copyPath.kind).toBe('set');
  });

  it.each([
    ['the VM\'s path', copyBytes],
    ['the TypedArray.set path', copyBytesSet],
  ])('copies exactly the range asked, between views at offsets inside their buffers (%s)', (_name, copy) => {
    for (const [len, dOff, sOff] of [[4096, 0, 0], [4096, 2048, 4096], [1, 8191, 0], [1500, 3, 5], [0, 8192, 8192]] as const) {
      const dst = region(8192, 4096, 1);
      const src = region(8192, 64, 2);
      const want = Uint8Array.from(dst.bytes);
      want.set(src.bytes.subarray(sOff, sOff + len), dOff);
      copy(dst, dOff, src, sOff, len);
      expect(Buffer.from(dst.bytes).equals(Buffer.from(want))).toBe(true);
      expect(new Uint8Array(dst.bytes.buffer, 0, 4096).every((b) => b === 0xee)).toBe(true);
      expect(new Uint8Array(dst.bytes.buffer, 4096 + 8192).every((b) => b === 0)).toBe(true);
    }
  });

  it.each([
    ['the VM\'s path', copyBytes],
    ['the TypedArray.set path', copyBytesSet],
  ])('refuses a range outside either view and copies nothing (%s)', (_name, copy) => {
    const dst = region(4096, 4096, 1);
    const src = region(8192, 0, 2);
    const before = Uint8Array.from(dst.bytes);
    expect(() => copy(dst, 1, src, 0, 4096)).toThrow(RangeError);
    expect(() => copy(dst, 0, src, 4097, 4096)).toThrow(/outside a region/);
    expect(() => copy(dst, -1, src, 0, 16)).toThrow(RangeError);
    expect(() => copy(dst, 0, src, 0, -1)).toThrow(RangeError);
    expect(Buffer.from(dst.bytes).equals(Buffer.from(before))).toBe(true);
  });

  it('memmoveLoop (the bench\'s native reference) makes the same copy, or says it cannot without the addon', () => {
    const dst = region(8192, 4096, 1);
    const src = region(8192, 64, 2);
    const want = Uint8Array.from(dst.bytes);
    want.set(src.bytes.subarray(100, 100 + 4096), 7);
    const ran = memmoveLoop(dst, 7, src, 100, 4096, 3);
    expect(ran).toBe(copyPath.kind === 'memcpy');
    if (ran) expect(Buffer.from(dst.bytes).equals(Buffer.from(want))).toBe(true);
    if (ran) expect(() => memmoveLoop(dst, 4097, src, 0, 4096, 1)).toThrow(RangeError);
  });

  it('copies within one buffer as memmove does, overlap included', () => {
    const r = region(8192, 0, 3);
    const want = Uint8Array.from(r.bytes);
    want.copyWithin(100, 0, 4096);
    copyBytes(r, 100, r, 0, 4096);
    expect(Buffer.from(r.bytes).equals(Buffer.from(want))).toBe(true);
  });
});

// The addon loaded in a child process, so its registry and argument block are its own.
const GUARDS = `
const a = require(process.argv[1]);
const args = new Float64Array(new SharedArrayBuffer(40));
a.set_args(args);
const sab = new SharedArrayBuffer(8192);
const id = a.register(new Uint8Array(sab), sab);
const out = {};
const attempt = (name, v) => { args.set(v); try { a.copy(); out[name] = 'copied'; } catch (e) { out[name] = e.constructor.name + ': ' + e.message; } };
attempt('whole', [id, 4096, id, 0, 4096]);
attempt('past the end', [id, 4097, id, 0, 4096]);
attempt('unregistered', [id + 1, 0, id, 0, 16]);
attempt('fraction', [id, 0.5, id, 0, 16]);
attempt('NaN', [id, NaN, id, 0, 16]);
attempt('negative', [id, 0, id, 0, -1]);
try { a.register(new Uint8Array(sab, 16), sab); out.view = 'registered'; } catch (e) { out.view = e.constructor.name; }
// Ids of collected buffers are handed out again (the finalizer frees them).
const ids = new Set();
const churn = () => { for (let i = 0; i < 200; i++) { const s = new SharedArrayBuffer(65536); ids.add(a.register(new Uint8Array(s), s)); } };
churn();
(async () => {
  for (let i = 0; i < 5; i++) { globalThis.gc(); await new Promise((r) => setImmediate(r)); }
  const before = ids.size;
  churn();
  out.reused = ids.size < before + 200;
  console.log(JSON.stringify(out));
})();
`;

describe.skipIf(!existsSync(ADDON))('the bounce copy addon', () => {
  it('checks every operand before it copies, and hands the ids of collected buffers out again', async () => {
    const r = await run(process.execPath, ['--expose-gc', '-e', GUARDS, ADDON], { timeout: 60_000 });
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(out).toEqual({
      whole: 'copied',
      'past the end': 'RangeError: bounce_copy.copy: range outside its region',
      unregistered: 'RangeError: bounce_copy.copy: not a registered region',
      fraction: 'RangeError: bounce_copy.copy: an operand is not a whole number from 0 to 2^53',
      NaN: 'RangeError: bounce_copy.copy: an operand is not a whole number from 0 to 2^53',
      negative: 'RangeError: bounce_copy.copy: an operand is not a whole number from 0 to 2^53',
      view: 'TypeError',
      reused: true,
    });
  });
});

describe('COCO_BOUNCE_COPY', () => {
  it('set: the VM runs on TypedArray.set and its data still verifies', async () => {
    const r = await vmProcess(['--vcpus', '2', '--runtime', '1s', '--mem', '1G', '--output-format', 'json'], { COCO_BOUNCE_COPY: 'set' });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout) as RunReport;
    expect(rep.jobs[0]!.verify!.sectors_ok).toBeGreaterThan(0);
    expect(rep.jobs[0]!.verify!.sectors_bad).toBe(0);
  });

  it('refuses any other value with one line and exit 2', async () => {
    const r = await vmProcess(['--vcpus', '1', '--runtime', '1s'], { COCO_BOUNCE_COPY: 'fast' });
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('vm: COCO_BOUNCE_COPY (environment): "fast" is not valid; expected memcpy or set');
  });
});
