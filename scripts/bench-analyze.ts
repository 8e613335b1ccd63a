// `npm run bench:analyze [-- --size 1G] [--file path] [--keep]`
//
// Synthesises a run log of at least --size bytes (default 1G): 32 vCPUs filling and draining the
// pool, throttle waits, map failures, I/O errors, drops, a sample every 250 ms of simulated time,
// plus a few foreign lines and a truncated last line. Then it runs the analyzer (text and HTML) in a
// fresh Node process and reports its throughput and peak memory (maxRSS), which must stay under
// 200 MB. Not part of `npm test`: it writes and reads a gigabyte.
import { closeSync, existsSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { analyzeFile } from '../src/analyze/run.js';
import { formatText } from '../src/analyze/format.js';
import { renderHtml } from '../src/analyze/html.js';
import { parseFlags, parseOnOff } from '../src/cli/flags.js';
import { runMain } from '../src/cli/main.js';
import { InputError } from '../src/errors.js';
import { LEVEL_VALUES, bootText, levelOf, messageOf, type EventFields, type EventName } from '../src/log/events.js';
import { parseSize } from '../src/util/units.js';
import { IO_TLB_SIZE } from '../src/swiotlb/constants.js';
import { Rng } from '../src/util/rng.js';

const PEAK_RSS_LIMIT_MB = 200;

/** One NDJSON line shaped exactly as the loggers write it. */
function line<E extends EventName>(time: number, event: E, fields: EventFields[E]): string {
  return `${JSON.stringify({ level: LEVEL_VALUES[levelOf(event, fields)], time, event, ...fields, msg: messageOf(event, fields) })}\n`;
}

/** The project's seeded generator (src/util/rng.ts), as a () => [0, 1) source. */
function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.float();
}

function synthesise(file: string, targetBytes: number): { bytes: number; lines: number; ms: number } {
  const t0 = performance.now();
  const fd = openSync(file, 'w');
  const rand = rng(1);
  const nslabs = 524288; // 1 GiB pool
  const nareas = 32;
  const high = Math.floor((nslabs * 70) / 100);
  const low = Math.floor((nslabs * 65) / 100);
  const devices = ['nvme0', 'nvme1', 'nvme2', 'nvme3', 'eth0', 'eth1'];
  const sizes = [4096, 8192, 16384, 65536, 131072, 262144];
  let chunk: string[] = [];
  let chunkBytes = 0;
  let bytes = 0;
  let lines = 0;
  const put = (s: string): void => {
    chunk.push(s);
    chunkBytes += s.length;
    lines++;
    if (chunkBytes >= 4 * 1024 * 1024) flush();
  };
  const flush = (): void => {
    const buf = Buffer.from(chunk.join(''), 'utf8');
    writeSync(fd, buf);
    bytes += buf.length;
    chunk = [];
    chunkBytes = 0;
  };
  const start = Date.UTC(2025, 0, 1);
  put(line(start, 'run_config', { config: { vcpus: 32, mem_bytes: 16 * 2 ** 30, swiotlb_bytes: nslabs * IO_TLB_SIZE, nslabs, nareas, cmdline: `swiotlb=${nslabs},${nareas},force`, seed: 1, sample_interval_ms: 250, throttle: { enabled: true, high_throttle: high, low_throttle: low }, devices: devices.map((d) => ({ name: d, kind: d.startsWith('eth') ? 'nic' : 'nvme' })) } }));
  put(line(start, 'boot_line', { text: bootText.areaNum(nareas) }));
  put(line(start, 'boot_line', { text: bootText.mapped(0x8000_0000, nslabs) }));
  put(line(start, 'pool_created', { pool: 0, start: 0x8000_0000, nslabs, nareas, kind: 'default' }));
  let tMs = 0;
  let used = 0;
  let hiwater = 0;
  let step = 0;
  while (bytes + chunkBytes < targetBytes) {
    step++;
    tMs += 250;
    const time = start + tMs;
    // Usage follows a slow wave with noise, reaching the thresholds and the top of the pool.
    used = Math.max(0, Math.min(nslabs, Math.round(nslabs * (0.55 + 0.5 * Math.sin(step / 40)) + (rand() - 0.5) * 20000)));
    hiwater = Math.max(hiwater, used);
    const area = Math.floor(used / nareas);
    put(line(time, 'sample', { t_ms: tMs, io_tlb_used: used, io_tlb_used_hiwater: hiwater, nslabs, area_used: Array.from({ length: nareas }, () => area), throttle_queue_len: used > low ? Math.floor(rand() * 32) : 0, iops: 200_000 + Math.floor(rand() * 50_000), high_throttle: high, low_throttle: low, map_ok: step * 50_000 }));
    // ~1000 events per sample when the pool is under pressure, a few otherwise.
    const n = used > low ? 1000 : 20;
    for (let i = 0; i < n; i++) {
      const et = time + Math.floor(rand() * 250);
      const vcpu = Math.floor(rand() * 32);
      const device = devices[Math.floor(rand() * devices.length)]!;
      const size = sizes[Math.floor(rand() * sizes.length)]!;
      const r = rand();
      if (r < 0.35) {
        put(line(et, 'map_failure', { device, vcpu, size, dir: rand() < 0.5 ? 'DMA_TO_DEVICE' : 'DMA_FROM_DEVICE', total: nslabs, used }));
      } else if (r < 0.95) {
        const f = { vcpu, device, size, used, high_throttle: high, low_throttle: low, reason: used > high ? 'high' : 'low' } as const;
        put(line(et, 'throttle_begin', f));
        put(line(et, 'throttle_end', { ...f, wait_us: Math.floor(-Math.log(1 - rand()) * 2000) }));
      } else if (r < 0.98) {
        put(line(et, 'io_error', { device, vcpu, op: 'write', offset: Math.floor(rand() * 2 ** 30), size, reason: 'swiotlb buffer is full' }));
      } else {
        put(line(et, 'packet_dropped', { device: 'eth0', vcpu, size: 1514, dir: 'tx', reason: 'swiotlb buffer is full' }));
      }
    }
    if (step % 2000 === 0) {
      put(line(time, 'stall', { holder: { vcpu: 3, device: 'nvme0', size: 262144 }, waiters: [{ vcpu: 4, device: 'nvme1', size: 65536, waited_ms: 5000 }], parked_ms: 5000, kind: 'timeout' }));
      put('this is not a record: a foreign line in the log\n');
    }
  }
  put(line(start + tMs, 'run_summary', { summary: { status: 'ok', runtime_ms: tMs, swiotlb: { nslabs, used_hiwater: hiwater } } }));
  put('{"level":40,"time":1735689600000,"event":"map_fail'); // a truncated last line
  flush();
  closeSync(fd);
  return { bytes, lines, ms: performance.now() - t0 };
}

/** Child mode: analyze the file, write the HTML, print what it cost as one JSON line. */
async function child(file: string): Promise<void> {
  let heapPeak = 0;
  const timer = setInterval(() => {
    heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
  }, 50);
  const t0 = performance.now();
  const { analysis, chart } = await analyzeFile(file);
  const analyzeMs = performance.now() - t0;
  const text = formatText(analysis);
  const html = renderHtml(analysis, chart);
  clearInterval(timer);
  heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
  process.stdout.write(`${JSON.stringify({
    analyze_ms: analyzeMs, bytes: analysis.input.bytes, lines: analysis.input.lines, records: analysis.input.records,
    skipped: analysis.input.skipped, text_bytes: text.length, html_bytes: html.length, chart_points: chart.x_s.length,
    max_rss_kb: process.resourceUsage().maxRSS, heap_peak_bytes: heapPeak,
  })}\n`);
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === '--child') {
    await child(argv[1]!);
    return 0;
  }
  const f = parseFlags(argv, [
    { name: 'size', kind: 'string', form: 'SIZE', default: '1G', help: 'the synthesised log is at least this large, e.g. 256M' },
    { name: 'file', kind: 'string', form: 'FILE', default: 'a temporary file, removed after', help: 'where the log is written (an existing one at least --size large is reused)' },
    { name: 'keep', kind: 'boolean', default: 'off', help: 'keep the temporary log' },
  ], 'bench:analyze', `Synthesises a run log and measures the analyzer's throughput and peak memory (limit ${PEAK_RSS_LIMIT_MB} MB).`);
  const size = parseSize(f.setting('size', '1G').value, '--size');
  if (size < 1) throw new InputError('EBADSIZE', `--size: "${f.get('size')}" must be at least 1 byte; expected a size such as 1G`);
  const file = f.get('file');
  const keep = parseOnOff(f.setting('keep', 'off').value, '--keep');
  const path = file ?? join(tmpdir(), `coco-bench-analyze-${process.pid}.ndjson`);
  if (file === undefined || !existsSync(path) || statSync(path).size < size) {
    process.stdout.write(`synthesising ${path} (>= ${(size / 2 ** 20).toFixed(0)} MiB)...\n`);
    const s = synthesise(path, size);
    process.stdout.write(`  ${s.lines} lines, ${(s.bytes / 2 ** 20).toFixed(0)} MiB in ${(s.ms / 1000).toFixed(1)} s\n`);
  }
  try {
    const self = fileURLToPath(import.meta.url);
    const r = spawnSync(process.execPath, [self, '--child', path], { encoding: 'utf8', maxBuffer: 1 << 20 });
    if (r.status !== 0) {
      process.stderr.write(r.stderr);
      return 1;
    }
    const m = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, number>;
    const mb = m['bytes']! / 2 ** 20;
    const secs = m['analyze_ms']! / 1000;
    const rssMb = m['max_rss_kb']! / 1024;
    process.stdout.write([
      `analyzer: ${mb.toFixed(0)} MiB, ${m['lines']} lines (${m['records']} records, ${m['skipped']} skipped) in ${secs.toFixed(1)} s`,
      `  throughput ${(mb / secs).toFixed(0)} MiB/s, ${((m['records']! / secs) / 1e6).toFixed(2)} M records/s`,
      `  peak memory: maxRSS ${rssMb.toFixed(0)} MB, JS heap ${(m['heap_peak_bytes']! / 2 ** 20).toFixed(0)} MiB (limit ${PEAK_RSS_LIMIT_MB} MB)`,
      `  outputs: text ${m['text_bytes']} bytes, HTML ${(m['html_bytes']! / 1024).toFixed(0)} KiB with ${m['chart_points']} chart points`,
      '',
    ].join('\n'));
    if (rssMb >= PEAK_RSS_LIMIT_MB) {
      process.stderr.write(`bench:analyze: peak memory ${rssMb.toFixed(0)} MB is over the ${PEAK_RSS_LIMIT_MB} MB limit\n`);
      return 1;
    }
    return 0;
  } finally {
    if (!keep && file === undefined) rmSync(path, { force: true });
  }
}

runMain(() => main(process.argv.slice(2)));
