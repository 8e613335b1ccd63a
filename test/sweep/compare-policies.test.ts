// `npm run compare` on jobs/heavy.fio with every policy (static, throttle, dynamic, hybrid, cma) and
// three pool sizes, repeat 2: the comparison in a short form (one vCPU, 100 ms runs, two at
// a time). Expected memory figures from the policies' definitions: a fixed pool is exactly its size;
// cma commits the pool plus its CMA area (the CoCo rule's size for 1 GiB: 6% is below 64 MiB, so 64 MiB).
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { CompareDocument } from '../../src/sweep/compare.js';
import { projectRoot } from '../../src/util/worker-file.js';

const exec = promisify(execFile);
const ROOT = projectRoot();
const MiB = 1024 ** 2;

describe('compare: every policy on jobs/heavy.fio', () => {
  it('runs 5 policies x 3 sizes x 2 repeats, every row ok, with each policy\'s memory and wait figures', async () => {
    const args = [join(ROOT, 'dist', 'scripts', 'compare.js'), '--job', 'jobs/heavy.fio', '--vcpus', '1', '--mem', '1G', '--sizes', '1M,2M,4M',
      '--policies', 'static,throttle,dynamic,hybrid,cma', '--repeat', '2', '--runtime', '100ms', '--parallel', '2', '--output-format', 'json'];
    const r = await exec(process.execPath, args, { cwd: ROOT, timeout: 400_000, maxBuffer: 64 << 20 });
    const doc = JSON.parse(r.stdout) as CompareDocument;
    expect(doc.policies.map((p) => [p.name, p.status])).toEqual([
      ['static', 'mainline'], ['throttle', 'RFC'], ['dynamic', 'mainline'], ['hybrid', 'proposal'], ['cma', 'proposal'],
    ]);
    const poolOf = (row: CompareDocument['rows'][number]): string => ('swiotlb' in row.config.pool ? row.config.pool.swiotlb : '?');
    expect(doc.rows.map((row) => `${row.config.policy} ${poolOf(row)}`)).toEqual(
      ['static', 'throttle', 'dynamic', 'hybrid', 'cma'].flatMap((p) => ['1M', '2M', '4M'].map((s) => `${p} ${s}`)));
    for (const row of doc.rows) {
      expect([row.key, row.repeats, row.ok]).toEqual([row.key, 2, 2]);
      const size = Number.parseInt(poolOf(row), 10) * MiB;
      const peak = row.figures.peak_bytes!;
      const p = row.config.policy;
      if (p === 'static' || p === 'throttle') expect([row.key, peak.min, peak.max]).toEqual([row.key, size, size]);
      else if (p === 'cma') expect(peak.min, row.key).toBeGreaterThanOrEqual(size + 64 * MiB);
      else expect(peak.min, row.key).toBeGreaterThanOrEqual(size);
      // The wait figure exists for the policies that wait on throttle_sem, and only for them.
      expect(row.figures.throttle_wait_p99 === null, row.key).toBe(!(p === 'throttle' || p === 'hybrid'));
      // Transient-pool failures are a figure of the growing policies only.
      expect(row.figures.fail_transient === null, row.key).toBe(p === 'static' || p === 'throttle');
    }
    expect(doc.runs).toHaveLength(30);
    expect(new Set(doc.runs.map((x) => x.seed))).toEqual(new Set([doc.runs[0]!.seed]));
  }, 400_000);
});
