// The progress line: fits the terminal, says the phase, elapsed / planned and the ETA (issue 11
// item 16). Expected strings are written out by hand.
import { describe, expect, it } from 'vitest';
import { ProgressDisplay, progressLine, type ProgressState } from '../../src/cli/progress.js';

const counters = { iops: 9512.4, bw_bytes_per_s: 37 * 1024 * 1024, io_tlb_used: 1496, nslabs: 2048, io_tlb_used_hiwater: 1946, map_failures: 746, io_errors: 746 };
const running: ProgressState = { phase: 'running', elapsedMs: 2300, plannedMs: 5000, plannedExact: true, counters };

describe('progressLine', () => {
  it('shows the phase, elapsed / planned and the ETA first, then what fits', () => {
    expect(progressLine(running, 200)).toBe('[running 2.3s/5.0s eta 2.7s] map_failures=746 used=1496/2048 iops=9512 hiwater=1946 bw=37MiB/s io_errors=746');
    // 60 columns: at most 59 characters, whole fields only (used= would make 60).
    expect(progressLine(running, 60)).toBe('[running 2.3s/5.0s eta 2.7s] map_failures=746');
    expect(progressLine(running, 62)).toBe('[running 2.3s/5.0s eta 2.7s] map_failures=746 used=1496/2048');
    expect(progressLine(running, 20)).toBe('[running 2.3s/5.0s ');
  });

  it('never reaches the last column, whatever the width', () => {
    for (let w = 1; w <= 160; w++) expect(progressLine(running, w).length, `width ${w}`).toBeLessThan(Math.max(2, w));
  });

  it('names boot, ramp, startdelay and teardown; an ETA that is a bound says so', () => {
    expect(progressLine({ phase: 'boot', elapsedMs: 800, plannedMs: Infinity, plannedExact: false }, 80)).toBe('[boot 0.8s]');
    expect(progressLine({ ...running, phase: 'ramp', elapsedMs: 1000, counters: undefined }, 80)).toBe('[ramp 1.0s/5.0s eta 4.0s]');
    expect(progressLine({ ...running, phase: 'startdelay', plannedExact: false, counters: undefined }, 80)).toBe('[startdelay 2.3s/5.0s eta <=2.7s]');
    expect(progressLine({ ...running, phase: 'teardown', elapsedMs: 5100, counters: undefined }, 80)).toBe('[teardown 5.1s/5.0s]');
  });
});

describe('ProgressDisplay', () => {
  it('re-reads the width at every update and redraws on resize, each line erasing the rest', () => {
    const writes: string[] = [];
    let resize: (() => void) | undefined;
    const out = {
      columns: 200,
      write: (s: string) => { writes.push(s); return true; },
      on: (_e: 'resize', fn: () => void) => { resize = fn; },
      off: () => { resize = undefined; },
    };
    const d = new ProgressDisplay(out);
    d.phase({ phase: 'running', plannedMs: 5000, plannedExact: true });
    d.sample({ phase: 'running', ...counters });
    out.columns = 40;
    resize!();
    d.stop();
    const lines = writes.filter((w) => w.startsWith('\r'));
    expect(lines.length).toBeGreaterThanOrEqual(3);
    for (const l of lines) expect(l.endsWith('\x1b[K')).toBe(true);
    expect(lines.at(-1)!.length - '\r\x1b[K'.length).toBeLessThan(40);
    expect(lines[1]).toContain('iops=9512');
    expect(writes.at(-1)).toBe('\n');
    expect(resize).toBeUndefined();
  });
});
