// Restricted DMA pools in the VM, as a user runs them (--restricted-pool DEV=SIZE): the device's maps
// go to its own io_tlb_mem, which never grows (not even with dynamic swiotlb on), the other device
// keeps the default pool, the report and the log keep the two allocators apart, the analyzer counts both.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyzeFile } from '../../src/analyze/run.js';
import type { RunReport } from '../../src/vm/report.js';
import { vmProcess } from '../helpers/vm-process.js';

// A storage job on nvme0 (16 KiB writes: 8 slots each, 4 in flight: at most 32 of the default pool's
// 512 slots) and a NIC burst on eth0 (64 KiB packets: 32 slots each, 16 in flight: 512 slots wanted
// of a 128 KiB restricted pool's 64, so at most two at a time are mapped and the rest drop).
const JOB = `[storage]
ioengine=libaio
rw=randwrite
bs=16k
size=1M
iodepth=4
time_based
runtime=1s

[burst]
ioengine=net
rw=read
bs=64k
iodepth=16
time_based
runtime=1s
`;

describe('--restricted-pool in the VM', () => {
  it('eth0\'s 128 KiB restricted pool drops packets while nvme0 maps from the default pool; with dynamic on nothing grows', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coco-restricted-'));
    const job = join(dir, 'job.fio');
    const log = join(dir, 'run.ndjson');
    writeFileSync(job, JOB);
    const r = await vmProcess([
      '--vcpus', '2', '--mem', '2G', '--swiotlb', '1M', '--job', job, '--runtime', '400ms', '--swiotlb-dynamic', 'on',
      '--restricted-pool', 'eth0=128k', '--log-file', log, '--output-format', 'json',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout) as RunReport;
    expect(rep.restricted_pools).toHaveLength(1);
    const p = rep.restricted_pools[0]!;
    expect(p).toMatchObject({
      device: 'eth0', name: 'restricted-dma-eth0', debugfs: '/sys/kernel/debug/swiotlb/restricted-dma-eth0',
      bytes: 131072, io_tlb_nslabs: 64, nareas: 1, can_grow: false, io_tlb_used: 0, area_used: 0,
    });
    // The area's mark is exact (under its lock); io_tlb_used_hiwater is the lock-free total_used's and
    // may read above nslabs (its decrement comes after the area lock), so it is only checked for use.
    expect(p.area_used_hiwater).toBeGreaterThan(0);
    expect(p.area_used_hiwater).toBeLessThanOrEqual(64);
    expect(p.io_tlb_used_hiwater).toBeGreaterThan(0);
    expect(p.map_failures).toBeGreaterThan(0);
    expect(p.map_failures).toBe(p.map_failures_by_cause.full);
    expect(p.unmaps).toBe(p.map_attempts - p.map_failures);
    // Every failed eth0 map is a dropped packet, and none of them reached the default allocator.
    const burst = rep.jobs.find((j) => j.name === 'burst')!;
    expect(burst.packets_dropped).toBe(p.map_failures);
    expect(rep.swiotlb.map_failures).toBe(0);
    const storage = rep.jobs.find((j) => j.name === 'storage')!;
    expect(storage.errors_total).toBe(0);
    expect(rep.swiotlb.map_attempts).toBe(storage.write!.ios);
    expect(rep.swiotlb.io_tlb_nslabs).toBe(512);
    // can_grow is never set for the restricted mem, and the default pool never filled: no growth, no transient pool.
    expect(rep.dynamic.pools_added).toEqual([]);
    expect(rep.dynamic.growth!.scheduled).toBe(0);
    expect(rep.dynamic.transient!.created).toBe(0);

    const records = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const boot = records.filter((x) => x['event'] === 'boot_line').map((x) => String(x['text']));
    expect(boot[0]).toMatch(/^software IO TLB: Reserved memory: created restricted DMA pool at 0x[0-9a-f]{16}, size 0 MiB$/);
    expect(boot).toContain('OF: reserved mem: initialized node restricted-dma-eth0, compatible id restricted-dma-pool');
    expect(boot.at(-1)).toBe('eth0: assigned reserved memory node restricted-dma-eth0');
    const fail = records.find((x) => x['event'] === 'map_failure')!;
    expect(fail).toMatchObject({ device: 'eth0', total: 64, size: 65536 });
    expect(String(fail['msg'])).toMatch(/^eth0: swiotlb buffer is full \(sz: 65536 bytes\), total 64 \(slots\), used \d+ \(slots\)$/);
    expect(records.filter((x) => x['event'] === 'pool_created').map((x) => [x['kind'], x['nslabs'], x['nareas'], x['device']]))
      .toEqual([['default', 512, 2, undefined], ['restricted', 64, 1, 'eth0']]);

    // The analyzer counts the failures of both allocators and keeps the default pool's area size.
    const { analysis } = await analyzeFile(log);
    expect(analysis.map_failures.total).toBe(p.map_failures);
    expect(analysis.map_failures.by_device).toEqual({ eth0: expect.any(Number) });
    expect(analysis.timeline.area_nslabs).toBe(rep.swiotlb.area_nslabs);
  });

  it('flag and variable errors are one line and exit 2', async () => {
    const bad = await vmProcess(['--restricted-pool', 'wlan0=1M']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/^vm: --restricted-pool: "wlan0" is not a device of the run; expected DEV=SIZE/);
    const env = await vmProcess([], { COCO_RESTRICTED_POOL: 'eth0=3k' });
    expect(env.code).toBe(2);
    expect(env.stderr.trim()).toMatch(/^vm: COCO_RESTRICTED_POOL \(environment\) eth0: "3k" is not valid; expected a whole number of 4 KiB pages/);
    const big = await vmProcess(['--mem', '256M', '--restricted-pool', 'nvme0=1G']);
    expect(big.code).toBe(2);
    expect(big.stderr.trim()).toMatch(/^vm: --restricted-pool nvme0: OF: reserved mem: failed to allocate memory for node 'restricted-dma-nvme0': size 1024 MiB/);
  });
});
