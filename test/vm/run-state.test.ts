// What the main thread reads about a running workload (src/vm/run-state.ts) and the report's
// per-area line (src/vm/report.ts), on hand-made statistics whose answers are worked out by hand.
import { describe, expect, it } from 'vitest';
import { I_DROPS, I_END_MS, I_READ_BYTES, I_READ_ERRORS, I_READ_IOS, I_START_MS, I_WRITE_ERRORS, I_WRITE_IOS, INST_FIELDS, type JobInstance } from '../../src/vm/jobs.js';
import { plannedIsExact, plannedRunMs, ratePerSec, workloadCounters, workloadPhase } from '../../src/vm/run-state.js';
import { areaHiwaterLine } from '../../src/vm/report.js';

const inst = (id: number, group: number, startdelayMs: number, rampTimeMs: number, runtimeMs: number, timeBased = true): JobInstance =>
  ({ id, group, startdelayMs, rampTimeMs, runtimeMs, timeBased }) as JobInstance;

describe('run state', () => {
  it('sums the instances\' counters as the report does', () => {
    const s = new Float64Array(2 * INST_FIELDS);
    s[I_READ_IOS] = 10; s[I_WRITE_IOS] = 5; s[I_READ_BYTES] = 40960; s[I_READ_ERRORS] = 2; s[I_WRITE_ERRORS] = 1;
    s[INST_FIELDS + I_READ_IOS] = 7; s[INST_FIELDS + I_DROPS] = 3;
    expect(workloadCounters(s, 2)).toEqual({ ios: 22, bytes: 40960, io_errors: 3, packets_dropped: 3 });
  });

  it('takes a rate over the actual interval', () => {
    expect(ratePerSec(100, 400, 150)).toBe(2000);
    expect(ratePerSec(100, 400, 0)).toBe(0);
  });

  it('plans stonewall groups one after the other, each as long as its longest clone', () => {
    // Group 0: max(100 + 0 + 1000, 0 + 500 + 1000) = 1500; group 1: 2000.
    const plan = [inst(0, 0, 100, 0, 1000), inst(1, 0, 0, 500, 1000), inst(2, 1, 0, 0, 2000, false)];
    expect(plannedRunMs(plan)).toBe(3500);
    expect(plannedIsExact(plan)).toBe(false);
    expect(plannedIsExact(plan.slice(0, 2))).toBe(true);
  });

  it('names the phase from the instances\' start and end stamps', () => {
    // One instance with a 200 ms ramp: it started at 1000 + delay 300, so its I/O counts from 1500.
    const plan = [inst(0, 0, 300, 200, 1000)];
    const s = new Float64Array(INST_FIELDS);
    expect(workloadPhase(s, plan, 1000)).toBe('startdelay'); // not started (waiting for its group)
    s[I_START_MS] = 1500;
    expect(workloadPhase(s, plan, 1100)).toBe('startdelay');
    expect(workloadPhase(s, plan, 1300)).toBe('ramp');
    expect(workloadPhase(s, plan, 1500)).toBe('running');
    s[I_END_MS] = 2500;
    expect(workloadPhase(s, plan, 2600)).toBe('teardown');
  });
});

describe('per-area used_hiwater line', () => {
  const areas = (marks: number[]) => marks.map((used_hiwater, area) => ({ area, acquired: 0, contended: 0, parked: 0, used_hiwater }));
  it('lists each area, the fullest and which areas were full', () => {
    expect(areaHiwaterLine({ area_nslabs: 256, areas: areas([256, 100, 256, 7]) }))
      .toBe('  area used_hiwater (of 256 slots per area): [256 100 256 7] max 256 (area 0), min 7; areas 0,2 full at some time');
    expect(areaHiwaterLine({ area_nslabs: 256, areas: areas([3, 4]) }))
      .toBe('  area used_hiwater (of 256 slots per area): [3 4] max 4 (area 1), min 3; no area was full');
  });
  it('summarises many areas without listing them', () => {
    const marks = Array.from({ length: 32 }, (_, a) => (a === 5 ? 128 : 64));
    expect(areaHiwaterLine({ area_nslabs: 128, areas: areas(marks) }))
      .toBe('  area used_hiwater (of 128 slots per area): max 128 (area 5), min 64; area 5 full at some time');
  });
});
