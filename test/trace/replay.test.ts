// npm run replay: the trace summary's figures worked out by hand from the kernel's slot rounding
// (nr_slots(size + (orig & min_align_mask & (IO_TLB_SIZE - 1)))), and replays in the VM of tiny
// hand-written traces whose peak is known exactly, against a pool that fits and one slot short.
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { summarizeTrace } from '../../src/trace/replay.js';
import { tempDir } from '../helpers/log-files.js';
import { TRACE_HEADER, peakTrace as peakTraceIn, traceLine, writeTrace } from '../helpers/traces.js';
import { type ScriptResult, scriptProcess } from '../helpers/vm-process.js';

const dir = tempDir('coco-replay-test-');
afterAll(() => dir.remove());

function replay(args: string[]): Promise<ScriptResult> {
  return scriptProcess('replay', args, { nodeFlags: ['--single-threaded-gc'] });
}

const HEADER = TRACE_HEADER;
const line = traceLine;
const write = (name: string, lines: string[]) => writeTrace(dir.path, name, lines);
const peakTrace = (name: string, extra: number) => peakTraceIn(dir.path, name, extra);

const opts = (trace: string) => ({ trace, skipBadLines: false, bouncedLifetimeUs: 100, minAlignMask: (d: string) => (d.startsWith('nvme') ? 0xfff : 0) });

describe('the trace summary (no VM)', () => {
  it('counts slots as the kernel does: min_align_mask offsets, SG entries, unmatched and held-to-end mappings', async () => {
    const f = write('summary.txt', [
      // nvme0 (0xfff): 2048 bytes at ...400: offset 0x400, nr_slots(3072) = 2.
      line(0, 1.000001, 'dma_map_phys', 'nvme0 dir=FROM_DEVICE dma_addr=a000 size=2048 phys_addr=12345400 attrs='),
      // 4096 at ...800: offset 0x800 & 0x7ff = 0, 2 slots. Live now: 4.
      line(1, 1.000002, 'dma_map_phys', 'nvme0 dir=TO_DEVICE dma_addr=b000 size=4096 phys_addr=12346800 attrs=SKIP_CPU_SYNC'),
      // 100 bytes at ...7ff on nvme0: nr_slots(100 + 0x7ff) = 2; on virtio0 (mask 0): 1. Live: 7.
      line(0, 1.000003, 'dma_map_phys', 'nvme0 dir=TO_DEVICE dma_addr=c000 size=100 phys_addr=123477ff attrs='),
      line(0, 1.000004, 'dma_map_phys', 'virtio0 dir=TO_DEVICE dma_addr=d000 size=100 phys_addr=123487ff attrs=NO_WARN'),
      // SG on nvme0: 0x1000 at 0x1000 (2 slots) and 0x200 at 0x2300 (offset 0x300: nr_slots(0x500) = 1). Live: 10 slots, 6 mappings.
      line(1, 1.000005, 'dma_map_sg', 'nvme0 dir=TO_DEVICE nents=2/2 ents=2/2 dma_addrs={0xe000,0xf000} sizes={0x1000,0x200} phys_addrs={0x1000,0x2300} attrs='),
      line(0, 1.000006, 'dma_unmap_phys', 'nvme0 dir=FROM_DEVICE dma_addr=a000 size=2048 attrs='),
      line(0, 1.000007, 'dma_unmap_phys', 'nvme0 dir=FROM_DEVICE dma_addr=9999 size=2048 attrs='), // never mapped
      line(1, 1.000008, 'dma_unmap_sg', 'nvme0 dir=TO_DEVICE phys_addrs={0x1000,0x2300} attrs='),
      line(0, 1.000009, 'dma_unmap_phys', 'nvme0 dir=TO_DEVICE dma_addr=b000 size=4096 attrs='),
      line(0, 1.000010, 'dma_alloc', 'nvme0 dir=BIDIRECTIONAL dma_addr=0 size=4096 virt_addr=000000001234 flags=GFP_KERNEL attrs='),
      line(0, 1.000011, 'sched_switch', 'prev_comm=fio prev_pid=1'),
      line(0, 1.000012, 'swiotlb_bounced', 'dev_name: nvme0 dma_mask=ffffffffffffffff dev_addr=12345400 size=2048 FORCE'),
    ]);
    const s = await summarizeTrace(opts(f));
    expect(s.mode).toBe('dma');
    expect(s.peak).toEqual({ mappings: 6, bytes: 2048 + 4096 + 100 + 100 + 0x1000 + 0x200, slots: 10, at_us: 1_000_005 });
    expect(s.devices['nvme0']).toMatchObject({ maps: 3, sg_maps: 1, sg_entries: 2, unmaps: 3, min_align_mask: 0xfff, peak_slots: 9 });
    expect(s.devices['virtio0']).toMatchObject({ maps: 1, unmaps: 0, peak_slots: 1 });
    expect(s.unmatched_unmaps).toBe(1);
    // nvme0's 100-byte map (2 slots) and virtio0's (1 slot) are never unmapped.
    expect(s.held_to_end).toEqual({ mappings: 2, slots: 3 });
    expect(s.cpus).toEqual([0, 1]);
    expect(s.cpu_count).toBe(2);
    expect(s.dma_alloc_events).toBe(1);
    expect(s.other_events).toBe(1);
    expect(s.bounced_not_replayed).toBe(1);
    const hist = Object.fromEntries(s.size_histogram.map((b) => [String(b.le), b.count]));
    expect(hist).toMatchObject({ '512': 3, '2048': 1, '4096': 2 });
  });

  it('a trace of only swiotlb_bounced: each bounce held for the modelled lifetime (100 us here)', async () => {
    const f = write('bounced.txt', [
      // 1 slot each; at t=0 and t=50us two are live; the first ends at 100, the second at 150; the third at 200 is alone.
      line(0, 5.0, 'swiotlb_bounced', 'dev_name: 0000:00:04.0 dma_mask=ffffffff dev_addr=17c407000 size=2048 FORCE'),
      line(1, 5.00005, 'swiotlb_bounced', 'dev_name: 0000:00:04.0 dma_mask=ffffffff dev_addr=17c408000 size=2048 FORCE'),
      line(1, 5.0002, 'swiotlb_bounced', 'dev_name: 0000:00:04.0 dma_mask=ffffffff dev_addr=17c409000 size=4096 FORCE'),
    ]);
    const s = await summarizeTrace(opts(f));
    expect(s.mode).toBe('bounced');
    expect(s.peak.slots).toBe(2);
    expect(s.peak.at_us).toBe(5_000_050);
    expect(s.held_to_end.mappings).toBe(0);
  });

  it('a malformed line stops the read with its line number; skipBadLines counts it', async () => {
    const f = write('bad.txt', [line(0, 1, 'dma_map_phys', 'nvme0 dir=TO_DEVICE dma_addr=zz size=1 phys_addr=0 attrs=')]);
    await expect(summarizeTrace(opts(f))).rejects.toThrow(`trace line ${HEADER.length + 1}: dma_map_phys: expected`);
    const s = await summarizeTrace({ ...opts(f), skipBadLines: true });
    expect(s.bad_lines).toBe(1);
  });
});

describe('replay in the VM', () => {
  const vm = ['--mem', '256M', '--vcpus', '1', '--output-format', 'json', '--speed', '0.2'];
  it('a 128-slot peak fits a 128-slot pool exactly: no failures, io_tlb_used_hiwater 128', async () => {
    const r = await replay([peakTrace('p128.txt', 0), ...vm, '--exact-nslabs', '128']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const d = JSON.parse(r.stdout);
    expect(d.trace.peak.slots).toBe(128);
    expect(d.swiotlb.map_failures).toBe(0);
    expect(d.swiotlb.io_tlb_used_hiwater).toBe(128);
    expect(d.swiotlb.io_tlb_used).toBe(0);
    expect(d.replay).toMatchObject({ maps_ok: 88, maps_failed: 0, unmaps: 88, unmaps_skipped: 0, held_to_end: 0 });
  });

  it('a 129-slot peak against the same pool: exactly one map fails and its unmap is skipped', async () => {
    const r = await replay([peakTrace('p129.txt', 1), ...vm, '--exact-nslabs', '128']);
    expect(r.code).toBe(0);
    const d = JSON.parse(r.stdout);
    expect(d.trace.peak.slots).toBe(129);
    expect(d.swiotlb.map_failures).toBe(1);
    expect(d.swiotlb.map_failures_by_cause.full).toBe(1);
    expect(d.replay).toMatchObject({ maps_ok: 88, maps_failed: 1, unmaps: 88, unmaps_skipped: 1 });
    expect(d.replay.notes.join(' ')).toMatch(/1 maps failed in the replay/);
  });

  it('--vcpus defaults to the trace CPUs; a mapping never unmapped is held to the end; the text report names the trace', async () => {
    const f = write('two-cpus.txt', [
      line(0, 2.0, 'dma_map_phys', 'nvme0 dir=TO_DEVICE dma_addr=a000 size=4096 phys_addr=1000 attrs='),
      line(1, 2.0001, 'dma_map_phys', 'nvme0 dir=FROM_DEVICE dma_addr=b000 size=8192 phys_addr=3000 attrs='),
      line(0, 2.0002, 'dma_unmap_phys', 'nvme0 dir=TO_DEVICE dma_addr=a000 size=4096 attrs='),
    ]);
    const r = await replay([f, '--mem', '256M', '--exact-nslabs', '256']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/replay \(trace CPU c runs on vCPU c mod 2, speed 1\)/);
    expect(r.stdout).toMatch(/held to the end 1\b/);
    expect(r.stdout).toMatch(/peak in the trace \(the lower bound of any pool\): 6 slots/);
  });

  it('a malformed line is exit 2 naming the line; --skip-bad-lines counts it and replays the rest', async () => {
    const f = write('bad-vm.txt', [
      line(0, 2.0, 'dma_map_phys', 'nvme0 dir=TO_DEVICE dma_addr=a000 size=4096 phys_addr=1000 attrs='),
      'this is not a trace line',
    ]);
    const bad = await replay([f, '--mem', '256M', '--vcpus', '1']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(new RegExp(`^replay: trace line ${HEADER.length + 2}: expected a header line or an event line`));
    expect(bad.stderr.split('\n').filter((l) => l !== '')).toHaveLength(1);
    const ok = await replay([f, '--mem', '256M', '--vcpus', '1', '--skip-bad-lines', '--output-format', 'json']);
    expect(ok.code).toBe(0);
    const d = JSON.parse(ok.stdout);
    expect(d.trace.bad_lines).toBe(1);
    expect(d.replay.maps_ok).toBe(1);
    expect(d.replay.held_to_end).toBe(1);
  });
  it('[RFC] MAY_BLOCK maps go through the throttle policy; the waiting vCPU takes its due unmaps meanwhile (no self-deadlock)', async () => {
    // 100 one-slot MAY_BLOCK maps, then their unmaps, on a 128-slot pool: high_throttle is 70% of
    // 128 = 89 slots, so map 90 is throttled (it takes throttle_sem) and map 91 waits for it; only
    // map 90's unmap, later in the ring, releases it.
    const lines: string[] = [];
    let t = 5;
    for (let i = 0; i < 100; i++) lines.push(line(0, (t += 0.0001), 'dma_map_phys', `virtio0 dir=TO_DEVICE dma_addr=${(0x10000 + i * 0x1000).toString(16)} size=2048 phys_addr=${(0x200000 + i * 0x1000).toString(16)} attrs=MAY_BLOCK`));
    for (let i = 0; i < 100; i++) lines.push(line(0, (t += 0.0001), 'dma_unmap_phys', `virtio0 dir=TO_DEVICE dma_addr=${(0x10000 + i * 0x1000).toString(16)} size=2048 attrs=`));
    const r = await replay([write('may-block.txt', lines), '--vcpus', '1', '--mem', '256M', '--exact-nslabs', '128', '--policy', 'throttle', '--output-format', 'json']);
    expect(r.code).toBe(0);
    const d = JSON.parse(r.stdout);
    expect(d.throttle.high_throttle).toBe(89);
    expect(d.throttle.throttled).toBeGreaterThanOrEqual(2);
    expect(d.throttle.waits).toBeGreaterThanOrEqual(1);
    expect(d.replay.early_unmaps).toBeGreaterThan(0);
    expect(d.replay).toMatchObject({ maps_ok: 100, maps_failed: 0, unmaps: 100, unmaps_skipped: 0 });
    expect(d.swiotlb.io_tlb_used).toBe(0);
    expect(d.run.status).toBe('ok');
  });
});
