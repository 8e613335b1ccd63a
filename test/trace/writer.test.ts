// npm run vm --trace-file: the run's DMA calls as tracefs text, read back by the parser written from
// the kernel's formats, and the round trip: record a run, replay the trace against the same pool.
//
// Tolerance of the round trip: none on one vCPU. One thread makes every map and unmap, so the pool's
// state after each call is a function of the sequence of calls, which the trace keeps in order (a
// failed map is traced with dma_addr=ffffffffffffffff and replayed as an attempt at the same point):
// the replay must reproduce map_attempts, map_failures and io_tlb_used_hiwater exactly. With several
// vCPUs the interleaving between them is timing, and the figures agree only within the run-to-run
// spread.
import { createReadStream, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TraceParser } from '../../src/trace/tracefs.js';
import { tempDir } from '../helpers/log-files.js';
import { vmProcess, type ScriptResult, scriptProcess } from '../helpers/vm-process.js';

const dir = tempDir('coco-trace-writer-test-');
afterAll(() => dir.remove());

function replay(args: string[]): Promise<ScriptResult> {
  return scriptProcess('replay', args, { nodeFlags: ['--single-threaded-gc'] });
}

function job(name: string, lines: string[]): string {
  const f = join(dir.path, name);
  writeFileSync(f, ['[j]', 'ioengine=io_uring', 'direct=1', 'rw=randrw', 'size=8M', 'time_based', 'runtime=400ms', ...lines].join('\n') + '\n');
  return f;
}

describe('--trace-file', () => {
  it('writes tracefs text the parser reads whole: the header, dma_map_phys, dma_map_sg, both unmaps, swiotlb_bounced FORCE', async () => {
    // 512 KiB requests are SG lists of three entries: NVMe's dma_max_mapping_size is 256 KiB less
    // min_align_mask rounded up to a slot (4 KiB), 252 KiB; 4 KiB requests are single maps.
    const trace = join(dir.path, 'sg.trace');
    const r = await vmProcess(['--job', job('sg.fio', ['bssplit=4k/50:512k/50', 'iodepth=2']), '--vcpus', '1', '--mem', '256M', '--exact-nslabs', '1024', '--trace-file', trace, '--output-format', 'json']);
    expect(r.code).toBe(0);
    const d = JSON.parse(r.stdout);
    const text = readFileSync(trace, 'utf8');
    const head = text.split('\n').slice(0, 12);
    expect(head[0]).toBe('# tracer: nop');
    expect(head[2]).toMatch(new RegExp(`^# entries-in-buffer/entries-written: ${d.dma_trace.events}/${d.dma_trace.events}   #P:1 *$`));
    expect(head[10]).toBe('#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION');
    const p = new TraceParser();
    const kinds = new Set<string>();
    let last = -1;
    let ordered = true;
    let sgEntries = 0;
    for await (const rec of p.read(createReadStream(trace))) {
      kinds.add(rec.event);
      if (rec.timestamp_us < last) ordered = false;
      last = rec.timestamp_us;
      expect(rec.task).toBe('fio');
      expect(rec.pid).toBe(4000);
      expect(rec.cpu).toBe(0);
      if (rec.fields.kind === 'map_sg') {
        sgEntries = rec.fields.sizes.length;
        expect(rec.fields.nents).toEqual({ traced: 3, full: 3 });
        expect(rec.fields.sizes).toEqual([252 * 1024, 252 * 1024, 8 * 1024]);
      }
      if (rec.fields.kind === 'bounced') expect(rec.fields.force).toBe(true);
    }
    expect(p.stats.badLines).toBe(0);
    expect(p.stats.records).toBe(d.dma_trace.events);
    expect(ordered).toBe(true);
    expect(sgEntries).toBe(3);
    expect([...kinds].sort()).toEqual(['dma_map_phys', 'dma_map_sg', 'dma_unmap_phys', 'dma_unmap_sg', 'swiotlb_bounced']);
    // Every map (single or SG entry) bounced once: the bounces are the swiotlb's successful and failed searches.
    expect(p.stats.byEvent['swiotlb_bounced']).toBe(d.swiotlb.map_attempts);
  });

  it('round trip on one vCPU: replaying the recorded trace against the same pool gives the same attempts, failures and high-water mark', async () => {
    // iodepth 6 of 64 KiB (32 slots each) against 128 slots: maps fail whenever 4 are in flight.
    const trace = join(dir.path, 'rt.trace');
    const rec = await vmProcess(['--job', job('rt.fio', ['bs=64k', 'iodepth=6']), '--vcpus', '1', '--mem', '256M', '--exact-nslabs', '128', '--trace-file', trace, '--output-format', 'json']);
    expect(rec.code).toBe(0);
    const a = JSON.parse(rec.stdout).swiotlb;
    expect(a.map_failures).toBeGreaterThan(0);
    const rep = await replay([trace, '--mem', '256M', '--exact-nslabs', '128', '--output-format', 'json']);
    expect(rep.stderr).toBe('');
    expect(rep.code).toBe(0);
    const d = JSON.parse(rep.stdout);
    expect(d.run.vcpus).toBe(1);
    expect(d.trace.failed_in_trace).toBe(a.map_failures);
    expect(d.swiotlb.map_attempts).toBe(a.map_attempts);
    expect(d.swiotlb.map_failures).toBe(a.map_failures);
    expect(d.swiotlb.io_tlb_used_hiwater).toBe(a.io_tlb_used_hiwater);
    expect(d.trace.peak.slots).toBe(a.io_tlb_used_hiwater);
  });
});

describe('DmaTraceFile on its own', () => {
  it('merges the vCPUs\' rings in timestamp order, and a full ring\'s dropped records become CPU:N [LOST M EVENTS]', async () => {
    const { DmaTraceFile, DmaTracer, MAP_PHYS_RECORD_BYTES, TRACE_RING_BYTES } = await import('../../src/trace/writer.js');
    const { nowMs } = await import('../../src/util/clock.js');
    const file = join(dir.path, 'merge.trace');
    const f = new DmaTraceFile(file, 2, nowMs());
    const a = new DmaTracer(f.channel(0));
    const b = new DmaTracer(f.channel(1));
    // vCPU 1 writes first, then vCPU 0: a file that took spool 0 then spool 1 as they come would put
    // vCPU 0's later lines first.
    for (let i = 0; i < 50; i++) b.mapPhys('nvme0', 0x1000 * i, 0x10000 + i, 512, 1, 0);
    for (let i = 0; i < 50; i++) a.unmapPhys('eth0', 0x20000 + i, 512, 2, 0);
    f.drain();
    // Fill ring 0 without draining: records past its capacity wait TRACE_FULL_WAIT_MS each, then drop
    // (the first dma_map_phys on nvme0 also writes the record naming the device).
    const fits = Math.floor(TRACE_RING_BYTES / MAP_PHYS_RECORD_BYTES) - 1;
    for (let i = 0; i < fits + 2; i++) a.mapPhys('nvme0', 0x1000, 0x10000, 4096, 1, 0);
    a.close();
    b.close();
    const r = f.close();
    expect(r.lost).toBeGreaterThan(0);
    const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    expect(lines.filter((l) => l.startsWith('CPU:0 [LOST '))).toHaveLength(1);
    expect(lines.find((l) => l.startsWith('CPU:0 [LOST '))).toBe(`CPU:0 [LOST ${r.lost} EVENTS]`);
    const events = lines.filter((l) => !l.startsWith('CPU:'));
    expect(events).toHaveLength(r.events);
    expect(r.events).toBe(100 + fits + 2 - r.lost);
    const times = events.map((l) => Number(/ (\d+\.\d{6}): /.exec(l)![1]));
    expect([...times].sort((x, y) => x - y)).toEqual(times);
    expect(events.slice(0, 50).every((l) => l.includes('[001]') && l.includes(': dma_map_phys: nvme0 dir=TO_DEVICE'))).toBe(true);
    expect(events[50]).toMatch(/^ {13}fio-4000 {4}\[000\] d\.h1\. +\d+\.\d{6}: dma_unmap_phys: eth0 dir=FROM_DEVICE dma_addr=20000 size=512 attrs=$/);
    const head = readFileSync(file, 'utf8').split('\n')[2]!;
    expect(head.trimEnd()).toBe(`# entries-in-buffer/entries-written: ${r.events}/${r.events + r.lost}   #P:2`);
  });
});

describe('DmaTracer records', () => {
  const lines = (file: string) => readFileSync(file, 'utf8').split('\n').filter((l) => l !== '' && !l.startsWith('#'));
  const fields = (l: string) => l.replace(/^.*?\d+\.\d{6}: /, '');
  const stamp = (l: string) => /(\d+\.\d{6}): /.exec(l)![1];

  it('a bounce and its map are one record printed as the kernel\'s two lines; other bounces, masks, wide sizes and long gaps print exactly', async () => {
    const { DmaTraceFile, DmaTracer } = await import('../../src/trace/writer.js');
    const { nowMs } = await import('../../src/util/clock.js');
    const file = join(dir.path, 'records.trace');
    // Boot began two hours ago: the first record's time does not fit the 32-bit microsecond delta.
    const f = new DmaTraceFile(file, 1, nowMs() - 2 * 3600e3);
    const t = new DmaTracer(f.channel(0));
    const M64 = Number.MAX_SAFE_INTEGER;
    t.bounced('nvme0', M64, 0x123456789a, 4096);
    t.mapPhys('nvme0', 0x123456789a, 0x80001000, 4096, 1, 1 << 5);
    t.bounced('eth0', 0xffffffff, 0x2000, 1500); // the same device name later with another mask
    t.mapPhys('eth0', 0x2000, -1, 1500, 2, 0); // a failed map after its bounce
    t.bounced('eth0', 0xfffffffff, 0x3000, 64);
    t.mapPhys('eth0', 0x3000, 0x80002000, 64, 2, 0);
    t.bounced('nvme0', M64, 0x4000, 8192); // a scatterlist's entries: bounces no dma_map_phys takes
    t.bounced('nvme0', M64, 0x6000, 4096);
    t.mapSg('nvme0', [0x4000, 0x6000], [0x80003000, 0x80005000], [8192, 4096], 2, 2, 1, 0);
    t.unmapPhys('nvme0', 0x80001000, 2 ** 32 + 512, 1, 2 ** 40 + (1 << 8)); // wide size and attrs
    t.bounced('nvme0', M64, 0x7000, 512); // held at close
    t.close();
    const r = f.close();
    expect(r).toMatchObject({ events: 11, lost: 0 });
    const ls = lines(file);
    expect(ls.map(fields)).toEqual([
      'swiotlb_bounced: dev_name: nvme0 dma_mask=ffffffffffffffff dev_addr=123456789a size=4096 FORCE',
      'dma_map_phys: nvme0 dir=TO_DEVICE dma_addr=80001000 size=4096 phys_addr=123456789a attrs=SKIP_CPU_SYNC',
      'swiotlb_bounced: dev_name: eth0 dma_mask=ffffffff dev_addr=2000 size=1500 FORCE',
      'dma_map_phys: eth0 dir=FROM_DEVICE dma_addr=ffffffffffffffff size=1500 phys_addr=2000 attrs=',
      'swiotlb_bounced: dev_name: eth0 dma_mask=fffffffff dev_addr=3000 size=64 FORCE',
      'dma_map_phys: eth0 dir=FROM_DEVICE dma_addr=80002000 size=64 phys_addr=3000 attrs=',
      'swiotlb_bounced: dev_name: nvme0 dma_mask=ffffffffffffffff dev_addr=4000 size=8192 FORCE',
      'swiotlb_bounced: dev_name: nvme0 dma_mask=ffffffffffffffff dev_addr=6000 size=4096 FORCE',
      'dma_map_sg: nvme0 dir=TO_DEVICE nents=2/2 ents=2/2 dma_addrs={0x80003000,0x80005000} sizes={0x2000,0x1000} phys_addrs={0x4000,0x6000} attrs=',
      `dma_unmap_phys: nvme0 dir=TO_DEVICE dma_addr=80001000 size=${2 ** 32 + 512} attrs=NO_WARN`,
      'swiotlb_bounced: dev_name: nvme0 dma_mask=ffffffffffffffff dev_addr=7000 size=512 FORCE',
    ]);
    // One clock read for a map and its bounce: the two lines share the timestamp.
    expect(stamp(ls[0]!)).toBe(stamp(ls[1]!));
    const secs = ls.map((l) => Number(stamp(l)));
    expect(secs[0]).toBeGreaterThan(7199);
    expect(secs[0]).toBeLessThan(7300);
    expect([...secs].sort((x, y) => x - y)).toEqual(secs);
  });

  it('a vCPU that ends without closing its tracer keeps every record it wrote (its last batch, not yet published)', async () => {
    const { DmaTraceFile, DmaTracer, TRACE_PUBLISH_EVERY } = await import('../../src/trace/writer.js');
    const { nowMs } = await import('../../src/util/clock.js');
    const file = join(dir.path, 'unclosed.trace');
    const f = new DmaTraceFile(file, 1, nowMs());
    const t = new DmaTracer(f.channel(0));
    const n = TRACE_PUBLISH_EVERY + 5; // one batch published, 5 records left in the ring unpublished
    for (let i = 0; i < n; i++) t.unmapPhys('nvme0', 0x1000 * i, 4096, 1, 0);
    f.drain();
    // No t.close(): the thread failed; close() adopts what it committed.
    const r = f.close();
    expect(r).toMatchObject({ events: n, lost: 0 });
    expect(lines(file)).toHaveLength(n);
  });

  it('a dropped map and its bounce are two lost events', async () => {
    const { DmaTraceFile, DmaTracer, MAP_PHYS_RECORD_BYTES, TRACE_RING_BYTES } = await import('../../src/trace/writer.js');
    const { nowMs } = await import('../../src/util/clock.js');
    const file = join(dir.path, 'lost2.trace');
    const f = new DmaTraceFile(file, 1, nowMs());
    const t = new DmaTracer(f.channel(0));
    const fits = Math.floor(TRACE_RING_BYTES / MAP_PHYS_RECORD_BYTES) - 1; // the first record names the device
    for (let i = 0; i < fits + 2; i++) {
      t.bounced('nvme0', Number.MAX_SAFE_INTEGER, 0x1000, 4096);
      t.mapPhys('nvme0', 0x1000, 0x10000, 4096, 1, 0);
    }
    t.close();
    expect(f.fullWaits()).toBe(2); // each dropped record waited for room first
    const r = f.close();
    expect(r.lost).toBe(4);
    expect(r.events).toBe(2 * fits);
    const ls = lines(file);
    expect(ls[0]).toBe('CPU:0 [LOST 4 EVENTS]');
    expect(ls).toHaveLength(1 + 2 * fits);
    expect(readFileSync(file, 'utf8').split('\n')[2]!.trimEnd()).toBe(`# entries-in-buffer/entries-written: ${2 * fits}/${2 * fits + 4}   #P:1`);
  });
});
