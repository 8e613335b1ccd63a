// Dynamic swiotlb in the VM, as a user runs it: the growth worker on its own thread adds pools while
// the vCPUs map, devices reach them, and the report's dynamic section adds up.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/util/worker-file.js';
import type { RunReport } from '../../src/vm/report.js';

const run = promisify(execFile);
const VM = join(projectRoot(), 'dist', 'scripts', 'vm.js');
const JOB = join(projectRoot(), 'jobs', 'dynamic-grow.fio');
const MiB = 1024 ** 2;

async function vmJson(args: string[]): Promise<RunReport> {
  const r = await run(process.execPath, ['--single-threaded-gc', VM, ...args, '--output-format', 'json'], { timeout: 60_000, maxBuffer: 64 << 20 });
  return JSON.parse(r.stdout) as RunReport;
}

describe('dynamic swiotlb in the VM', () => {
  it('a storage job that overruns a 2 MiB static pool makes the allocator grow: pools added, io_tlb_nslabs grows, the counts add up', async () => {
    const args = ['--vcpus', '4', '--mem', '4G', '--swiotlb', '2M', '--job', JOB, '--runtime', '1s'];
    const [off, on] = await Promise.all([vmJson(args), vmJson([...args, '--swiotlb-dynamic', 'on'])]);
    expect(off.dynamic).toEqual({ enabled: false });
    expect(off.swiotlb.map_failures).toBeGreaterThan(0);
    expect(off.swiotlb.io_tlb_nslabs).toBe(1024);
    const d = on.dynamic;
    expect(d.enabled).toBe(true);
    // default_nslabs is the 2 MiB default pool's 1024 slots: every dynamic pool asks for that (below the 4 MiB cap).
    expect(d.pools_added!.length).toBeGreaterThan(0);
    expect(d.pools_added!.every((p) => p.nslabs === 1024 && p.bytes === 2 * MiB && p.start + p.bytes <= 2 ** 32)).toBe(true);
    expect(on.swiotlb.io_tlb_nslabs).toBe(1024 + 1024 * d.pools_added!.length);
    // The per-area marks are the default pool's areas: 1024 slots over its areas, not the grown
    // io_tlb_nslabs over them (that read 2560 slots per area for 256-slot areas).
    expect(on.swiotlb.area_nslabs).toBe(1024 / on.swiotlb.nareas);
    for (const a of on.swiotlb.areas) expect(a.used_hiwater).toBeLessThanOrEqual(on.swiotlb.area_nslabs);
    expect(d.pools!.dynamic).toEqual({ count: d.pools_added!.length, bytes: 2 * MiB * d.pools_added!.length });
    expect(d.growth!.attempts[1]).toMatchObject({ bytes: 2 * MiB, ok: d.pools_added!.length });
    expect(d.growth!.runs).toBe(d.growth!.scheduled);
    expect(d.growth!.runs).toBe(d.pools_added!.length + d.growth!.failed);
    expect(d.memory!.static_pool_bytes).toBe(2 * MiB);
    expect(d.memory!.in_use_end_bytes).toBe(on.swiotlb.io_tlb_nslabs * 2048);
    expect(on.swiotlb.io_tlb_used).toBe(0);
    expect(on.swiotlb.io_tlb_transient_nslabs).toBe(0);
    expect(d.limits!.max_pools).toBeGreaterThanOrEqual(1025);
    // Transient pools (from the atomic pool) carry the maps that fail while the worker grows; each is
    // freed after its unmap's grace period, so none is left at the end.
    expect(d.transient!.freed + d.transient!.in_grace_period).toBe(d.transient!.created);
    expect(d.transient!.live).toBe(0);
    expect(on.swiotlb.map_failures).toBe(d.transient!.failed);
    // The growth is real: more of the job's writes got a bounce buffer than on the static pool.
    const ios = (r: RunReport) => r.jobs.reduce((a, j) => a + (j.write?.ios ?? 0), 0);
    expect(on.swiotlb.map_failures / on.swiotlb.map_attempts).toBeLessThan(off.swiotlb.map_failures / off.swiotlb.map_attempts);
    expect(ios(on)).toBeGreaterThan(0);
  }, 60_000);
});
