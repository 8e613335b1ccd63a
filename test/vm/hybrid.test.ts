// [proposal] The hybrid policy in the VM (Robin Murphy, seed thread 000): vCPUs whose MAY_BLOCK maps
// time out on throttle_sem grow the allocator themselves, next to the growth worker, and the report's
// policy, throttle and dynamic sections agree with each other.
import { describe, expect, it } from 'vitest';
import type { RunReport } from '../../src/vm/report.js';
import { vmProcess } from '../helpers/vm-process.js';

const MiB = 1024 ** 2;

describe('--policy hybrid in the VM', () => {
  it('with --hybrid-timeout 0 the vCPUs grow 1 MiB pools synchronously, and every count adds up', async () => {
    const args = ['--vcpus', '2', '--mem', '1G', '--swiotlb', '1M', '--job', 'jobs/heavy.fio', '--runtime', '500ms', '--policy', 'hybrid', '--hybrid-timeout', '0'];
    const [json, text] = await Promise.all([vmProcess([...args, '--output-format', 'json']), vmProcess(args)]);
    expect(json.code, json.stderr).toBe(0);
    const r = JSON.parse(json.stdout) as RunReport;
    expect(r.policy).toMatchObject({ name: 'hybrid', status: 'proposal' });
    expect(r.policy.source).toContain('Robin Murphy');
    const h = r.policy.hybrid!;
    expect(h.timeout_ms).toBe(0);
    // Eight 16-deep jobs of 64 KiB and 256 KiB I/O overrun a 512-slot pool at once: the first throttled
    // map holds throttle_sem, the next one waits, times out at once and grows.
    expect(h.sync_grows.count).toBeGreaterThan(0);
    expect(h.timeouts).toBe(h.sync_grows.count + h.sync_grows.failed + h.sync_grows.skipped);
    expect(h.waits).toBe(r.throttle.waits);
    expect(h.wait_us).toEqual(r.throttle.wait_us);
    // default_nslabs is the boot pool's 512 slots: each pool, the vCPUs' and the worker's, is 1 MiB.
    const d = r.dynamic;
    expect(d.enabled).toBe(true);
    expect(h.sync_grows.bytes).toBe(h.sync_grows.count * MiB);
    expect(d.pools_added!.every((p) => p.nslabs === 512)).toBe(true);
    expect(d.pools_added!.length).toBe(h.sync_grows.count + d.growth!.runs - d.growth!.failed);
    expect(r.swiotlb.io_tlb_nslabs).toBe(512 * (1 + d.pools_added!.length));
    // The thresholds followed io_tlb_nslabs: 70% and 65% of the grown allocator, not of the boot pool.
    expect(r.throttle.high_throttle).toBeGreaterThan(Math.floor((512 * 70) / 100));
    expect(r.throttle.high_throttle).toBeLessThanOrEqual(Math.floor((r.swiotlb.io_tlb_nslabs * 70) / 100));
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/policy: hybrid \(proposal: Robin Murphy/);
    expect(text.stdout).toMatch(/hybrid \[proposal\]: timeout 0ms; waits \d+ \(p50 \d+us, p99 \d+us, max \d+us\), timeouts \d+; synchronous grows [1-9]\d* \(/);
  }, 90_000);

  it('refuses --hybrid-timeout with another policy, one line, exit 2', async () => {
    const r = await vmProcess(['--vcpus', '1', '--policy', 'dynamic', '--hybrid-timeout', '5ms']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('vm: --hybrid-timeout applies to --policy hybrid, not dynamic; drop it or choose that policy');
  });
});
