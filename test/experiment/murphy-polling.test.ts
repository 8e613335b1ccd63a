// Experiment 3: the verdict rule on figures made up to sit on each side of each part, then the quick form.
import { describe, expect, it } from 'vitest';
import { type Mode, type ModeFigures, type MurphyPollingFigures, murphyPolling } from '../../src/experiment/murphy-polling.js';
import type { Spread } from '../../src/sweep/figures.js';
import { quickForm } from '../helpers/experiment.js';

const s = (median: number): Spread => ({ n: 3, median, min: median, max: median, spread: 0 });

function mode(m: Mode, over: Partial<ModeFigures> = {}): ModeFigures {
  const polled = m !== 'interrupt-throttle';
  const stalls = m === 'polled-throttle';
  return {
    mode: m, completion: polled ? 'polled' : 'interrupt', policy: m === 'polled-static' ? 'static' : 'throttle',
    runs: 3, ok: stalls ? 0 : 3, stalled: stalls ? 3 : 0, other_not_ok: 0, stalls_with_parked_poller: stalls ? 3 : 0,
    unreaped: stalls ? s(25) : null, parked_vcpus: stalls ? s(4) : null,
    ios: stalls ? null : s(5000), io_errors: stalls ? null : s(m === 'polled-static' ? 40 : 0), map_failures: stalls ? null : s(m === 'polled-static' ? 40 : 0),
    reaped_by_polling: stalls ? null : s(polled ? 5000 : 0), reaped_in_throttle_wait: stalls ? null : s(polled ? 0 : 900),
    runs_reaping_in_wait: m === 'interrupt-throttle' ? 3 : 0,
    ...over,
  };
}

function figures(over: Partial<Record<Mode, Partial<ModeFigures>>> = {}): MurphyPollingFigures {
  return {
    job: 'jobs/hipri-polled.fio', vcpus: 4, pool: '2M', runtime: '3s', throttle_stall_timeout: '1s',
    modes: (['polled-throttle', 'interrupt-throttle', 'polled-static'] as const).map((m) => mode(m, over[m])),
  };
}

describe('murphy-polling: the rule', () => {
  it('reproduced: every polled throttled run stalls with a parked poller, interrupts complete cleanly, polling alone does not stall', () => {
    const v = murphyPolling.judge(figures());
    expect(v.verdict).toBe('reproduced');
    expect(v.why).toContain('3 of 3 runs stalled, 3 naming a parked poller (median 25 completions posted and not reaped, 4 of 4 vCPUs parked)');
  });
  it('partly: one polled throttled run that did not stall, or one whose stall names no parked poller', () => {
    expect(murphyPolling.judge(figures({ 'polled-throttle': { ok: 1, stalled: 2, stalls_with_parked_poller: 2 } })).verdict).toBe('partly');
    expect(murphyPolling.judge(figures({ 'polled-throttle': { stalls_with_parked_poller: 2 } })).verdict).toBe('partly');
  });
  it('partly: interrupt-driven runs that stall, see an I/O error, or never reap in a throttle wait; a polled static run that stalls', () => {
    expect(murphyPolling.judge(figures({ 'interrupt-throttle': { ok: 2, stalled: 1 } })).verdict).toBe('partly');
    expect(murphyPolling.judge(figures({ 'interrupt-throttle': { io_errors: s(1) } })).verdict).toBe('partly');
    expect(murphyPolling.judge(figures({ 'interrupt-throttle': { runs_reaping_in_wait: 2 } })).verdict).toBe('partly');
    expect(murphyPolling.judge(figures({ 'polled-static': { ok: 2, stalled: 1 } })).verdict).toBe('partly');
  });
  it('refuted: no polled throttled run stalled with its poller parked', () => {
    expect(murphyPolling.judge(figures({ 'polled-throttle': { ok: 3, stalled: 0, stalls_with_parked_poller: 0 } })).verdict).toBe('refuted');
    expect(murphyPolling.judge(figures({ 'polled-throttle': { stalls_with_parked_poller: 0 } })).verdict).toBe('refuted');
  });
});

describe('murphy-polling: the quick form', () => {
  it('runs the three setups and reaches the recorded verdict', async () => {
    const r = await quickForm(murphyPolling);
    const f = r.figures as MurphyPollingFigures;
    for (const m of f.modes) expect(m.runs).toBe(murphyPolling.repeats.quick);
    // Invariants of the driver model whatever the verdict: interrupt-driven completions are never
    // reaped by polling, polled ones never during a throttle wait.
    const byMode = (m: Mode) => f.modes.find((x) => x.mode === m)!;
    expect(byMode('interrupt-throttle').reaped_by_polling?.max ?? 0).toBe(0);
    expect(byMode('polled-static').reaped_in_throttle_wait?.max ?? 0).toBe(0);
  }, 180_000);
});
