// End-to-end runs of the compiled `vm` command, as a user runs it.
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/util/worker-file.js';
import type { RunReport } from '../../src/vm/report.js';

const run = promisify(execFile);
const VM = join(projectRoot(), 'dist', 'scripts', 'vm.js');

async function vm(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, ['--single-threaded-gc', VM, ...args], { timeout: 60_000, maxBuffer: 64 << 20 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

async function vmJson(args: string[]): Promise<RunReport> {
  const r = await vm([...args, '--output-format', 'json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as RunReport;
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
    expect(r.stdout).toContain('software IO TLB: mapped [mem 0x00000000be000000-0x00000000c0000000] (32MB)');
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

  it('runs a job file with stonewalled groups and reads back what it wrote', async () => {
    const rep = await vmJson(['--vcpus', '2', '--job', join(projectRoot(), 'jobs', 'seq-large.fio'), '--size', '8M']);
    expect(rep.groups.map((g) => g.groupid)).toEqual([0, 1]);
    const reader = rep.jobs.find((j) => j.groupid === 1)!;
    expect(reader.read!.bytes).toBeGreaterThan(0);
  });

  it('writes an NDJSON log', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coco-'));
    const file = join(dir, 'run.ndjson');
    const r = await vm(['--vcpus', '2', '--runtime', '500ms', '--swiotlb', '1M', '--log-file', file, '--log-level', 'debug']);
    expect(r.code).toBe(0);
    const recs = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { event: string; msg: string });
    const events = new Set(recs.map((x) => x.event));
    for (const e of ['run_config', 'boot_line', 'sample', 'run_summary']) expect(events.has(e)).toBe(true);
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
  ])('rejects bad input %j with one line and exit 2', async (args, re) => {
    const r = await vm(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(re);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).not.toMatch(/\n\s+at /);
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
