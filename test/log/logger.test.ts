// The run logger: records from the main thread and from worker threads reach the file whole, typed
// and in order; levels filter; logging off costs nothing; pino-pretty renders the kernel's words.
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { prettyFactory } from 'pino-pretty';
import { ReorderBuffer, createRunLogger, lineTime, parseLogLevel } from '../../src/log/logger.js';
import { attachWorkerLogger } from '../../src/log/worker-logger.js';
import { InputError } from '../../src/errors.js';
import type { AnyEvent } from '../../src/log/emitter.js';
import { readRecords, runEmitter, tempDir } from '../helpers/log-files.js';
import { RingWriter } from '../../src/log/ring.js';
import { nowMs } from '../../src/util/clock.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const dir = tempDir();
afterAll(() => dir.remove());

const failure = (vcpu: number, i: number): AnyEvent => ({
  event: 'map_failure',
  fields: { device: 'nvme0', vcpu, size: 4096 * (1 + (i % 4)), dir: 'DMA_FROM_DEVICE', total: 32768, used: 32768 - i },
});

describe('createRunLogger', () => {
  it('writes typed records with time, level, event and msg', async () => {
    const file = dir.file('main.ndjson');
    const log = createRunLogger({ file, level: 'info', exitHandlers: false });
    expect(log.enabled).toBe(true);
    log.emit('boot_line', { text: 'software IO TLB: area num 32.' });
    log.emit('map_failure', { device: 'nvme0', vcpu: 3, size: 65536, dir: 'DMA_TO_DEVICE', total: 32768, used: 32704 });
    log.emit('stall', { holder: { vcpu: 1, device: 'nvme0', size: 65536 }, waiters: [{ vcpu: 2, device: 'nvme0', size: 4096 }], parked_ms: 5000 });
    await log.close();
    const recs = readRecords(file);
    expect(recs.map((r) => [r['event'], r['level']])).toEqual([['boot_line', 30], ['map_failure', 40], ['stall', 50]]);
    for (const r of recs) {
      expect(typeof r['time']).toBe('number');
      expect(typeof r['msg']).toBe('string');
      expect(r).not.toHaveProperty('pid');
    }
    expect(recs[1]).toMatchObject({ device: 'nvme0', vcpu: 3, size: 65536, dir: 'DMA_TO_DEVICE', msg: 'nvme0: swiotlb buffer is full (sz: 65536 bytes), total 32768 (slots), used 32704 (slots)' });
  });

  it('keeps one msg, the catalogue\'s, when the fields object carries its own', async () => {
    const file = dir.file('msg.ndjson');
    const log = createRunLogger({ file, level: 'info', exitHandlers: false });
    const coreEvent = { event: 'double_unmap', msg: 'core wording', device: 'nvme0', vcpu: 2, tlb_addr: 0x1000 } as const;
    log.emit('double_unmap', coreEvent);
    await log.close();
    const line = readFileSync(file, 'utf8');
    expect(line.match(/"msg":/g)).toHaveLength(1);
    expect(JSON.parse(line)).toMatchObject({ event: 'double_unmap', msg: 'nvme0: DMA-API: device driver tries to free DMA memory it has not allocated [device address=0x0000000000001000]' });
  });

  it('filters by level: throttle_begin is debug, so absent at info and present at debug', async () => {
    const t = { vcpu: 0, device: 'nvme0', size: 4096, used: 30000, high_throttle: 22937, low_throttle: 21299, reason: 'high' } as const;
    for (const level of ['info', 'debug'] as const) {
      const file = dir.file(`level-${level}.ndjson`);
      const log = createRunLogger({ file, level, exitHandlers: false });
      expect(log.isEnabled('throttle_begin')).toBe(level === 'debug');
      log.emit('throttle_begin', t);
      log.emit('throttle_end', { ...t, wait_us: 150 });
      await log.close();
      expect(readRecords(file).map((r) => r['event'])).toEqual(level === 'debug' ? ['throttle_begin', 'throttle_end'] : ['throttle_end']);
    }
  });

  it('is off, writing nothing, without a destination or at level silent', async () => {
    const before = readdirSync(dir.path).length;
    for (const log of [createRunLogger({ level: 'info' }), createRunLogger({ level: 'silent', file: dir.file('silent.ndjson') })]) {
      expect(log.enabled).toBe(false);
      log.emit('boot_line', { text: 'x' });
      const ch = log.workerChannel('vcpu0');
      expect(ch.ring).toBeNull();
      const w = await attachWorkerLogger(ch, { vcpu: 0 });
      expect(w.enabled).toBe(false);
      w.emit('boot_line', { text: 'x' });
      await w.flush();
      log.flushSync();
      await log.close();
    }
    expect(existsSync(dir.file('silent.ndjson'))).toBe(false);
    expect(readdirSync(dir.path).length).toBe(before);
  });

  it('rejects a bad level with a one-line InputError', () => {
    expect(() => createRunLogger({ level: 'loud' })).toThrow(InputError);
    expect(() => parseLogLevel('loud', 'COCO_LOG_LEVEL')).toThrow('COCO_LOG_LEVEL: "loud" is not a log level; expected one of trace, debug, info, warn, error, fatal, silent');
  });

  it('carries worker records through pino and the ring, none lost, each worker in its own order', async () => {
    const file = dir.file('workers.ndjson');
    const log = createRunLogger({ file, level: 'info', exitHandlers: false, ringBytes: 16 * 1024, drainIntervalMs: 5, fullWaitMs: 5000 });
    log.emit('run_config', { config: { vcpus: 2 } });
    const n = 3000; // ~700 KB through 16 KiB rings: the workers must wait for the main thread many times
    const jobs = [0, 1].map((v) => runEmitter({ channel: log.workerChannel(`vcpu${v}`), bind: { vcpu: v }, events: Array.from({ length: n }, (_, i) => failure(v, i)) }));
    const replies = await Promise.all(jobs);
    expect(replies.map((r) => r.emitted)).toEqual([n, n]);
    log.emit('run_summary', { summary: { status: 'ok', runtime_ms: 1 } });
    const stats = log.stats();
    await log.close();
    expect(stats.dropped).toBe(0);
    expect(stats.channels).toBe(0); // both workers closed their channels and the logger released them
    const recs = readRecords(file);
    expect(recs[0]!['event']).toBe('run_config');
    expect(recs.at(-1)!['event']).toBe('run_summary');
    for (const v of [0, 1]) {
      const mine = recs.filter((r) => r['event'] === 'map_failure' && r['vcpu'] === v);
      expect(mine.map((r) => r['used'])).toEqual(Array.from({ length: n }, (_, i) => 32768 - i));
    }
  });

  it('writes the records of every thread in time order (pino-pretty shows them so)', async () => {
    // Two workers log at once into rings that hold everything, the main thread in between: one
    // drain takes ring after ring, so a file written as drained goes back in time at each ring.
    const file = dir.file('order.ndjson');
    const log = createRunLogger({ file, level: 'info', exitHandlers: false, ringBytes: 4 << 20, drainIntervalMs: 20, fullWaitMs: 5000 });
    const n = 4000;
    const jobs = [0, 1].map((v) => runEmitter({ channel: log.workerChannel(`vcpu${v}`), bind: { vcpu: v }, events: Array.from({ length: n }, (_, i) => failure(v, i)) }));
    const ticker = setInterval(() => log.emit('boot_line', { text: 'main' }), 2);
    await Promise.all(jobs);
    clearInterval(ticker);
    const stats = log.stats();
    await log.close();
    const times = readRecords(file).map((r) => r['time'] as number);
    expect(times.length).toBeGreaterThan(2 * n);
    const back = times.filter((t, i) => i > 0 && t < times[i - 1]!).length;
    expect(back).toBe(0);
    expect(stats.late).toBe(0);
  });

  it('holds back later lines while a worker is between stamping a record and publishing it', async () => {
    // A producer that began a record (its time taken) but is descheduled before publishing: the
    // main thread's later record must wait for it, however long that takes (here 300 ms, 30 drains).
    const file = dir.file('stamping.ndjson');
    const log = createRunLogger({ file, level: 'info', exitHandlers: false, drainIntervalMs: 10 });
    const w = new RingWriter(log.workerChannel('vcpu0').ring!, 0);
    w.begin();
    const stamped = Math.round(nowMs());
    await sleep(2);
    log.emit('boot_line', { text: 'main, later' });
    await sleep(300);
    expect(readFileSync(file, 'utf8')).toBe(''); // held: the worker's record may be older
    w.write(`{"level":30,"time":${stamped},"event":"boot_line","text":"worker, earlier","msg":"worker, earlier"}\n`);
    w.end();
    await log.close();
    expect(readRecords(file).map((r) => r['text'])).toEqual(['worker, earlier', 'main, later']);
  });

  it('reorders held lines by time and writes only those older than the watermark', () => {
    const out: string[] = [];
    const r = new ReorderBuffer((b) => out.push(Buffer.from(b).toString('utf8')));
    const line = (t: number, m: string) => `{"level":30,"time":${t},"event":"x","msg":"${m}"}\n`;
    r.addLines(Buffer.from(line(30, 'a') + line(50, 'b')));
    r.addLines(Buffer.from(line(10, 'c') + line(30, 'd')));
    r.release(30);
    expect(out.map((l) => JSON.parse(l).msg)).toEqual(['c', 'a', 'd']); // equal times keep arrival order
    r.addLine(Buffer.from(line(20, 'e')), 20); // older than what was written: late
    r.release(Infinity);
    expect(out.map((l) => JSON.parse(l).msg)).toEqual(['c', 'a', 'd', 'e', 'b']);
    expect(r.late).toBe(1);
    expect(lineTime(Buffer.from(line(1796158733308, 'x')), 0, 60)).toBe(1796158733308);
    expect(lineTime(Buffer.from('{"msg":"no time"}'), 0, 17)).toBe(-Infinity);
    expect(lineTime(Buffer.from(line(1796158733308.125, 'x')), 0, 60)).toBe(1796158733308.125);
  });

  it('stamps a worker\'s binding on records that do not carry their own vcpu or device', async () => {
    const file = dir.file('bind.ndjson');
    const log = createRunLogger({ file, level: 'info', exitHandlers: false });
    await runEmitter({
      channel: log.workerChannel('nvme0'), bind: { device: 'nvme0' },
      events: [{ event: 'worker_error', fields: { thread: 'nvme0', fatal: false, error: { name: 'Error', message: 'x' } } }, failure(5, 0)],
    });
    await log.close();
    const [err, fail] = readRecords(file);
    expect(err).toMatchObject({ event: 'worker_error', device: 'nvme0', level: 50 });
    expect(fail).toMatchObject({ event: 'map_failure', device: 'nvme0', vcpu: 5 });
    expect(Object.keys(fail!).filter((k) => k === 'device')).toHaveLength(1);
  });

  it('reports records a worker had to drop as log_overflow', async () => {
    const file = dir.file('overflow.ndjson');
    const log = createRunLogger({ file, level: 'info', exitHandlers: false });
    // 2000 records (~500 KB) through a 4 KiB ring that may not wait: most cannot fit.
    const reply = await runEmitter({ channel: log.workerChannel('vcpu7', { ringBytes: 4096, fullWaitMs: 0 }), bind: { vcpu: 7 }, events: Array.from({ length: 2000 }, (_, i) => failure(7, i)) });
    expect(reply.emitted).toBe(2000);
    const stats = log.stats();
    await log.close();
    const recs = readRecords(file);
    const overflow = recs.filter((r) => r['event'] === 'log_overflow');
    const dropped = overflow.reduce((a, r) => a + (r['dropped'] as number), 0);
    expect(dropped).toBeGreaterThan(0);
    expect(dropped).toBe(stats.dropped);
    expect(recs.filter((r) => r['event'] === 'map_failure').length + dropped).toBe(2000);
    expect(overflow[0]).toMatchObject({ level: 40, source: 'vcpu7', msg: expect.stringMatching(/^log: \d+ records? from vcpu7 dropped \(log ring full\)$/) });
  });

  it('renders readably with pino-pretty: kernel wording, WARN for failures, ERROR for stalls', async () => {
    const file = dir.file('pretty.ndjson');
    const log = createRunLogger({ file, level: 'info', exitHandlers: false });
    log.emit('boot_line', { text: 'software IO TLB: area num 32.' });
    log.emit('map_failure', { device: 'nvme0', vcpu: 3, size: 4096, dir: 'DMA_TO_DEVICE', total: 32768, used: 32767 });
    log.emit('stall', { holder: { vcpu: 1, device: 'nvme0', size: 65536 }, waiters: [], parked_ms: 5000 });
    await log.close();
    const pretty = prettyFactory({ colorize: false });
    const lines = readRecords(file).map((r) => pretty(r).split('\n')[0]);
    expect(lines[0]).toMatch(/INFO: software IO TLB: area num 32\.$/);
    expect(lines[1]).toMatch(/WARN: nvme0: swiotlb buffer is full \(sz: 4096 bytes\), total 32768 \(slots\), used 32767 \(slots\)$/);
    expect(lines[2]).toMatch(/ERROR: swiotlb throttle stall: 0 waiters parked 5000 ms behind nvme0 on vCPU 1 \(65536 bytes\)$/);
  });
});
