// The analyzer on small hand-made logs whose answers are worked out by hand, on truncated and mixed
// input, and its command line.
import { describe, expect, it } from 'vitest';
import { Readable } from 'node:stream';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { analyzeStream, analyzeText } from '../../src/analyze/run.js';
import { LineSplitter } from '../../src/analyze/lines.js';
import { LogAnalyzer } from '../../src/analyze/analyzer.js';
import { parseAnalyzeArgs } from '../../src/analyze/cli.js';
import { formatText } from '../../src/analyze/format.js';
import { InputError } from '../../src/errors.js';
import { LEVEL_VALUES, levelOf, messageOf, type EventFields, type EventName } from '../../src/log/events.js';

const T0 = 1_700_000_000_000;

/** One record as the loggers write it. */
function rec<E extends EventName>(dt: number, event: E, fields: EventFields[E]): string {
  return JSON.stringify({ level: LEVEL_VALUES[levelOf(event, fields)], time: T0 + dt, event, ...fields, msg: messageOf(event, fields) });
}

function sample(t: number, used: number, hiwater: number): string {
  return rec(t, 'sample', { t_ms: t, io_tlb_used: used, io_tlb_used_hiwater: hiwater, nslabs: 100, area_used: [used >> 1, used - (used >> 1)], throttle_queue_len: used > 50 ? 2 : 0, iops: 1000, high_throttle: 85, low_throttle: 50 });
}

const failure = (t: number, device: string, size: number, dir: 'DMA_TO_DEVICE' | 'DMA_FROM_DEVICE'): string =>
  rec(t, 'map_failure', { device, vcpu: 1, size, dir, total: 100, used: 99 });

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('analyzer', () => {
  it('works out the timeline: peak, and time above each threshold as the samples step', () => {
    // Each sample stands for the interval that ends at it: (0,100] used 10, (100,200] 80,
    // (200,300] 95, (300,400] 20. With low 50 and high 85: above low 200 ms, above high 100 ms;
    // above 50% of 100 slots 200 ms, above 90% 100 ms. Two areas of 50 slots: area 1 holds
    // 95 - 47 = 48 at most, so no area is ever full.
    const log = [rec(0, 'run_config', { config: { nslabs: 100 } }), sample(100, 10, 10), sample(200, 80, 80), sample(300, 95, 95), sample(400, 20, 95)].join('\n');
    const { analysis: a } = analyzeText(`${log}\n`);
    expect(a.timeline).toMatchObject({
      samples: 4, sample_interval_ms: 100, duration_ms: 400, nslabs: 100, max_hiwater: 95, mean_used: 51.25,
      high_throttle: 85, low_throttle: 50,
      time_above_ms: { low_throttle: 200, high_throttle: 100, pct50: 200, pct90: 100, area_full: 0 },
      area_nslabs: 50,
      peak_throttle_queue_len: { value: 2, at: { t_ms: 200 } },
      area_peak_used: [47, 48],
    });
    expect(a.timeline.peak_used).toEqual({ value: 95, pct_of_pool: 95, at: { time: T0 + 300, t_ms: 300 } });
    expect(a.input).toMatchObject({ records: 5, skipped: 0, run_start_time: T0, duration_ms: 400 });
  });

  it('draws the pool size over time: io_tlb_nslabs at the start, end and peak, each growth when it happened, transient slots', () => {
    // Boot pool 1024 slots at +0 (record time); the run starts 100 ms later, so every time below is
    // relative to T0 + 100. Dynamic pools: 512 slots at record time 250 (+150 ms), 1024 at 320
    // (+220 ms). io_tlb_nslabs steps 1024 -> 1536 -> 2560 in the samples; io_tlb_transient_nslabs
    // 0, 64, 2, 0. By hand: start 1024, end 2560, peak 2560; 2 growths adding 1536 slots (3 MiB of
    // 2 KiB slots); transient peak 64 (128 KiB) at +200 ms, 0 at the end.
    const smp = (dt: number, nslabs: number, transient: number): string =>
      rec(dt, 'sample', { t_ms: dt - 100, io_tlb_used: 10, io_tlb_used_hiwater: 10, nslabs, io_tlb_transient_nslabs: transient, area_used: [5, 5], throttle_queue_len: 0, iops: 0, high_throttle: 0, low_throttle: 0 });
    const log = [
      rec(0, 'run_config', { config: {} }),
      rec(0, 'pool_created', { pool: 0, start: 0x7fe0_0000, nslabs: 1024, nareas: 2, kind: 'default' }),
      rec(100, 'run_start', { boot_ms: 100 }),
      smp(200, 1024, 0),
      rec(250, 'pool_created', { pool: 1, start: 0x20_0000, nslabs: 512, nareas: 2, kind: 'dynamic', took_ms: 3 }),
      smp(300, 1536, 64),
      rec(320, 'pool_created', { pool: 2, start: 0x40_0000, nslabs: 1024, nareas: 2, kind: 'dynamic', took_ms: 4 }),
      smp(400, 2560, 2),
      smp(500, 2560, 0),
    ].join('\n');
    const { analysis: a, chart } = analyzeText(`${log}\n`);
    expect(a.timeline).toMatchObject({ start_nslabs: 1024, nslabs: 2560, max_nslabs: 2560 });
    expect(a.timeline.growths).toEqual({ count: 2, nslabs: 1536, list: [{ time: T0 + 250, t_ms: 150 }, { time: T0 + 320, t_ms: 220 }], more: 0 });
    expect(a.timeline.transient_nslabs).toEqual({ peak: 64, peak_at: { time: T0 + 300, t_ms: 200 }, end: 0 });
    const text = formatText(a);
    expect(text).toMatch(/pool size +1024 slots \(2MiB\) at the start, 2560 slots \(5MiB\) at the end, peak 2560 slots \(5MiB\)\n/);
    expect(text).toMatch(/pool growths +2 dynamic pools added \(\+1536 slots, 3MiB\) at \+0\.150s, \+0\.220s\n/);
    expect(text).toMatch(/transient slots +peak 64 \(128KiB\) at \+0\.200s, 0 at the end/);
    // The chart: 10 ms buckets; a growth is marked in the bucket holding its time (x at the bucket's
    // middle: +155 ms and +225 ms), the samples' io_tlb_nslabs and transient slots at their times.
    const marked = chart.x_s.flatMap((x, i) => (chart.growths[i] !== null ? [[Math.round(x * 1000), chart.growths[i]]] : []));
    expect(marked).toEqual([[155, 1], [225, 1]]);
    const sampled = chart.x_s.flatMap((x, i) => (chart.nslabs[i] !== null ? [[Math.round(x * 1000), chart.nslabs[i], chart.transient_nslabs[i]]] : []));
    expect(sampled).toEqual([[100, 1024, 0], [200, 1536, 64], [300, 2560, 2], [400, 2560, 0]]);
  });

  it('shows one pool size when the pool never grew', () => {
    const log = [rec(0, 'run_config', { config: {} }), sample(100, 10, 10), sample(200, 20, 20)].join('\n');
    const { analysis: a } = analyzeText(`${log}\n`);
    expect(a.timeline).toMatchObject({ start_nslabs: 100, growths: { count: 0, nslabs: 0, list: [], more: 0 }, transient_nslabs: null });
    const text = formatText(a);
    expect(text).toMatch(/pool size +100 slots \(200KiB\)\n/);
    expect(text).not.toContain('pool growths');
  });

  it('groups map failures by device and size with first and last occurrence', () => {
    const log = [
      rec(0, 'run_config', { config: {} }),
      failure(10, 'nvme0', 65536, 'DMA_TO_DEVICE'), failure(20, 'eth0', 1514, 'DMA_FROM_DEVICE'),
      failure(30, 'nvme0', 65536, 'DMA_FROM_DEVICE'), failure(25, 'nvme0', 65536, 'DMA_TO_DEVICE'), // out of order, as worker records may be
      failure(40, 'nvme0', 4096, 'DMA_TO_DEVICE'),
    ].join('\n');
    const { analysis: a } = analyzeText(`${log}\n${rec(50, 'map_failure', { device: 'nvme0', vcpu: 1, size: 4096, dir: 'DMA_TO_DEVICE', total: 100, used: 99, suppressed: 7 })}`);
    // No sample counter and no run summary: the count is the printed records and the repeats they
    // say were suppressed, a lower bound, and says so.
    expect(a.map_failures).toMatchObject({ total: 13, source: 'records', printed: 6, suppressed: 7, sampled: null });
    expect(a.map_failures.by_device).toEqual({ nvme0: 5, eth0: 1 });
    expect(a.map_failures.groups).toEqual([
      { device: 'nvme0', size: 65536, count: 3, first: { time: T0 + 10, t_ms: 10 }, last: { time: T0 + 30, t_ms: 30 }, dirs: { DMA_TO_DEVICE: 2, DMA_FROM_DEVICE: 1 } },
      { device: 'nvme0', size: 4096, count: 2, first: { time: T0 + 40, t_ms: 40 }, last: { time: T0 + 50, t_ms: 50 }, dirs: { DMA_TO_DEVICE: 2 } },
      { device: 'eth0', size: 1514, count: 1, first: { time: T0 + 20, t_ms: 20 }, last: { time: T0 + 20, t_ms: 20 }, dirs: { DMA_FROM_DEVICE: 1 } },
    ]);
  });

  it('counts ratelimited events from the samples\' counters and the run summary, not from the printed records', () => {
    // Counters rise 0 -> 40 in (100,200], stay, rise to 100 in (300,400]; 3 records printed. The
    // summary counts 130: 30 after the last sample, so the last ones fall between +400 and its +450.
    const s = (t: number, mapFailures: number, ioErrors: number): string =>
      rec(t, 'sample', { t_ms: t, io_tlb_used: 10, io_tlb_used_hiwater: 10, nslabs: 100, area_used: [5, 5], throttle_queue_len: 0, iops: 0, high_throttle: 0, low_throttle: 0, map_failures: mapFailures, io_errors: ioErrors });
    const lines = [
      rec(0, 'run_start', { boot_ms: 5 }),
      s(100, 0, 0), failure(150, 'nvme0', 4096, 'DMA_TO_DEVICE'), failure(160, 'nvme0', 4096, 'DMA_TO_DEVICE'), s(200, 40, 40),
      s(300, 40, 40), failure(350, 'nvme0', 4096, 'DMA_TO_DEVICE'), s(400, 100, 100),
    ];
    const { analysis: a, chart } = analyzeText(`${lines.join('\n')}\n`);
    expect(a.map_failures).toMatchObject({
      total: 100, source: 'samples', sampled: 100, printed: 3, after_last_sample: 0, intervals: 2, intervals_ms: 200,
      first: { from: { t_ms: 100 }, to: { t_ms: 200 } }, last: { from: { t_ms: 300 }, to: { t_ms: 400 } },
    });
    expect(a.io_errors).toMatchObject({ total: 100, source: 'samples', printed: 0 });
    // The chart: 40 in 100 ms and 60 in 100 ms, per second.
    const rates = chart!.map_failures_per_s.filter((v) => v !== null);
    expect(rates).toEqual([400, 600]);
    expect(chart!.failure_source.map_failures).toBe('counters');

    const summary = rec(450, 'run_summary', { summary: { status: 'ok', swiotlb: { map_failures: 130 }, jobs: [{ name: 'j', errors_total: 101, packets_dropped: 0 }] } });
    const { analysis: b } = analyzeText(`${lines.join('\n')}\n${summary}\n`);
    expect(b.map_failures).toMatchObject({ total: 130, source: 'run_summary', sampled: 100, after_last_sample: 30, last: { from: { t_ms: 400 }, to: { t_ms: 450 } } });
    expect(b.io_errors).toMatchObject({ total: 101, after_last_sample: 1 });
    expect(formatText(b)).toContain('Map failures: 130 (exact, from the run summary)');
  });

  it('takes rates from the counters over each sample\'s actual interval, not from a sample\'s rate field', () => {
    // ios 100 by +100, 300 by +200, 400 by +350: 1000, 2000, 666.7 per second; the mean is 400 in
    // 350 ms. The iops fields (as a VM with stale counters wrote them) are ignored.
    const s = (t: number, ios: number, iops: number): string =>
      rec(t, 'sample', { t_ms: t, io_tlb_used: 1, io_tlb_used_hiwater: 1, nslabs: 100, area_used: [1], throttle_queue_len: 0, iops, high_throttle: 0, low_throttle: 0, ios, bytes: ios * 4096 });
    const { analysis: a } = analyzeText(`${[rec(0, 'run_start', { boot_ms: 5 }), s(100, 100, 50), s(200, 300, 59_034), s(350, 400, 0)].join('\n')}\n`);
    expect(a.timeline.iops!.max).toBe(2000);
    expect(a.timeline.iops!.mean).toBeCloseTo(400 / 0.35, 6);
    expect(a.timeline.bw_bytes_per_s!.max).toBe(2000 * 4096);
  });

  it('counts time from the start barrier (run_start), not from the first record of the boot', () => {
    // Boot takes 800 ms; a tunable changed 2 s into the run is at +2.000 s, and so is the chart's mark.
    const lines = [
      rec(0, 'run_config', { config: {} }),
      rec(800, 'run_start', { boot_ms: 800 }),
      rec(1800, 'sample', { t_ms: 1000, io_tlb_used: 1, io_tlb_used_hiwater: 1, nslabs: 100, area_used: [1], throttle_queue_len: 0, iops: 0, high_throttle: 0, low_throttle: 0 }),
      rec(2800, 'tunable_changed', { name: '/sys/kernel/debug/swiotlb/io_tlb_used_hiwater', old: 1, new: 0 }),
    ];
    const { analysis: a, chart } = analyzeText(`${lines.join('\n')}\n`);
    expect(a.tunables.list[0]!.at.t_ms).toBe(2000);
    expect(a.timeline.peak_used!.at.t_ms).toBe(1000);
    expect(a.input.run_start_time).toBe(T0 + 800);
    const i = chart!.tunables.findIndex((v) => v !== null);
    expect(chart!.x_s[i]).toBeCloseTo(2.0, 1);
  });

  it('turns record times into run time under --time-scale (run_start gives K)', () => {
    // K = 4: a tunable 8 s of wall clock after the barrier was set 2 s into the run; a sample at
    // 4 s of wall clock is t_ms 1000.
    const lines = [
      rec(0, 'run_start', { boot_ms: 100, time_scale: 4 }),
      rec(4000, 'sample', { t_ms: 1000, io_tlb_used: 1, io_tlb_used_hiwater: 1, nslabs: 100, area_used: [1], throttle_queue_len: 0, iops: 0, high_throttle: 0, low_throttle: 0 }),
      rec(8000, 'tunable_changed', { name: '/sys/kernel/debug/swiotlb/io_tlb_used_hiwater', old: 1, new: 0 }),
    ];
    const { analysis: a, chart } = analyzeText(`${lines.join('\n')}\n`);
    expect(a.tunables.list[0]!.at.t_ms).toBe(2000);
    expect(a.timeline.peak_used!.at.t_ms).toBe(1000);
    expect(chart.x_s[chart.tunables.findIndex((v) => v !== null)]).toBeCloseTo(2.0, 1);
  });

  it('summarises throttle waits: count, total, percentiles, longest', () => {
    const lines = [rec(0, 'run_config', { config: {} })];
    // wait_us = 1..1000: total 500500, p50 500, p90 900, p99 990, max 1000.
    for (let i = 1; i <= 1000; i++) {
      const f = { vcpu: i % 4, device: i % 2 ? 'nvme0' : 'nvme1', size: 4096, used: 90, high_throttle: 85, low_throttle: 50, reason: 'high' } as const;
      lines.push(rec(i, 'throttle_begin', f), rec(i, 'throttle_end', { ...f, wait_us: i }));
    }
    const { analysis: a } = analyzeText(lines.join('\n'));
    const th = a.throttle;
    expect(th).toMatchObject({ begins: 1000, waits: 1000, wait_us_total: 500500, unfinished: 0, by_reason: { high: 1000 } });
    expect(th.wait_us.min).toBe(1);
    expect(th.wait_us.max).toBe(1000);
    expect(th.wait_us.mean).toBe(500.5);
    for (const [p, want] of [[th.wait_us.p50, 500], [th.wait_us.p90, 900], [th.wait_us.p99, 990]] as const) {
      expect(Math.abs(p - want) / want).toBeLessThan(0.025); // log-scale buckets: within 2.2%
    }
    expect(th.longest).toMatchObject({ wait_us: 1000, vcpu: 0, device: 'nvme1', at: { t_ms: 1000 } });
    expect(th.by_device['nvme0']).toEqual({ waits: 500, wait_us_total: 250000, wait_us_max: 999 });
  });

  it('counts and skips a truncated last line, with a warning, and keeps the rest', () => {
    const good = [rec(0, 'run_config', { config: {} }), failure(5, 'nvme0', 4096, 'DMA_TO_DEVICE')];
    const { analysis: a } = analyzeText(`${good.join('\n')}\n${good[1]!.slice(0, 40)}`);
    expect(a.input).toMatchObject({ lines: 3, records: 2, skipped: 1, skipped_by_reason: { 'not JSON': 1 } });
    expect(a.input.skipped_examples[0]).toMatchObject({ line: 3, reason: 'not JSON', detail: expect.stringContaining('unterminated last line') });
    expect(a.map_failures.total).toBe(1);
  });

  it('reads a last record that only lacks its newline', () => {
    const { analysis: a } = analyzeText(`${rec(0, 'run_config', { config: {} })}\n${failure(5, 'nvme0', 4096, 'DMA_TO_DEVICE')}`);
    expect(a.input).toMatchObject({ records: 2, skipped: 0 });
  });

  it('counts every kind of foreign line by reason, never crashing', () => {
    const lines = [
      rec(0, 'run_config', { config: {} }),
      'plain text from somewhere else',
      '[1,2,3]',
      '"a string"',
      'null',
      '{"msg":"no level or time"}',
      '{"level":30,"time":1,"msg":"a pino record from another program"}',
      '{"level":30,"time":1,"event":"warp_drive","msg":"from a newer version"}',
      '{"level":40,"time":1,"event":"map_failure","device":"nvme0","vcpu":"one","size":4096,"dir":"DMA_TO_DEVICE","total":1,"used":1}',
      '{"level":30,"time":"yesterday","event":"boot_line","text":"x"}',
      '',
      '   ',
      '{"level":30,"time":2,"event":"boot_line","text":"software IO TLB: area num 2."}\r',
      '\u0000\u0001 binary junk \uFFFD',
      failure(5, 'nvme0', 4096, 'DMA_TO_DEVICE'),
    ];
    const { analysis: a } = analyzeText(`${lines.join('\n')}\n`);
    expect(a.input.records).toBe(3);
    expect(a.input.skipped_by_reason).toEqual({
      'not JSON': 2, 'not an object': 3, 'not a pino record': 2, 'no event': 1, 'unknown event': 1, 'bad fields': 1,
    });
    expect(a.input.skipped).toBe(10);
    expect(a.input.skipped_examples).toHaveLength(5);
    expect(a.boot.lines).toEqual(['software IO TLB: area num 2.']);
    expect(formatText(a)).toContain('skipped 10 lines that are not run-log records');
  });

  it('skips a line too long to keep, in bounded memory', async () => {
    const huge = `{"level":30,"time":1,"event":"boot_line","text":"${'x'.repeat(5000)}"}`;
    const text = `${rec(0, 'run_config', { config: {} })}\n${huge}\n${'y'.repeat(3000)}`;
    const { analysis: a } = await analyzeStream(Readable.from([Buffer.from(text)]), { maxLineBytes: 1024 });
    expect(a.input).toMatchObject({ lines: 3, records: 1, skipped: 2, skipped_by_reason: { 'too long': 2 } });
  });

  it('gives the same answer whatever the chunk boundaries', () => {
    const text = `${[rec(0, 'run_config', { config: {} }), failure(5, 'nvme0', 4096, 'DMA_TO_DEVICE'), 'junk', sample(100, 10, 10), '{"trunc'].join('\n')}`;
    const whole = analyzeText(text).analysis;
    const bytes = Buffer.from(text);
    for (let cut = 1; cut < bytes.length; cut += 7) {
      const an = new LogAnalyzer({ source: 'text' });
      const sp = new LineSplitter(an);
      sp.push(bytes.subarray(0, cut));
      sp.push(bytes.subarray(cut, cut + 13));
      sp.push(bytes.subarray(cut + 13));
      sp.end();
      an.setBytes(sp.bytes);
      expect(an.result()).toEqual(whole);
    }
  });
});

describe('analyze command line', () => {
  it('parses the accepted forms', () => {
    expect(parseAnalyzeArgs(['run.ndjson', '--output-format', 'json', '--html', 'r.html'])).toEqual({ input: 'run.ndjson', outputFormat: 'json', html: 'r.html', help: false });
    expect(parseAnalyzeArgs(['--output-format=normal', '-'])).toMatchObject({ input: undefined, outputFormat: 'normal' });
    expect(parseAnalyzeArgs([])).toMatchObject({ input: undefined, outputFormat: 'normal', html: undefined });
  });

  it('rejects bad input with an InputError that names the accepted form', () => {
    const usage = 'npm run analyze -- [run.ndjson | -] [--output-format normal|json] [--html report.html]';
    expect(() => parseAnalyzeArgs(['--bogus'])).toThrow(new InputError('EUSAGE', `unknown option "--bogus"; usage: ${usage}`));
    expect(() => parseAnalyzeArgs(['--output-format', 'xml'])).toThrow('--output-format: "xml" is not an output format; expected normal or json');
    expect(() => parseAnalyzeArgs(['--html'])).toThrow('--html needs a value');
    expect(() => parseAnalyzeArgs(['a.ndjson', 'b.ndjson'])).toThrow('more than one input');
  });

  it('exits 2 with one line and no stack trace on a bad flag or a missing file', () => {
    for (const args of [['--bogus'], ['/nonexistent/run.ndjson'], ['--output-format', 'xml']]) {
      const r = spawnSync(process.execPath, ['dist/scripts/analyze.js', ...args], { cwd: ROOT, encoding: 'utf8' });
      expect(r.status).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^analyze: .*usage: npm run analyze -- |^analyze: --output-format/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it('stops quietly, exit 0 and no stack trace, when its reader goes away (| head)', () => {
    const lines = Array.from({ length: 200 }, (_, i) => failure(i, 'nvme0', 4096 * (1 + (i % 64)), 'DMA_TO_DEVICE')).join('\n');
    // `true` exits at once, long before node has started: the report is written into a closed pipe.
    const r = spawnSync('bash', ['-c', `"${process.execPath}" dist/scripts/analyze.js | true; exit \${PIPESTATUS[0]}`], { cwd: ROOT, input: `${lines}\n`, encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
  });

  it('reads stdin and prints one JSON document; warns about skipped lines on stderr', () => {
    const input = `${rec(0, 'run_config', { config: { vcpus: 2 } })}\n${failure(5, 'nvme0', 4096, 'DMA_TO_DEVICE')}\nnot a record\n`;
    const r = spawnSync(process.execPath, ['dist/scripts/analyze.js', '--output-format', 'json'], { cwd: ROOT, input, encoding: 'utf8' });
    expect(r.status).toBe(0);
    const doc = JSON.parse(r.stdout) as { config: unknown; map_failures: { total: number }; input: { source: string; skipped: number } };
    expect(doc.config).toEqual({ vcpus: 2 });
    expect(doc.map_failures.total).toBe(1);
    expect(doc.input).toMatchObject({ source: 'stdin', skipped: 1 });
    expect(r.stderr).toMatch(/^analyze: warning: skipped 1 of 3 lines that are not run-log records \(not JSON 1\); first at line 3/);
  });
});
