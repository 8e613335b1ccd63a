// read_iolog / write_iolog on the VM: tiny logs whose I/O counts, bytes and peak slots are worked out
// by hand (a 4 KiB buffer is 2 slots of 2 KiB, 128 KiB is 64, a trim maps its 16-byte range list: 1
// slot), and the round trip. The NVMe latency is long (200 ms) where a peak needs every I/O in flight
// at once, so no completion can come between the submissions of one pass.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MessageChannel } from 'node:worker_threads';
import { vmProcess } from '../helpers/vm-process.js';
import { IologRecorder, IologSink } from '../../src/vm/iolog-write.js';
import type { JobInstance } from '../../src/vm/jobs.js';
import { A_OPEN, A_READ, A_WRITE, IologWriter, scanIolog } from '../../src/workload/iolog.js';

const dir = mkdtempSync(join(tmpdir(), 'iolog-vm-'));
function put(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

type Job = {
  read?: { ios: number; bytes: number; errors: number }; write?: { ios: number; bytes: number; errors: number };
  errors_total: number; runtime_ms: number;
  iolog?: { trims: { ios: number; bytes: number; errors: number }; syncs: number; file_actions: number; timing: string };
};
type Report = { jobs: Job[]; swiotlb: { io_tlb_used_hiwater: number; map_failures: number } };

async function run(job: string, args: string[]): Promise<Report> {
  const r = await vmProcess(['--vcpus', '1', '--mem', '1G', '--job', job, '--output-format', 'json', ...args]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as Report;
}

describe('read_iolog drives the NVMe device', () => {
  // 131072 (64 slots) + 126976 (62) + 4096 (2) = 128 slots of reads, then a trim's 1 slot: 129 at the peak.
  put('peak.iolog', [
    'fio version 3 iolog',
    '0 /dev/nvme0n1 add',
    '0 /dev/nvme0n1 open',
    '5 /dev/nvme0n1 read 0 131072',
    '10 /dev/nvme0n1 read 131072 126976',
    '15 /dev/nvme0n1 sync 0 0',
    '20 /dev/nvme0n1 read 1048576 4096',
    '25 /dev/nvme0n1 trim 2097152 1048576',
    '30 /dev/nvme0n1 close',
  ].join('\n') + '\n');
  const job = put('peak.fio', '[replay]\nioengine=libaio\niodepth=4\nread_iolog=peak.iolog\nreplay_no_stall=1\n');

  it('replays every action: the peak is the log\'s 129 slots on a pool with room', async () => {
    const rep = await run(job, ['--exact-nslabs', '256', '--nvme-latency', '200ms']);
    const j = rep.jobs[0]!;
    expect(j.read).toMatchObject({ ios: 3, bytes: 131072 + 126976 + 4096, errors: 0 });
    expect(j.write).toBeUndefined();
    expect(j.iolog).toMatchObject({ trims: { ios: 1, bytes: 1048576, errors: 0 }, syncs: 1, file_actions: 3, timing: 'none (replay_no_stall)' });
    expect(rep.swiotlb.io_tlb_used_hiwater).toBe(129);
    expect(j.errors_total).toBe(0);
  });

  it('on a pool one slot too small (128) the last map, the trim, fails: one I/O error', async () => {
    const rep = await run(job, ['--exact-nslabs', '128', '--nvme-latency', '200ms']);
    const j = rep.jobs[0]!;
    expect(j.read).toMatchObject({ ios: 3, errors: 0 });
    expect(j.iolog!.trims).toEqual({ ios: 0, bytes: 0, errors: 1 });
    expect(j.errors_total).toBe(1);
    expect(rep.swiotlb).toMatchObject({ io_tlb_used_hiwater: 128, map_failures: 1 });
  });

  it('honours a v2 wait (the next I/O not before OFFSET ms after the start); replay_no_stall drops it', async () => {
    put('wait.iolog', 'fio version 2 iolog\nf add\nf open\nf read 0 4096\nf wait 300 0\nf write 4096 4096\nf close\n');
    const timed = put('wait.fio', '[w]\niodepth=2\nread_iolog=wait.iolog\n');
    const nostall = put('wait-ns.fio', '[w]\niodepth=2\nread_iolog=wait.iolog\nreplay_no_stall=1\n');
    const [t, n] = await Promise.all([run(timed, ['--nvme-latency', '100ms']), run(nostall, ['--nvme-latency', '100ms'])]);
    // Timed: the write is issued at 300 ms at the earliest and completes 100 ms later.
    expect(t.jobs[0]!.runtime_ms).toBeGreaterThanOrEqual(400);
    expect(t.jobs[0]!.iolog!.timing).toBe('waits');
    // No stall: both in flight at once (2 + 2 slots), the job done with the 100 ms of one latency.
    expect(n.swiotlb.io_tlb_used_hiwater).toBe(4);
    for (const r of [t, n]) expect([r.jobs[0]!.read!.ios, r.jobs[0]!.write!.ios]).toEqual([1, 1]);
  });

  it('honours v3 timestamps as gaps since the previous issue, scaled by replay_time_scale', async () => {
    // The read at 10 follows a stamp of 0: no delay (fio's quirk); the write waits 300000 us after it.
    put('ts.iolog', 'fio version 3 iolog\n0 f add\n0 f open\n10 f read 0 4096\n300010 f write 4096 4096\n300020 f close\n');
    const [t, fast] = await Promise.all([
      run(put('ts.fio', '[t]\nread_iolog=ts.iolog\n'), ['--nvme-latency', '20us']),
      run(put('ts-fast.fio', '[t]\nread_iolog=ts.iolog\nreplay_time_scale=200\n'), ['--nvme-latency', '20us']),
    ]);
    expect(t.jobs[0]!.runtime_ms).toBeGreaterThanOrEqual(300);
    expect(fast.jobs[0]!.runtime_ms).toBeGreaterThanOrEqual(150);
    expect(t.jobs[0]!.iolog!.timing).toBe('timestamps');
  });

  it('refuses a bad log line before the run: one line, file and line number, exit 2', async () => {
    put('bad.iolog', 'fio version 2 iolog\nf add\nf read 0 4096\nf frobnicate 0 4096\n');
    const r = await vmProcess(['--vcpus', '1', '--mem', '1G', '--job', put('bad.fio', '[b]\nread_iolog=bad.iolog\n')]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/iolog .*bad\.iolog:4: "f frobnicate 0 4096": "frobnicate" is not an I\/O action .*; expected/);
  });
});

describe('write_iolog, then read_iolog: the round trip', () => {
  it('replays the run\'s own I/O: the same I/Os and bytes per direction, on the same pool', async () => {
    const log = join(dir, 'rt.iolog');
    const src = put('rt-write.fio', `[src]\nioengine=libaio\nrw=randrw\nbsrange=4k-64k\niodepth=8\nsize=8M\nio_size=4M\nwrite_iolog=${log}\n`);
    const a = await run(src, ['--swiotlb', '64M']);
    const text = readFileSync(log, 'utf8').split('\n');
    expect(text[0]).toBe('fio version 3 iolog');
    const ja = a.jobs[0]!;
    // Every issued I/O is one line (fio's log_io_u at td_io_queue).
    const lines = text.filter((l) => / (read|write) \d+ \d+$/.test(l));
    expect(lines.length).toBe(ja.read!.ios + ja.read!.errors + ja.write!.ios + ja.write!.errors);
    const b = await run(put('rt-read.fio', `[dst]\nioengine=libaio\niodepth=8\nread_iolog=${log}\n`), ['--swiotlb', '64M']);
    const jb = b.jobs[0]!;
    expect(ja.errors_total).toBe(0);
    expect(jb.errors_total).toBe(0);
    expect([jb.read!.ios, jb.read!.bytes, jb.write!.ios, jb.write!.bytes]).toEqual([ja.read!.ios, ja.read!.bytes, ja.write!.ios, ja.write!.bytes]);
    expect(jb.iolog!.file_actions).toBe(3);
  });
});

describe('write_iolog from a vCPU: IologRecorder to IologSink', () => {
  it('writes every record in order across several 4096-record chunks, then the close line', async () => {
    const path = join(dir, 'sink.iolog');
    IologWriter.create(path, 'j.7.0');
    const sink = new IologSink([{ id: 7, writeIolog: { path, fileName: 'j.7.0' } } as JobInstance]);
    const ch = new MessageChannel();
    sink.attach(ch.port1);
    const rec = new IologRecorder(7, ch.port2);
    rec.record(0, A_OPEN, 0, 0);
    const n = 10_000;
    for (let i = 0; i < n; i++) rec.record(i * 2, i % 3 === 0 ? A_WRITE : A_READ, i * 512, 512 + (i % 4) * 512);
    rec.close(n * 2);
    await sink.done;
    sink.close();
    const lines = readFileSync(path, 'utf8').trimEnd().split('\n');
    expect(lines.slice(0, 3)).toEqual(['fio version 3 iolog', '0 j.7.0 add', '0 j.7.0 open']);
    expect(lines[3 + 4095]).toBe(`${4095 * 2} j.7.0 ${4095 % 3 === 0 ? 'write' : 'read'} ${4095 * 512} ${512 + (4095 % 4) * 512}`);
    expect(lines[3 + 4096]).toBe(`${4096 * 2} j.7.0 ${4096 % 3 === 0 ? 'write' : 'read'} ${4096 * 512} ${512 + (4096 % 4) * 512}`);
    expect(lines.at(-1)).toBe(`${n * 2} j.7.0 close`);
    const s = scanIolog(path);
    expect([s.reads + s.writes, s.writes, s.fileActions]).toEqual([n, Math.ceil(n / 3), 3]);
  });
});
