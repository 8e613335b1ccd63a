// npm run size: the searches on their own (probe counts worked out by hand), the targets, the job
// override, and two real searches whose answers follow from the job: 256 KiB writes at iodepth 3 on
// one vCPU need 3 x 128 = 384 slots at once.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import type { RunRecord } from '../../src/sweep/run.js';
import { missed, overrideJob, parseTarget, searchLargest, searchSmallest } from '../../src/sweep/size.js';
import { parseFioJobFile } from '../../src/workload/fio.js';
import type { RunReport } from '../../src/vm/report.js';
import { tempDir } from '../helpers/log-files.js';
import { type ScriptResult, scriptProcess } from '../helpers/vm-process.js';

const dir = tempDir('coco-size-test-');
afterAll(() => dir.remove());

function size(args: string[]): Promise<ScriptResult> {
  return scriptProcess('size', args);
}

describe('the searches', () => {
  it('finds the smallest passing value by doubling then bisection, probing each value once', async () => {
    const seen: number[] = [];
    const k = await searchSmallest(1, 100, async (v) => {
      seen.push(v);
      return v >= 37;
    });
    expect(k).toBe(37);
    // 1, 2, 4, 8, 16, 32 fail, 64 passes; then bisect (32, 64]: 48 p, 40 p, 36 f, 38 p, 37 p.
    expect(seen).toEqual([1, 2, 4, 8, 16, 32, 64, 48, 40, 36, 38, 37]);
    expect(await searchSmallest(1, 10, async () => false)).toBeNull();
    expect(await searchSmallest(1, 10, async () => true)).toBe(1);
  });

  it('finds the largest passing value the same way', async () => {
    const seen: number[] = [];
    const k = await searchLargest(1, 256, async (v) => {
      seen.push(v);
      return v <= 5;
    });
    expect(k).toBe(5);
    expect(seen).toEqual([1, 2, 4, 8, 6, 5]);
    expect(await searchLargest(1, 256, async () => true)).toBe(256);
    expect(await searchLargest(1, 256, async () => false)).toBeNull();
  });
});

describe('targets', () => {
  const rec = (failures: number, p99us: number): RunRecord => ({
    key: 'k', config: {} as RunRecord['config'], seed: 1, status: 'ok', exit: 0, stalls: 0, wall_ms: 1,
    report: { swiotlb: { map_failures: failures }, jobs: [{ errors_total: failures }], storage_clat: { ios: 10, p99_us: p99us, p999_us: p99us } } as unknown as RunReport,
  });

  it('parses failures=N and latency bounds, and judges a run against every one', () => {
    expect(parseTarget('failures=0')).toEqual({ text: 'failures=0', figure: 'failures', max: 0 });
    expect(parseTarget('p99=5ms')).toEqual({ text: 'p99=5ms', figure: 'p99', max: 5000 });
    expect(() => parseTarget('iops=5')).toThrow(InputError);
    expect(() => parseTarget('failures=none')).toThrow(/takes a whole number/);
    const t = [parseTarget('failures=0'), parseTarget('p99=5ms')];
    expect(missed(rec(0, 4000), t)).toBeUndefined();
    expect(missed(rec(3, 4000), t)).toBe('failures 3 > 0');
    expect(missed(rec(0, 6000), t)).toBe('p99 6.00ms > 5.00ms');
    expect(missed({ ...rec(0, 0), status: 'stalled', reason: 'stall: x' }, t)).toBe('stalled: stall: x');
  });

  it('sets iodepth and numjobs in every job section, over [global] and the file\'s own', () => {
    const text = '[global]\niodepth=4\nbs=4k\n\n[a]\nrw=read\niodepth=32\n[b]\nrw=write\n';
    const jobs = parseFioJobFile(overrideJob(text, { iodepth: 7, numjobs: 3 }), 'x').jobs;
    expect(jobs.map((j) => [j.name, j.iodepth, j.numjobs])).toEqual([['a', 7, 3], ['b', 7, 3]]);
  });
});

describe('npm run size', () => {
  const job = dir.file('three.fio');
  writeFileSync(job, '[three]\nrw=write\nbs=256k\niodepth=3\nnumjobs=1\ntime_based\nruntime=300ms\nsize=4M\n');
  const common = ['--job', job, '--vcpus', '1', '--mem', '1G', '--repeat', '1', '--runtime', '300ms'];

  it('finds 384 slots between powers of two, and says the kernel boots 512 for it', async () => {
    const r = await size(common);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    // One vCPU: one area, so probes step by one segment (128 slots): 128 and 256 fail, 512 passes, 384 passes.
    expect(lines.filter((l) => l.startsWith('  probe')).map((l) => /probe +(\d+) slots.*: (pass|fail)/.exec(l)!.slice(1).join(' ')))
      .toEqual(['128 fail', '256 fail', '512 pass', '384 pass']);
    expect(r.stdout).toContain('Smallest pool that meets the targets: 384 slots (768KiB), 4 probes of 1 runs (4 runs).');
    expect(r.stdout).toContain('The kernel rounds swiotlb=384 up to 512 slots (1MiB)');
    expect(r.stdout).toContain('Recommended kernel command line: swiotlb=512,1\n');
    // 6% of 1 GiB is 61 MiB, below the 64 MiB floor: the default is 64 MiB (32768 slots); 64 - 1 = 63 MiB saved.
    expect(r.stdout).toContain('CoCo default for 1G: 32768 slots (64MiB: 6% of memory, 64 MiB..1 GiB, rounded up to a power of two); saved 63MiB.');
    expect(r.stdout).toMatch(/At 512 slots \(1 runs, booted with swiotlb=512,1\): meets the targets; io_tlb_used_hiwater max 384, margin 128 slots \(25\.0%\)\./);
  }, 120_000);

  it('answers the inverse: a 256-slot pool serves iodepth 2 of these writes, not 3', async () => {
    const r = await size([...common, '--swiotlb', '512K', '--find', 'max-iodepth', '--output-format', 'json']);
    expect(r.stderr).toBe('');
    const doc = JSON.parse(r.stdout) as { max_iodepth: number; probes: { value: number; pass: boolean }[] };
    expect(doc.max_iodepth).toBe(2);
    expect(doc.probes.map((p) => [p.value, p.pass])).toEqual([[1, true], [2, true], [4, false], [3, false]]);
  }, 120_000);

  it('rejects a bad target and a lone --find with one line and exit 2', async () => {
    const r = await size([...common, '--target', 'iops=3']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^size: --target: "iops=3" is not valid; expected failures=N/);
    expect((await size([...common, '--find', 'max-iodepth'])).stderr).toMatch(/--find and --swiotlb go together/);
  });
});
