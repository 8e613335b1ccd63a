// npm run bench --against DIR: this build's core and another checkout's alternated in one window per
// configuration. Here DIR is this checkout itself (the same core on both arms); figures are printed by
// the bench, never asserted, but both arms must have run in every configuration.
import { describe, expect, it } from 'vitest';
import { AGAINST_PLAN, measureAgainst } from '../../src/bench/against-bench.js';
import { projectRoot } from '../../src/util/worker-file.js';
import { scriptProcess } from '../helpers/vm-process.js';

describe('bench --against', () => {
  it('runs every configuration with both builds of the core', async () => {
    const rows = await measureAgainst(projectRoot(), 0.1);
    expect(rows.map((r) => [r.mode, r.threads])).toEqual(AGAINST_PLAN.map((p) => [p.mode, p.threads]));
    for (const r of rows) {
      expect(r.thisPerS).toBeGreaterThan(0);
      expect(r.againstPerS).toBeGreaterThan(0);
    }
  }, 60_000);

  it('rejects a directory without a built core in one line, exit status 2', async () => {
    const r = await scriptProcess('bench', ['--only', 'native', '--against', '/nonexistent-checkout']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('bench: --against: "/nonexistent-checkout" has no dist/src/swiotlb/mem.js; expected a built checkout (npm run build there)');
  });
});
