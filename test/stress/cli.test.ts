// npm run stress end to end, as `npm run stress -- ...` runs it (node --single-threaded-gc
// dist/scripts/stress.js): bounded clean runs in both modes, the fast mutants caught, a failure that
// prints its seed, configuration and replay command, and the replay failing again. About 30 s of
// stress in all. Outcomes only: nothing here depends on how fast the machine is.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkRecord } from '../../src/log/events.js';
import { projectRoot } from '../../src/util/worker-file.js';
import { tempDir } from '../helpers/log-files.js';

const dir = tempDir('coco-stress-');
afterAll(() => dir.remove());

interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

function stress(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--single-threaded-gc', join(projectRoot(), 'dist', 'scripts', 'stress.js'), ...args], {
      cwd: projectRoot(), maxBuffer: 64 * 1024 * 1024, env: { ...process.env, COCO_DEBUG: '' },
    }, (err, stdout, stderr) => {
      const status = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({ status, stdout, stderr });
    });
  });
}

const SMALL = ['--max-vcpus', '12', '--scale', '0.3'];

describe('npm run stress', () => {
  it('runs chaos trials clean for a few seconds, with a summary and one stress_trial record per trial', async () => {
    const log = dir.file('chaos.ndjson');
    const r = await stress('--seconds', '6', '--mode', 'chaos', '--seed', '7', ...SMALL, '--output-format', 'json', '--log-file', log);
    expect(r.stderr).toBe('');
    const s = JSON.parse(r.stdout) as { trials: number; operations: number; failures: number; interleavings_perturbed: number; by_mode: { chaos: { trials: number } } };
    expect(s.failures).toBe(0);
    expect(r.status).toBe(0);
    expect(s.trials).toBeGreaterThan(0);
    expect(s.by_mode.chaos.trials).toBe(s.trials);
    expect(s.operations).toBeGreaterThan(0);
    const records = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records.filter((x) => x['event'] === 'stress_trial')).toHaveLength(s.trials);
    for (const rec of records) expect(checkRecord(rec)).toBeUndefined();
  }, 120_000);

  it('runs pct trials clean for a few seconds and prints the summary table', async () => {
    const r = await stress('--seconds', '6', '--mode', 'pct', '--seed', '8', ...SMALL);
    expect(r.stdout).toMatch(/^mode\s+trials\s+operations\s+ops\/s\s+interleavings perturbed\s+failures$/m);
    expect(r.stdout).toMatch(/^pct\s+\d+/m);
    expect(r.stdout).toContain('no check failed');
    expect(r.status).toBe(0);
  }, 120_000);

  it('catches every mutant (--mutants) and says how', async () => {
    const r = await stress('--mutants', '--mutant-budget', '40s', '--max-vcpus', '8', '--output-format', 'json');
    const s = JSON.parse(r.stdout) as { all_caught: boolean; mutants: { mutant: string; caught: boolean; check: string | null; replay: string | null }[] };
    expect(s.mutants.filter((m) => !m.caught).map((m) => m.mutant)).toEqual([]);
    expect(s.all_caught).toBe(true);
    expect(r.status).toBe(0);
    expect(s.mutants.map((m) => m.mutant)).toEqual([
      'area-lock-no-exclude', 'list-after-unlock', 'hiwater-no-cas', 'sem-before-free', 'lost-wakeup', 'sg-unmap-order', 'merge-short', 'cursor-no-wrap',
      'total-used-early', 'index-after-unlock', 'used-after-unlock', 'pool-half-pages', 'transient-used-leak', 'nslabs-counts-transient',
      'transient-free-before-copy', 'transient-double-free', 'publish-before-init',
    ]);
    for (const m of s.mutants) expect(m.replay).toContain(`--mutant ${m.mutant}`);
  }, 400_000);

  it('prints a failure with its seed, configuration and replay command, exits 1, and the replay fails again', async () => {
    // 4 s: trial 0 must get through enough of its 2 x 2000 operations on a loaded machine (it ran 700 in 2 s once).
    const r = await stress('--seconds', '4', '--mode', 'chaos', '--mutant', 'merge-short', '--max-vcpus', '4');
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^FAIL trial 0: seed \d+, mode chaos, mutant merge-short$/m);
    expect(r.stdout).toMatch(/^ {2}quiescence: slot \d+: list \d+ at quiescence, initial value \d+$/m);
    expect(r.stdout).toMatch(/^ {2}config: \{"seed":\d+,/m);
    const replay = /^ {2}replay: npm run stress -- (--replay (\d+) --mode chaos --mutant merge-short --max-vcpus 4)$/m.exec(r.stdout);
    expect(replay).not.toBeNull();
    const again = await stress(...replay![1]!.split(' '));
    expect(again.status).toBe(1);
    expect(again.stdout).toContain(`FAIL trial 0: seed ${replay![2]}, mode chaos, mutant merge-short`);
  }, 120_000);

  it('rejects bad input with one line and exit status 2', async () => {
    const r = await stress('--mode', 'fast');
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('--mode: "fast" is not valid; expected chaos, pct or mixed');
    const m = await stress('--mutant', 'nope');
    expect(m.status).toBe(2);
    expect(m.stderr).toContain('--mutant: "nope" is not a mutant');
  }, 60_000);
});
