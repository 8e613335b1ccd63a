// Catalogue coverage: a run log holding every event type, produced through the real logging API on
// the main thread and in worker threads (test/helpers/fixture.ts), is parsed by the analyzer with
// nothing skipped and every event accounted for.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeFile, type AnalyzeResult } from '../../src/analyze/run.js';
import { formatText } from '../../src/analyze/format.js';
import { EVENT_NAMES } from '../../src/log/events.js';
import { FIXTURE, writeFixtureLog, type FixtureResult } from '../helpers/fixture.js';
import { tempDir } from '../helpers/log-files.js';

const dir = tempDir('coco-coverage-');
let fx: FixtureResult;
let result: AnalyzeResult;

beforeAll(async () => {
  fx = await writeFixtureLog(dir.file('run.ndjson'));
  result = await analyzeFile(fx.file);
});
afterAll(() => dir.remove());

describe('catalogue coverage', () => {
  it('every event type is in the log and read by the analyzer, nothing skipped', () => {
    const a = result.analysis;
    expect(a.input.skipped).toBe(0);
    for (const e of EVENT_NAMES) {
      expect(a.input.events[e], e).toBeGreaterThan(0);
      if (e !== 'log_overflow') expect(a.input.events[e], e).toBe(fx.emitted[e]);
    }
    expect(a.log_overflows.records_dropped).toBe(fx.dropped);
    expect(fx.dropped).toBeGreaterThan(0);
  });

  it('reports each part of the run', () => {
    const a = result.analysis;
    expect(a.config).toMatchObject({ nslabs: FIXTURE.nslabs, throttle: { high_throttle: FIXTURE.high, low_throttle: FIXTURE.low } });
    expect(a.boot.lines).toContain('software IO TLB: area num 4.');
    expect(a.pools.by_kind).toEqual({ default: 1, transient: 1, dynamic: 1 });
    expect(a.timeline.peak_used?.value).toBe(FIXTURE.nslabs);
    expect(a.timeline.max_nslabs).toBe(FIXTURE.nslabs + 2048);
    // The pool size over time: the boot pool, one dynamic pool of 2048 slots, the transient pool's 64 slots.
    expect(a.timeline.start_nslabs).toBe(FIXTURE.nslabs);
    expect(a.timeline.growths).toMatchObject({ count: 1, nslabs: 2048, more: 0 });
    expect(a.timeline.transient_nslabs).toMatchObject({ peak: 64, end: 64 });
    expect(a.timeline.low_throttle).toBe(FIXTURE.lowAfter);
    // The exact counts come from the run summary (which has the failures after the last sample too);
    // the printed records are examples.
    expect(a.map_failures).toMatchObject({
      total: fx.counts.map_failures, source: 'run_summary', printed: fx.emitted.map_failure,
      sampled: fx.counts.map_failures - fx.afterLastSample.map_failures, after_last_sample: fx.afterLastSample.map_failures,
    });
    expect(a.map_failures.total).toBeGreaterThan(a.map_failures.printed);
    expect(a.io_errors).toMatchObject({ total: fx.counts.io_errors, source: 'run_summary', printed: fx.emitted.io_error, after_last_sample: fx.afterLastSample.io_errors });
    expect(a.packet_drops).toMatchObject({ total: fx.counts.packets_dropped, source: 'run_summary', printed: fx.emitted.packet_dropped, after_last_sample: 0 });
    expect(a.map_failures.groups.map((g) => `${g.device}/${g.size}`).sort()).toEqual(['eth0/1514', 'nvme0/4096', 'nvme0/65536']);
    expect(a.throttle.waits).toBe(fx.emitted.throttle_end);
    expect(a.throttle.unfinished).toBe(0);
    expect(a.stalls).toMatchObject({ total: 2, self_deadlocks: 1, longest_parked_ms: 250 });
    expect(a.worker_errors).toMatchObject({ total: 2, fatal: 1 });
    expect(a.tunables.list[0]).toMatchObject({ name: '/proc/sys/kernel/dma/swiotlb_default/low_throttle', old: FIXTURE.low, new: FIXTURE.lowAfter });
    expect(a.summary?.status).toBe('ok');
  });

  it('measures time above the thresholds from the samples as emitted', () => {
    // Worked out here from the emitted samples: each sample holds for the interval ending at it.
    let prev = 0;
    // An area is full at 32768 / 4 = 8192 slots (the default pool of pool_created).
    const want = { high: 0, low: 0, areaFull: 0, failing: 0 };
    let prevFailures = 0;
    for (const s of fx.samples) {
      const dt = s.t_ms - prev;
      prev = s.t_ms;
      if (s.io_tlb_used > s.high_throttle) want.high += dt;
      if (s.io_tlb_used > s.low_throttle) want.low += dt;
      if (s.area_used.some((u) => u >= 8192)) want.areaFull += dt;
      if (s.map_failures! > prevFailures) want.failing += dt;
      prevFailures = s.map_failures!;
    }
    expect(want.areaFull).toBeGreaterThan(0);
    expect(result.analysis.timeline.time_above_ms).toMatchObject({ high_throttle: want.high, low_throttle: want.low, area_full: want.areaFull });
    expect(result.analysis.timeline.area_nslabs).toBe(8192);
    expect(result.analysis.map_failures.intervals_ms).toBe(want.failing);
  });

  it('prints every section in text', () => {
    const text = formatText(result.analysis);
    for (const heading of ['Configuration', 'Boot', 'Pools: 3', 'Timeline: 40 samples', `Map failures: ${fx.counts.map_failures.toLocaleString('en-US')} (exact, from the run summary)`, 'Throttle waits: ', 'I/O errors: ', 'Packets dropped: ', 'Stalls: 2', 'Tunables changed: 1', 'Other events', 'Thread errors: 2', 'Final report']) {
      expect(text).toContain(heading);
    }
  });
});
