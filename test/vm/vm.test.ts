// End-to-end runs of the compiled `vm` command, as a user runs it.
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/util/worker-file.js';
import { vmProcess as vm } from '../helpers/vm-process.js';
import { analyzeFile } from '../../src/analyze/run.js';
import type { RunReport } from '../../src/vm/report.js';
import { createRunLogger } from '../../src/log/index.js';
import { parseVmOptions } from '../../src/vm/options.js';
import { defaultJobs, runVm } from '../../src/vm/vm.js';
import { setTimeout as sleep } from 'node:timers/promises';

const run = promisify(execFile);
const VM = join(projectRoot(), 'dist', 'scripts', 'vm.js');

async function vmJson(args: string[]): Promise<RunReport> {
  const r = await vm([...args, '--output-format', 'json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as RunReport;
}

function readRecords(file: string): ({ event: string; msg: string; level: number } & Record<string, unknown>)[] {
  return readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event: string; msg: string; level: number });
}

function checkConsistent(rep: RunReport) {
  const ios = rep.jobs.reduce((s, j) => s + (j.read?.ios ?? 0) + (j.write?.ios ?? 0), 0);
  expect(ios).toBeGreaterThan(0);
  expect(rep.swiotlb.io_tlb_used).toBe(0);
  expect(rep.swiotlb.io_tlb_used_hiwater).toBeGreaterThan(0);
  expect(rep.swiotlb.unmaps).toBe(rep.swiotlb.map_attempts - rep.swiotlb.map_failures);
}

describe('npm run vm', () => {
  it.each([1, 4, 32])('runs the default workload on %i vCPUs with verified data', async (vcpus) => {
    const rep = await vmJson(['--vcpus', String(vcpus), '--runtime', '1s', '--mem', '4G']);
    checkConsistent(rep);
    expect(rep.run.vcpus).toBe(vcpus);
    expect(rep.jobs[0]!.jobs).toBe(vcpus);
    expect(rep.jobs[0]!.verify!.sectors_ok).toBeGreaterThan(0);
    expect(rep.jobs[0]!.verify!.sectors_bad).toBe(0);
    expect(rep.jobs[0]!.errors_total).toBe(0);
  });

  it('prints the kernel boot lines and a fio-like report', async () => {
    const r = await vm(['--vcpus', '2', '--runtime', '500ms', '--cmdline', 'swiotlb=16384,16,force']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('software IO TLB: area num 16.');
    // 16 GiB on q35: low RAM ends at 2 GiB; memblock_alloc_low takes the 32 MiB top-down below it.
    expect(r.stdout).toContain('software IO TLB: mapped [mem 0x000000007e000000-0x0000000080000000] (32MB)');
    // dma_atomic_pool_init: 16 GiB -> 128 KiB per GiB of totalram (16 GiB - 32 MiB - 1 MiB) = 2036 KiB, order 9.
    expect(r.stdout).toContain('DMA: preallocated 2048 KiB GFP_KERNEL pool for atomic allocations');
    expect(r.stdout).toContain('DMA: preallocated 2048 KiB GFP_KERNEL|GFP_DMA32 pool for atomic allocations');
    expect(r.stdout).toMatch(/guest memory \(\/proc\/buddyinfo[^\n]*\n  at the start:\n    Node 0, zone    DMA32 /);
    expect(r.stdout).toContain('Memory encryption is active and system is using DMA bounce buffers');
    expect(r.stdout).toMatch(/read: IOPS=/);
    expect(r.stdout).toContain('io_tlb_nslabs=16384');
  });

  it('reports map failures as I/O errors, not crashes, when the pool is too small', async () => {
    const rep = await vmJson(['--vcpus', '8', '--runtime', '1s', '--swiotlb', '1M']);
    expect(rep.swiotlb.map_failures).toBeGreaterThan(0);
    expect(rep.jobs[0]!.errors_total).toBeGreaterThan(0);
    expect(rep.jobs[0]!.first_error).toMatch(/^swiotlb buffer is full \(sz: \d+ bytes\), total \d+ \(slots\), used \d+ \(slots\)$/);
    expect(rep.swiotlb.io_tlb_used).toBe(0);
  });

  it('drops and counts packets when a NIC job exhausts the pool', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coco-'));
    const job = join(dir, 'flood.fio');
    writeFileSync(job, '[flood]\nioengine=net\nrw=write\nbs=64k\niodepth=64\nnumjobs=4\ntime_based\nruntime=1s\n');
    const rep = await vmJson(['--vcpus', '4', '--swiotlb', '1M', '--job', job]);
    expect(rep.jobs[0]!.packets_dropped).toBeGreaterThan(0);
    expect(rep.jobs[0]!.write!.ios).toBeGreaterThan(0);
    expect(rep.swiotlb.io_tlb_used).toBe(0);
  });

  it('treats ramp_time as fio does: lead-in added to the runtime, and not in the statistics', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coco-'));
    const job = join(dir, 'ramp.fio');
    writeFileSync(job, '[r]\nrw=randwrite\nbs=4k\niodepth=4\nsize=8M\ntime_based\nruntime=1s\nramp_time=600ms\n');
    const rep = await vmJson(['--vcpus', '1', '--job', job]);
    const j = rep.jobs[0]!;
    // The job runs 1.6 s; its statistics (runtime, and so IOPS and bandwidth) cover the last 1 s only.
    expect(rep.run.run_ms).toBeGreaterThanOrEqual(1600);
    expect(j.runtime_ms).toBeGreaterThanOrEqual(1000);
    expect(j.runtime_ms).toBeLessThan(1500);
    expect(j.write!.ios).toBeGreaterThan(0);
  });

  it('reports each clone on its own without group_reporting and one entry with it, as fio does', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coco-'));
    const body = '[w]\nrw=randwrite\nbs=4k\niodepth=2\nnumjobs=2\nsize=1M\ntime_based\nruntime=300ms\n';
    writeFileSync(join(dir, 'apart.fio'), body);
    writeFileSync(join(dir, 'together.fio'), body + 'group_reporting\n');
    const apart = await vmJson(['--vcpus', '2', '--mem', '4G', '--job', join(dir, 'apart.fio')]);
    const together = await vmJson(['--vcpus', '2', '--mem', '4G', '--job', join(dir, 'together.fio')]);
    expect(apart.jobs.map((j) => [j.name, j.jobs, j.cpus])).toEqual([['w', 1, [0]], ['w', 1, [1]]]);
    expect(together.jobs.map((j) => [j.name, j.jobs, j.cpus])).toEqual([['w', 2, [0, 1]]]);
    // One group either way: its line sums every clone.
    expect(apart.groups[0]!.write!.ios).toBe(apart.jobs[0]!.write!.ios + apart.jobs[1]!.write!.ios);
  });

  it('limits a read job by rate=\'s read value, not its write value', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coco-'));
    const job = join(dir, 'rate.fio');
    writeFileSync(job, '[r]\nrw=randread\nbs=4k\niodepth=4\nsize=8M\ntime_based\nruntime=1s\nrate=400k,40k\n');
    const rep = await vmJson(['--vcpus', '1', '--job', job]);
    const read = rep.jobs[0]!.read!;
    const bytesPerS = (read.bytes * 1000) / rep.jobs[0]!.runtime_ms;
    expect(bytesPerS).toBeGreaterThan(300 * 1024);
    expect(bytesPerS).toBeLessThan(440 * 1024);
  });

  it('runs a job file with stonewalled groups and reads back what it wrote', async () => {
    const rep = await vmJson(['--vcpus', '2', '--job', join(projectRoot(), 'jobs', 'seq-large.fio'), '--size', '8M']);
    expect(rep.groups.map((g) => g.groupid)).toEqual([0, 1]);
    const reader = rep.jobs.find((j) => j.groupid === 1)!;
    expect(reader.read!.bytes).toBeGreaterThan(0);
  });

  it('reports the block size of each direction in the JSON, exactly (bs=4k,64k; bssplit with a list per direction)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coco-'));
    const job = join(dir, 'bs.fio');
    writeFileSync(job, '[global]\nsize=1M\nruntime=200ms\ntime_based\n[w]\nrw=randwrite\nbs=4k,64k\n[s]\nrw=randrw\nbssplit=4k/25:1500/75,8k/10:64k\n[n]\nioengine=net\nrw=write\nbs=1500\n');
    const rep = await vmJson(['--vcpus', '1', '--job', job]);
    // fio keeps one size per direction: 4k reads and 64k writes; the split's blank share is 90%.
    expect(rep.jobs.map((j) => j.bs)).toEqual([
      { read: '4k', write: '64k' },
      { read: '4k/25:1500/75', write: '8k/10:64k/90' },
      { read: '1500', write: '1500' },
    ]);
  });

  it('verifies I/O that is not whole sectors in its own unit, says why it cannot when none fits, and reads back a write-only job', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coco-'));
    const job = join(dir, 'verify.fio');
    writeFileSync(job, '[global]\nverify=crc32c\nsize=512k\n[odd]\nrw=write\nbs=1500\n[mixed]\nrw=randrw\nbssplit=4k/25:1500/75\nio_size=256k\n[seq]\nrw=write\nbs=64k\n');
    const rep = await vmJson(['--vcpus', '1', '--job', job]);
    const [odd, mixed, seq] = rep.jobs;
    // odd: 512 KiB holds 349 whole 1500-byte blocks, written once each in order and read back.
    expect(odd!.verify).toEqual({ unit_bytes: 1500, sectors_ok: 349, sectors_bad: 0, sectors_unwritten: 0 });
    expect([odd!.write!.bytes, odd!.read!.bytes]).toEqual([349 * 1500, 349 * 1500]);
    expect(odd!.read!.runtime_ms).toBeGreaterThan(0);
    // mixed: no unit; every I/O is counted as not verified, with why.
    expect(mixed!.verify!.unit_bytes).toBe(0);
    expect(mixed!.verify!.not_verified).toEqual({ reads: mixed!.read!.ios, writes: mixed!.write!.ios, reason: expect.stringContaining('largest common divisor 4 bytes') });
    // seq: fio's verify phase reads back the 8 x 64 KiB written: 1024 sectors.
    expect(seq!.verify).toEqual({ unit_bytes: 512, sectors_ok: 1024, sectors_bad: 0, sectors_unwritten: 0 });
    expect([seq!.write!.bytes, seq!.read!.bytes]).toEqual([512 * 1024, 512 * 1024]);
  });

  it('prints each group direction from its own jobs\' runtimes, as fio does (jobs/net.fio: the sender starts 1 s late)', async () => {
    const r = await vm(['--vcpus', '2', '--job', join(projectRoot(), 'jobs', 'net.fio'), '--runtime', '1s', '--output-format', 'json']);
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout) as RunReport;
    const [receiver, sender] = rep.jobs;
    const g = rep.groups[0]!;
    // One job per direction: the group's run= and bandwidths are that job's own (its runtime
    // excludes the sender's startdelay=1), never the group's 2 s span.
    expect([g.read!.min_run_ms, g.read!.max_run_ms]).toEqual([receiver!.runtime_ms, receiver!.runtime_ms]);
    expect([g.write!.min_run_ms, g.write!.max_run_ms]).toEqual([sender!.runtime_ms, sender!.runtime_ms]);
    expect(sender!.runtime_ms).toBeLessThan(1900);
    expect(g.write!.bw_bytes).toBe(Math.floor((sender!.write!.bytes * 1000) / sender!.runtime_ms));
    expect(g.read!.bw_bytes).toBe(Math.floor((receiver!.read!.bytes * 1000) / receiver!.runtime_ms));
  });

  it('writes an NDJSON log in the catalogue\'s shape, ratelimited like the kernel, that the analyzer reads whole', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coco-'));
    const file = join(dir, 'run.ndjson');
    // 256 KiB requests at depth 16 on each of 2 vCPUs want 4,096 slots of a 512-slot pool: most maps
    // fail at once, so the ratelimit is exercised however slowly a loaded host runs the VM.
    const job = join(dir, 'deep.fio');
    writeFileSync(job, '[deep]\nrw=randread\nbs=256k\niodepth=16\nnumjobs=2\nsize=8M\ntime_based\n');
    const r = await vm(['--vcpus', '2', '--runtime', '1s', '--swiotlb', '1M', '--job', job, '--log-file', file, '--output-format', 'json', '--tune', '300ms:io_tlb_used_hiwater=0']);
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout) as RunReport;
    const recs = readRecords(file);
    const count = (e: string) => recs.filter((x) => x.event === e).length;
    for (const e of ['run_config', 'boot_line', 'pool_created', 'sample', 'map_failure', 'io_error', 'run_summary']) expect(count(e), e).toBeGreaterThan(0);
    const fail = recs.find((x) => x.event === 'map_failure')!;
    expect(fail.msg).toBe(`nvme0: swiotlb buffer is full (sz: ${fail['size']} bytes), total 512 (slots), used ${fail['used']} (slots)`);
    expect(fail).toMatchObject({ level: 40, device: 'nvme0', total: 512 });
    // At most a burst of 10 per vCPU per 5 s interval (lib/ratelimit.c defaults), whatever the failure count.
    expect(rep.swiotlb.map_failures).toBeGreaterThan(20);
    expect(count('map_failure')).toBeLessThanOrEqual(2 * 10);
    const { analysis } = await analyzeFile(file);
    expect(analysis.input.skipped).toBe(0);
    // The analyzer's counts are the run's exact ones (issue 11 item 1), the records are examples.
    const ioErrors = rep.jobs.reduce((a, j) => a + j.errors_total, 0);
    expect(analysis.map_failures).toMatchObject({ total: rep.swiotlb.map_failures, source: 'run_summary', printed: count('map_failure') });
    expect(analysis.io_errors).toMatchObject({ total: ioErrors, printed: count('io_error') });
    expect(analysis.map_failures.printed + analysis.map_failures.suppressed).toBeLessThanOrEqual(rep.swiotlb.map_failures);
    // The samples carry the exact counters: never decreasing, never above the final totals.
    const samples = recs.filter((x) => x.event === 'sample') as Array<Record<string, number>>;
    for (let i = 1; i < samples.length; i++) {
      for (const k of ['map_failures', 'io_errors', 'ios', 'bytes']) expect(samples[i]![k]!, k).toBeGreaterThanOrEqual(samples[i - 1]![k]!);
    }
    expect(samples.at(-1)!['map_failures']).toBeLessThanOrEqual(rep.swiotlb.map_failures);
    expect(samples.at(-1)!['io_errors']).toBeLessThanOrEqual(ioErrors);
    // Per-area high-water marks (item 2): each within its area (512 slots / 2 areas), at least the
    // area's sampled use, and together at least the pool-wide mark (the peak of the sum).
    const marks = rep.swiotlb.areas.map((a) => a.used_hiwater);
    expect(marks).toHaveLength(2);
    for (const m of marks) expect(m).toBeLessThanOrEqual(256);
    // total_used is counted outside the area locks (the kernel's accepted race): a release frees its
    // area's slots, then subtracts from total_used, so another thread's allocation in between counts
    // them twice. With 2 vCPUs at most 2 releases of at most 128 slots (256 KiB) are in that window.
    expect(rep.swiotlb.io_tlb_used_hiwater).toBeLessThanOrEqual(marks[0]! + marks[1]! + 2 * 128);
    for (const smp of samples as unknown as Array<{ area_used: number[]; area_used_hiwater: number[] }>) {
      smp.area_used.forEach((u, a) => expect(smp.area_used_hiwater[a]!).toBeGreaterThanOrEqual(u));
    }
    expect(analysis.timeline.area_used_hiwater).toEqual(marks);
    // One clock (item 8): records in time order whichever thread wrote them; the run's +0 is the
    // start barrier (run_start), which the samples' t_ms, the tunables and the analyzer count from.
    const times = recs.map((x) => x['time'] as number);
    for (let i = 1; i < times.length; i++) expect(times[i]!, `record ${i}`).toBeGreaterThanOrEqual(times[i - 1]!);
    const start = recs.find((x) => x.event === 'run_start')!;
    expect(start['boot_ms']).toBe(rep.run.boot_ms);
    const start0 = start['time'] as number;
    // Records are stamped (whole ms) when they are emitted, the run_start record and each sample's a
    // little after the instant they stand for: on a loaded host, a few ms either way. A clock counted
    // from boot instead of the start barrier would be off by the whole boot (a loaded host stretches
    // both: 62 ms of lag seen at load 40, with a boot of seconds).
    for (const smp of samples) {
      const lag = smp['time']! - start0 - smp['t_ms']!;
      expect(Math.abs(lag)).toBeLessThan(rep.run.boot_ms / 2);
    }
    const tuned = recs.find((x) => x.event === 'tunable_changed')!;
    expect((tuned['time'] as number) - (start['time'] as number)).toBeGreaterThanOrEqual(299); // a timer never fires early
    expect(analysis.tunables.list[0]!.at.t_ms).toBe((tuned['time'] as number) - (start['time'] as number));
  });

  it('reports no sample (progress line, sample record) once runVm has returned', async () => {
    // Samples every 5 ms: one is almost always due when the run ends.
    const opts = { ...parseVmOptions(['--vcpus', '4', '--runtime', '500ms']), sampleIntervalMs: 5 };
    const log = createRunLogger({ level: 'silent' });
    let samples = 0;
    let late = 0;
    let returned = false;
    await runVm(opts, defaultJobs(opts), {
      log, bootLine: () => {}, sample: () => { samples++; if (returned) late++; },
    }, new AbortController().signal);
    returned = true;
    await sleep(400); // several sample intervals
    await log.close();
    expect(samples).toBeGreaterThan(10);
    expect(late).toBe(0);
  });

  it('ends with exit 1, one line and the log written when a vCPU thread throws', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coco-'));
    const file = join(dir, 'run.ndjson');
    const r = await vm(['--vcpus', '4', '--runtime', '20s', '--mem', '4G', '--inject-fault', 'vcpu2@300ms', '--log-file', file]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('vm: error: vcpu2 failed: vcpu2: injected fault (--inject-fault) after 300 ms');
    const recs = readRecords(file);
    expect(recs[0]!.event).toBe('run_config');
    expect(recs.filter((x) => x.event === 'sample').length).toBeGreaterThan(0);
    expect(recs.find((x) => x.event === 'worker_error')).toMatchObject({ level: 60, thread: 'vcpu2', vcpu: 2, fatal: true });
  });

  it('ends with exit 1 when a device thread throws, without waiting for its I/O', async () => {
    const r = await vm(['--vcpus', '2', '--runtime', '20s', '--mem', '4G', '--inject-fault', 'nvme0@300ms']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('vm: error: nvme0 failed: nvme0: injected fault (--inject-fault) after 300 ms');
  });

  it('injects a fault into an idle device too (eth0 gets no command from a storage job: it sleeps until the fault is due)', async () => {
    const r = await vm(['--vcpus', '2', '--runtime', '20s', '--mem', '4G', '--job', join(projectRoot(), 'jobs', 'randrw-4k.fio'), '--inject-fault', 'eth0@300ms']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('vm: error: eth0 failed: eth0: injected fault (--inject-fault) after 300 ms');
  });

  it('reports a stall instead of hanging when no I/O completes', async () => {
    const r = await vm(['--vcpus', '2', '--runtime', '20s', '--mem', '4G', '--nvme-latency', '4s', '--stall-timeout', '1s']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(/^vm: error: stall: no I\/O completed for \d+ s with io_tlb_used \d+ of \d+ slots$/);
  });

  it('changes tunables while running through the control plane (--tune), and logs each change', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coco-'));
    const file = join(dir, 'run.ndjson');
    // Boot at 50 ms a command, so that the few milliseconds the first change takes to land complete
    // nothing; untuned, the run would complete about 640 commands.
    const rep = await vmJson(['--vcpus', '2', '--runtime', '2s', '--mem', '4G', '--log-file', file, '--nvme-latency', '50ms',
      '--tune', '0ms:nvme0.latency_us=200ms', '--tune', '1s:io_tlb_used_hiwater=0']);
    const changes = readRecords(file).filter((x) => x.event === 'tunable_changed');
    expect(changes).toEqual([
      expect.objectContaining({ name: '/sys/class/emul/nvme0/latency_us', old: 50_000, new: 200_000 }),
      expect.objectContaining({ name: '/sys/kernel/debug/swiotlb/io_tlb_used_hiwater', new: 0 }),
    ]);
    // At 200 ms a command, 2 vCPUs x iodepth 8 complete at most 16 commands per 200 ms; allow three
    // more rounds for the commands in flight when the change landed and the drain at the end.
    const ios = rep.jobs.reduce((s, j) => s + (j.read?.ios ?? 0) + (j.write?.ios ?? 0), 0);
    expect(ios).toBeGreaterThan(0);
    expect(ios).toBeLessThanOrEqual(16 * (2000 / 200 + 3));
  });

  describe('[RFC] swiotlb throttling', () => {
    it('keeps a heavy storage job inside a small pool with no I/O errors, where it fails without (Kelley\'s claim)', async () => {
      // The README's commands, with the job's 5 s capped to 2 s.
      const job = join(projectRoot(), 'jobs', 'heavy.fio');
      const off = await vmJson(['--vcpus', '8', '--mem', '4G', '--swiotlb', '8M', '--job', job, '--runtime', '2s']);
      expect(off.throttle.enabled).toBe(false);
      expect(off.swiotlb.map_failures).toBeGreaterThan(0);
      expect(off.jobs[0]!.errors_total).toBeGreaterThan(0);
      const ios = (rep: RunReport) => (rep.jobs[0]!.read?.ios ?? 0) + (rep.jobs[0]!.write?.ios ?? 0);
      expect([off.throttle.clat_throttled.ios, off.throttle.clat_unthrottled.ios]).toEqual([0, ios(off)]);

      const dir = mkdtempSync(join(tmpdir(), 'coco-'));
      const file = join(dir, 'run.ndjson');
      const on = await vmJson(['--vcpus', '8', '--mem', '4G', '--swiotlb', '8M', '--job', job, '--runtime', '2s', '--throttle', 'on', '--log-file', file]);
      const t = on.throttle;
      // 4096 slots: the RFC's defaults are floor(4096 * 70 / 100) and floor(4096 * 65 / 100).
      expect([t.high_throttle, t.low_throttle]).toEqual([2867, 2662]);
      expect(on.swiotlb.map_failures).toBe(0);
      expect(on.jobs[0]!.errors_total).toBe(0);
      expect(on.jobs[0]!.verify!.sectors_bad).toBe(0);
      expect(t.throttled).toBeGreaterThan(0);
      // The RFC's counters are plain increments: two vCPUs throttled at once can count as one. The
      // report says how many were lost against the exact per-thread counts.
      expect(t.high_throttle_count + t.low_throttle_count + t.throttle_count_lost!).toBe(t.throttled);
      expect(t.throttle_count_lost).toBeGreaterThanOrEqual(0);
      expect(t.throttle_count_lost).toBeLessThanOrEqual(t.throttled / 10);
      // Every completed request is in one latency split; a throttled request has at least one throttled map.
      expect(t.clat_throttled.ios + t.clat_unthrottled.ios).toBe(ios(on));
      expect(t.clat_throttled.ios).toBeGreaterThan(0);
      expect(t.clat_throttled.ios).toBeLessThanOrEqual(t.throttled);
      expect(t.clat_throttled.max_us).toBeGreaterThanOrEqual(t.wait_us_max);
      // The high-water mark stays near the threshold: above it only by the accepted slop.
      expect(on.swiotlb.io_tlb_used_hiwater).toBeLessThan(on.swiotlb.io_tlb_nslabs);
      expect(t.slop.bound_violations).toBe(0);
      expect(t.slop.overshoot_slots_max).toBeLessThanOrEqual(t.slop.bound_slots_at_max);
      expect(on.swiotlb.io_tlb_used).toBe(0);
      const recs = readRecords(file);
      expect(recs.filter((x) => x.event === 'throttle_end').length).toBe(t.waits);
      const sample = recs.find((x) => x.event === 'sample')!;
      expect(sample).toMatchObject({ high_throttle: 2867, low_throttle: 2662 });
    });

    it('reports the data-then-metadata self-deadlock (md_per_io_size) as a stall and ends the run', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'coco-'));
      const job = join(projectRoot(), 'jobs', 'md-deadlock.fio');
      const file = join(dir, 'run.ndjson');
      const r = await vm(['--vcpus', '8', '--mem', '4G', '--swiotlb', '4M', '--job', job, '--size', '16M', '--throttle', 'on', '--throttle-stall-timeout', '1s', '--log-file', file]);
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^vm: error: swiotlb throttle stall \(self-deadlock: the holder's own vCPU waits for it\): throttle_sem held \d+ ms by vcpu\d+ \(nvme0, 131072-byte mapping\); waiting: /);
      const stall = readRecords(file).find((x) => x.event === 'stall')!;
      expect(stall).toMatchObject({ level: 50, kind: 'self_deadlock' });
      const holder = stall['holder'] as { vcpu: number };
      expect((stall['waiters'] as { vcpu: number; size: number }[]).some((w) => w.vcpu === holder.vcpu && w.size === 4096)).toBe(true);
    });

    it('keeps a time_based job to its runtime while its maps sleep on throttle_sem and take completions', async () => {
      // A vCPU whose storage map parks on throttle_sem reaps completions meanwhile, so its queue never
      // fills; its submit loop then never looked at the clock again and the job ran on past its runtime
      // (about 1 run in 3 of this setup did, for as long as it was let). Every run must end: done at its
      // runtime, or stopped by the throttle watchdog (exit 1), well within the 15 s a run is allowed.
      const job = join(projectRoot(), 'jobs', 'md-deadlock.fio');
      const args = ['--vcpus', '2', '--mem', '1G', '--policy', 'throttle', '--exact-nslabs', '512', '--runtime', '2s', '--throttle-stall-timeout', '300ms', '--output-format', 'json'];
      const dir = mkdtempSync(join(tmpdir(), 'coco-'));
      const runs: (number | string)[] = [];
      for (let i = 0; i < 3; i++) {
        try {
          await run(process.execPath, ['--single-threaded-gc', VM, ...args, '--log-file', join(dir, `run${i}.ndjson`)], { timeout: 15_000, killSignal: 'SIGKILL', maxBuffer: 64 << 20 });
          runs.push(0);
        } catch (e) {
          runs.push((e as { killed?: boolean }).killed ? 'killed' : (e as { code: number }).code);
        }
      }
      for (const code of runs) expect([0, 1]).toContain(code);
    }, 60_000);

    it('sets thresholds at boot as slots or a percentage, and changes them while running under their sysctl paths', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'coco-'));
      const file = join(dir, 'run.ndjson');
      const rep = await vmJson(['--vcpus', '2', '--mem', '4G', '--swiotlb', '8M', '--runtime', '1s', '--throttle', 'on',
        '--high-throttle', '50%', '--low-throttle', '1000', '--log-file', file, '--tune', '300ms:high_throttle=3000', '--tune', '400ms:low_throttle=3500']);
      expect([rep.throttle.high_throttle, rep.throttle.low_throttle]).toEqual([3000, 3500]);
      const recs = readRecords(file);
      expect(recs.filter((x) => x.event === 'tunable_changed')).toEqual([
        expect.objectContaining({ name: '/proc/sys/kernel/dma/swiotlb_default/high_throttle', old: 2048, new: 3000 }),
        expect.objectContaining({ name: '/proc/sys/kernel/dma/swiotlb_default/low_throttle', old: 1000, new: 3500 }),
      ]);
      // Not validated against each other, as in the RFC, but warned about.
      expect(recs.some((x) => x.event === 'swiotlb_warn' && String(x['text']).includes('low_throttle 3500 is above high_throttle 3000'))).toBe(true);
    });
  });

  it.each([
    [['--vcpus', '0'], /--vcpus: "0" is not valid; expected a whole number from 1 to 256/],
    [['--vcpus', '300'], /from 1 to 256/],
    [['--frobnicate'], /unknown flag --frobnicate; accepted:/],
    [['--mem', '16Q'], /--mem: unknown size suffix "Q"/],
    [['--swiotlb', '2G'], /above the 1 GiB limit/],
    [['--runtime', 'soon'], /--runtime: "soon" is not a duration/],
    [['--cmdline', 'swiotlb=abc'], /is not valid; expected swiotlb=/],
    [['--job', '/nonexistent/x.fio'], /cannot read job file/],
    [['--output-format', 'xml'], /expected normal or json/],
    [['--tune', '1s:bogus=1'], /--tune: no tunable "bogus"; expected one of io_tlb_used_hiwater, /],
    [['--tune', 'soon'], /--tune: "soon" is not valid; expected AT:NAME=VALUE/],
    [['--tune', '1s:io_tlb_used_hiwater=5'], /accepts only 0 \(reset\)/],
    [['--inject-fault', 'vcpu99@1s', '--vcpus', '2'], /--inject-fault: "vcpu99@1s" is not valid; expected THREAD@TIME/],
    [['--stall-timeout', 'never'], /--stall-timeout: "never" is not a duration/],
    [['--seed', '1', '--seed', '2'], /--seed given twice/],
    [['--throttle', 'maybe'], /unexpected argument "maybe"/],
    [['--throttle=maybe'], /--throttle: "maybe" is not valid; expected on or off/],
    [['--high-throttle', 'lots'], /--high-throttle: "lots" is not valid; expected a slot count \(e\.g\. 22937\) or a percentage of nslabs/],
    [['--low-throttle', '150%'], /--low-throttle: "150%" is not a percentage from 0% to 100%/],
    [['--size', '0'], /--size: "0" is zero; expected at least 1 byte, a whole number of bytes/],
    [['--size=0k'], /--size: "0k" is zero; expected at least 1 byte/],
    // fio refuses a size below the block size; the I/O used to be cut to the region without a word.
    [['--size', '64k', '--job', join(projectRoot(), 'jobs', 'seq-large.fio')], /^vm: job seq-write: its size of 65536 bytes \(the --size cap\) is smaller than a write block of 1048576 bytes .*use a size of at least 1048576 bytes \(--size\)/],
    [['--size', '100'], /job default: its size of 100 bytes \(the --size cap\) is smaller than a read or write block of 4096 bytes/],
  ])('rejects bad input %j with one line and exit 2', async (args, re) => {
    const r = await vm(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(re);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('prints the usage, every flag with its help, on --help and exits 0', async () => {
    const r = await vm(['--vcpus', '4', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: npm run vm -- \[flags\]\n/);
    for (const flag of ['--vcpus N', '--throttle [on|off]', '--tune AT:NAME=VALUE', '--inject-fault THREAD@TIME']) expect(r.stdout).toContain(flag);
    expect(r.stderr).toBe('');
  });

  it('rejects a malformed job file with exit 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coco-'));
    const job = join(dir, 'bad.fio');
    writeFileSync(job, '[j]\nbs=4q\n');
    const r = await vm(['--job', job]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/bad\.fio:2/);
  });
});
