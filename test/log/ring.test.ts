// The worker-to-main ring, in one thread: whole lines, wrap-around, UTF-8, back-pressure and drops.
import { describe, expect, it } from 'vitest';
import { RingReader, RingWriter, createRingBuffer, ringCapacity, ringStats } from '../../src/log/ring.js';
import { InvariantError } from '../../src/errors.js';

const text = (parts: Uint8Array[]): string => Buffer.concat(parts).toString('utf8');

describe('log ring', () => {
  it('rounds its size up to a power of two', () => {
    expect(ringCapacity(4096)).toBe(4096);
    expect(ringCapacity(5000)).toBe(8192);
    expect(() => ringCapacity(100)).toThrow(InvariantError);
  });

  it('carries lines in order across many wrap-arounds, including multi-byte UTF-8', () => {
    const sab = createRingBuffer(4096);
    const w = new RingWriter(sab, 1000);
    const r = new RingReader(sab);
    const got: Uint8Array[] = [];
    const want: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const line = `{"i":${i},"s":"${'é漢'.repeat(i % 7)}${'x'.repeat(i % 300)}"}\n`;
      want.push(line);
      expect(w.write(line)).toBe(true);
      if (i % 5 === 4) {
        const b = r.drain();
        if (b) got.push(b);
      }
    }
    const b = r.drain();
    if (b) got.push(b);
    expect(text(got)).toBe(want.join(''));
    expect(ringStats(sab)).toMatchObject({ lines: 2000, dropped: 0, used: 0 });
  });

  it('drops (and counts) a line when the ring stays full past the wait limit', () => {
    const sab = createRingBuffer(4096);
    const w = new RingWriter(sab, 0);
    const r = new RingReader(sab);
    const line = `${'y'.repeat(99)}\n`;
    let ok = 0;
    for (let i = 0; i < 100; i++) if (w.write(line)) ok++;
    expect(ok).toBe(40); // 4096 / 100 whole lines
    expect(r.takeDropped()).toBe(60);
    expect(r.takeDropped()).toBe(0);
    expect(r.drain()!.length).toBe(4000);
    expect(w.write(line)).toBe(true);
    expect(ringStats(sab).fullWaits).toBe(60);
  });

  it('waits (bounded) for the reader instead of dropping when a wait is allowed', async () => {
    const sab = createRingBuffer(4096);
    const r = new RingReader(sab);
    // The writer runs in this thread, so the reader can only drain between writes: a wait that is
    // never answered must end at the limit (about 30 ms), not hang.
    const w = new RingWriter(sab, 30);
    const line = `${'z'.repeat(4095)}\n`;
    expect(w.write(line)).toBe(true);
    const t0 = performance.now();
    expect(w.write(line)).toBe(false);
    const waited = performance.now() - t0;
    expect(waited).toBeGreaterThanOrEqual(25);
    expect(waited).toBeLessThan(1000);
    r.drain();
    expect(w.write(line)).toBe(true);
    await expect(w.drained(10)).resolves.toBe(false); // nobody drains: times out
    r.drain();
    await expect(w.drained(10)).resolves.toBe(true);
  });

  it('publishes a line longer than the ring in pieces', () => {
    const sab = createRingBuffer(4096);
    const r = new RingReader(sab);
    const w = new RingWriter(sab, 0);
    // With no reader running, the second piece cannot fit: the line is dropped after its first piece.
    expect(w.write(`${'q'.repeat(5000)}\n`)).toBe(false);
    expect(r.drain()!.length).toBe(4096);
  });

  it('batched records (reserve, commit): published once per publishEvery, in order with writeBytes, never over bytes not taken', () => {
    const sab = createRingBuffer(4096);
    const w = new RingWriter(sab, 0, 4);
    const r = new RingReader(sab);
    const data = new Uint8Array(sab, 64); // RING_DATA_OFFSET
    const rec = (v: number): void => {
      const pos = w.reserve(8);
      expect(pos).toBeGreaterThanOrEqual(0);
      data.fill(v, pos, pos + 8);
      w.commit(8);
    };
    for (let v = 1; v <= 3; v++) rec(v);
    expect(r.drain()).toBeUndefined(); // 3 of 4: not published yet
    rec(4);
    expect([...r.drain()!]).toEqual([1, 2, 3, 4].flatMap((v) => Array<number>(8).fill(v)));
    rec(5);
    expect(w.writeBytes(new Uint8Array(8).fill(6), 8)).toBe(true); // publishes 5 first
    expect([...r.drain()!]).toEqual([5, 6].flatMap((v) => Array<number>(8).fill(v)));
    // Fill the ring with batched records the reader has not taken: reserve refuses the one past it.
    const free = 4096;
    for (let i = 0; i < free / 8; i++) rec(7);
    expect(w.reserve(8)).toBe(-1);
    expect(r.drainTo(() => {})).toBe(4096);
    expect(w.reserve(8)).toBeGreaterThanOrEqual(0); // tail re-read once the room it saw was too small
    expect(ringStats(sab)).toMatchObject({ lines: 6 + free / 8, dropped: 0 });
  });

  it('adoptBatch publishes what a producer that never closed committed, and nothing once it closed', () => {
    const sab = createRingBuffer(4096);
    const w = new RingWriter(sab, 0, 4);
    const r = new RingReader(sab);
    const data = new Uint8Array(sab, 64);
    for (let v = 1; v <= 3; v++) {
      const pos = w.reserve(8);
      data.fill(v, pos, pos + 8);
      w.commit(8);
    }
    w.reserve(8); // reserved, never committed: not a record
    expect(r.drain()).toBeUndefined();
    expect(r.adoptBatch()).toBe(24);
    expect([...r.drain()!]).toEqual([1, 2, 3].flatMap((v) => Array<number>(8).fill(v)));
    expect(r.adoptBatch()).toBe(0);
    // A producer that closed published its batch itself (the adopting reader above stands for a
    // producer that is gone: this one is a second ring).
    const sab2 = createRingBuffer(4096);
    const w2 = new RingWriter(sab2, 0, 4);
    const r2 = new RingReader(sab2);
    w2.reserve(8);
    w2.commit(8);
    w2.close();
    expect(r2.adoptBatch()).toBe(0);
    expect(r2.drain()!.length).toBe(8);
  });

  it('drainTo hands the bytes as views of the ring, in two pieces where they wrap', () => {
    const sab = createRingBuffer(4096);
    const w = new RingWriter(sab, 0);
    const r = new RingReader(sab);
    w.write('a'.repeat(3000));
    r.drain();
    w.write('b'.repeat(2000)); // 1096 bytes to the end, 904 from the start
    const pieces: Uint8Array[] = [];
    expect(r.drainTo((b) => pieces.push(b.slice()))).toBe(2000);
    expect(pieces.map((p) => p.length)).toEqual([1096, 904]);
    expect(text(pieces)).toBe('b'.repeat(2000));
  });

  it('counts a dropped writeBytes record by its weight', () => {
    const sab = createRingBuffer(4096);
    const w = new RingWriter(sab, 0);
    const r = new RingReader(sab);
    expect(w.writeBytes(new Uint8Array(4096), 4096)).toBe(true);
    expect(w.writeBytes(new Uint8Array(8), 8, 2)).toBe(false);
    expect(w.writeBytes(new Uint8Array(8), 8, 0)).toBe(false);
    expect(r.takeDropped()).toBe(2);
  });

  it('allows one writer per ring', () => {
    const sab = createRingBuffer(4096);
    new RingWriter(sab, 0);
    expect(() => new RingWriter(sab, 0)).toThrow(/already attached/);
  });
});
