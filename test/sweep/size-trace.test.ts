// npm run size --trace: each probe replays the trace (npm run replay through the one run driver).
// The hand-written trace holds exactly 129 slots at once on one CPU (test/helpers/traces.ts): any
// pool below 129 slots fails, and the probes are whole segments per area (128 slots on one vCPU),
// so the answer is 256 slots; a 128-slot peak needs 128.
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/log-files.js';
import { peakTrace } from '../helpers/traces.js';
import { type ScriptResult, scriptProcess } from '../helpers/vm-process.js';

const dir = tempDir('coco-size-trace-test-');
afterAll(() => dir.remove());

function size(args: string[]): Promise<ScriptResult> {
  return scriptProcess('size', args);
}

describe('size --trace', () => {
  const common = ['--mem', '256M', '--repeat', '1', '--speed', '0.2', '--output-format', 'json'];
  it('a 129-slot peak on one CPU needs 256 slots (one vCPU, from the trace); a 128-slot peak needs 128', async () => {
    const r = await size(['--trace', peakTrace(dir.path, 'p129.txt', 1), ...common]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const d = JSON.parse(r.stdout);
    expect(d.vcpus).toBe(1);
    expect(d.trace_peak_slots).toBe(129);
    expect(d.nslabs).toBe(256);
    expect(d.at_kernel_size.pass).toBe(true);
    const r128 = await size(['--trace', peakTrace(dir.path, 'p128.txt', 0), ...common]);
    expect(r128.code).toBe(0);
    expect(JSON.parse(r128.stdout).nslabs).toBe(128);
  });

  it('refuses a latency target and --job beside --trace (exit 2, one line)', async () => {
    const f = peakTrace(dir.path, 'p.txt', 0);
    const lat = await size(['--trace', f, '--target', 'p99=1ms']);
    expect(lat.code).toBe(2);
    expect(lat.stderr).toMatch(/^size: --target p99=1ms: a replayed trace has no I\/O to measure; with --trace use failures=N\n$/);
    const both = await size(['--trace', f, '--job', 'jobs/heavy.fio']);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--trace and --job are both a workload/);
  });
});
