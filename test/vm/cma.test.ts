// [proposal] --policy cma in the VM (Alexander Graf, seed thread 002): on a fragmented guest (no free
// block of 1 MiB or more below 4 GiB, jobs/buddyinfo-fragmented.txt) dynamic swiotlb cannot grow,
// while pools grow into the CMA area reserved at boot, whose size counts as committed memory.
import { describe, expect, it } from 'vitest';
import type { RunReport } from '../../src/vm/report.js';
import { vmProcess } from '../helpers/vm-process.js';

const MiB = 1024 ** 2;
const ARGS = ['--vcpus', '2', '--mem', '8G', '--swiotlb', '2M', '--job', 'jobs/dynamic-grow.fio', '--runtime', '500ms', '--buddyinfo', 'jobs/buddyinfo-fragmented.txt', '--output-format', 'json'];

describe('--policy cma in the VM', () => {
  it('grows where dynamic swiotlb cannot on a fragmented guest, and counts the whole area as committed', async () => {
    const [d, c] = await Promise.all([vmProcess([...ARGS, '--policy', 'dynamic']), vmProcess([...ARGS, '--policy', 'cma', '--cma', '64M'])]);
    expect(d.code, d.stderr).toBe(0);
    expect(c.code, c.stderr).toBe(0);
    const dyn = JSON.parse(d.stdout) as RunReport;
    const cma = JSON.parse(c.stdout) as RunReport;
    // Dynamic: every growth fails, no pool is added.
    expect(dyn.dynamic.growth!.runs).toBeGreaterThan(0);
    expect(dyn.dynamic.growth!.failed).toBe(dyn.dynamic.growth!.runs);
    expect(dyn.dynamic.pools_added).toEqual([]);
    // cma: pools grow into the area (2 MiB each: default_nslabs is the boot pool's 1024 slots), none fails.
    const pools = cma.dynamic.pools_added!;
    expect(pools.length).toBeGreaterThan(0);
    expect(cma.dynamic.growth!.failed).toBe(0);
    const area = cma.policy.cma!;
    expect(cma.policy).toMatchObject({ name: 'cma', status: 'proposal' });
    expect(area.bytes).toBe(64 * MiB);
    expect(area.pool_bytes).toBe(pools.length * 2 * MiB);
    for (const p of pools) {
      expect(p.bytes).toBe(2 * MiB);
      expect(p.start >= area.base && p.start + p.bytes <= area.base + area.bytes).toBe(true);
    }
    // Committed memory: the default pool and the whole area from boot, whatever the pools use of it.
    expect(cma.dynamic.memory!.in_use_peak_bytes).toBeGreaterThanOrEqual(2 * MiB + 64 * MiB);
    expect(dyn.dynamic.memory!.in_use_peak_bytes).toBeLessThan(2 * MiB + 64 * MiB);
  }, 90_000);

  it('refuses --cma with another policy and a size that is not whole 4M blocks, one line, exit 2', async () => {
    const a = await vmProcess(['--vcpus', '1', '--policy', 'dynamic', '--cma', '64M']);
    expect([a.code, a.stderr.trim()]).toEqual([2, 'vm: --cma applies to --policy cma, not dynamic; drop it or choose that policy']);
    const b = await vmProcess(['--vcpus', '1', '--policy', 'cma', '--cma', '6M']);
    expect([b.code, b.stderr.trim()]).toEqual([2, 'vm: --cma: "6M" is not valid; expected whole 4M blocks from 4M to 3G (below 4 GiB), e.g. 256M']);
    const g = await vmProcess(['--vcpus', '1', '--policy', 'cma', '--grow-limit', '64M']);
    expect(g.code).toBe(2);
    expect(g.stderr.trim()).toBe('vm: --grow-limit applies to --policy dynamic or hybrid, not cma; drop it or choose one of them');
  }, 60_000);
});
