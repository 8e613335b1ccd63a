// What a script relies on: the exit status, and a report (text or JSON) even when the run fails.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { vmProcess as vm } from '../helpers/vm-process.js';
import type { RunReport } from '../../src/vm/report.js';

function jobFile(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'coco-exit-')), 'job.fio');
  writeFileSync(file, text);
  return file;
}

type Doc = RunReport & { errors: { io_errors: number; packets_dropped: number; verify_bad_sectors: number }; warnings: string[] };

describe('exit status and partial reports', () => {
  it('a stall prints the partial report, marked so with the reason, in JSON and in text; exit 1', async () => {
    const args = ['--vcpus', '2', '--runtime', '20s', '--mem', '4G', '--nvme-latency', '4s', '--stall-timeout', '1s'];
    const j = await vm([...args, '--output-format', 'json']);
    expect(j.code).toBe(1);
    expect(j.stderr.trim()).toMatch(/^vm: error: stall: no I\/O completed for \d+ s/);
    const doc = JSON.parse(j.stdout) as Doc;
    expect(doc.run).toMatchObject({ status: 'failed', partial: true });
    expect(doc.run.reason).toMatch(/^stall: no I\/O completed/);
    expect(doc.jobs[0]!.name).toBe('default');
    const t = await vm(args);
    expect(t.code).toBe(1);
    expect(t.stdout).toMatch(/PARTIAL REPORT: the run failed \(stall: no I\/O completed/);
    expect(t.stdout).toContain('io_tlb_nslabs=');
  });

  it('a crashed worker prints the partial JSON report with the reason; exit 1', async () => {
    const r = await vm(['--vcpus', '2', '--runtime', '20s', '--mem', '4G', '--inject-fault', 'vcpu1@300ms', '--output-format', 'json']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('vm: error: vcpu1 failed: vcpu1: injected fault (--inject-fault) after 300 ms');
    const doc = JSON.parse(r.stdout) as Doc;
    expect(doc.run).toMatchObject({ status: 'failed', partial: true, reason: 'vcpu1 failed: vcpu1: injected fault (--inject-fault) after 300 ms' });
    // vcpu0 went on until the run was stopped: its I/O is counted.
    expect((doc.jobs[0]!.read?.ios ?? 0) + (doc.jobs[0]!.write?.ios ?? 0)).toBeGreaterThan(0);
  });

  it('--fail-on-errors: a run with I/O errors exits 3 with one line saying why; without it, 0', async () => {
    // 2 vCPUs x iodepth 4 of 256 KiB (128 slots each) against a 256-slot pool: at most 2 fit at once.
    const job = jobFile('[full]\nrw=randwrite\nbs=256k\niodepth=4\nnumjobs=2\nsize=8M\ntime_based\nruntime=500ms\n');
    const args = ['--vcpus', '2', '--mem', '4G', '--swiotlb', '512K', '--job', job, '--output-format', 'json'];
    const fail = await vm([...args, '--fail-on-errors']);
    expect(fail.code).toBe(3);
    const doc = JSON.parse(fail.stdout) as Doc;
    expect(doc.errors.io_errors).toBeGreaterThan(0);
    expect(doc.errors.io_errors).toBe(doc.jobs.reduce((s, j) => s + j.errors_total, 0));
    expect(fail.stderr.trim()).toBe(`vm: the run had ${doc.errors.io_errors} I/O errors, 0 dropped packets and 0 bad verify sectors; exit status 3 (--fail-on-errors)`);
    const ok = await vm(args);
    expect(ok.code).toBe(0);
    expect(ok.stderr).toBe('');
  });

  it('time in startdelay or thinktime longer than --stall-timeout is not a stall', async () => {
    const delayed = jobFile('[late]\nrw=randread\nbs=4k\niodepth=2\nsize=1M\nstartdelay=2500ms\ntime_based\nruntime=300ms\n');
    const a = await vm(['--vcpus', '1', '--mem', '4G', '--job', delayed, '--stall-timeout', '1s', '--output-format', 'json']);
    expect(a.stderr).toBe('');
    expect(a.code).toBe(0);
    expect((JSON.parse(a.stdout) as Doc).jobs[0]!.read!.ios).toBeGreaterThan(0);
    // iodepth=1 with 1.5 s of thinktime (fio's unit: microseconds) after each I/O: nothing in flight while it thinks.
    const thinking = jobFile('[think]\nrw=randread\nbs=4k\niodepth=1\nsize=1M\nthinktime=1500000\ntime_based\nruntime=3500ms\n');
    const b = await vm(['--vcpus', '1', '--mem', '4G', '--job', thinking, '--stall-timeout', '1s', '--output-format', 'json']);
    expect(b.stderr).toBe('');
    expect(b.code).toBe(0);
    expect((JSON.parse(b.stdout) as Doc).jobs[0]!.read!.ios).toBeGreaterThanOrEqual(2);
  });

  it('--swiotlb 64M prints the kernel\'s adjustment line and a warning saying why and how to get 64 MiB', async () => {
    const r = await vm(['--vcpus', '2', '--mem', '4G', '--swiotlb', '64M', '--runtime', '200ms']);
    expect(r.code).toBe(0);
    // 6% of 4 GiB is 245 MiB, rounded up to a power of two of slots at the area count: 256 MiB.
    expect(r.stdout).toContain('software IO TLB: SWIOTLB bounce buffer size adjusted to 245MB');
    expect(r.stdout).toContain('(256MB)');
    expect(r.stderr.trim()).toBe('vm: warning: --swiotlb 64 MiB is 32768 slots, the kernel\'s default size (IO_TLB_DEFAULT_SIZE), which swiotlb_adjust_size treats as not set: this CoCo guest gets 131072 slots (256 MiB, 6% of its memory within 64 MiB..1 GiB) instead; for 64 MiB ask for a slot count that is not the default, e.g. --swiotlb 65280K (32640 slots, rounded up to 32768 at boot)');
    const asked = await vm(['--vcpus', '2', '--mem', '4G', '--swiotlb', '65280K', '--runtime', '200ms']);
    expect(asked.stderr).toBe('');
    expect(asked.stdout).toContain('(64MB)');
  });
});
