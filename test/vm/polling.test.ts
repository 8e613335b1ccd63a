// Polled completion (src/vm/polling.ts; Robin Murphy, seed 000): a hipri job on NVMe poll queues is
// reaped only by its vCPU's poll loop, so a vCPU parked in the throttle wait leaves its own completions
// unreaped; interrupt-driven completions are taken during the wait.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { QueuePair, QP_CQ_HEAD, QP_CQ_TAIL } from '../../src/devices/queue.js';
import { isPolled, parseNvmePollQueues, parsePolledQueuesText, polledQueueStates, polledQueuesText } from '../../src/vm/polling.js';
import type { RunReport } from '../../src/vm/report.js';
import { vmProcess as vm } from '../helpers/vm-process.js';

describe('nvme.poll_queues and hipri', () => {
  it('reads nvme.poll_queues from the command line: default 0, the last one wins, bad values refused', () => {
    expect(parseNvmePollQueues('')).toBe(0);
    expect(parseNvmePollQueues('swiotlb=1024 nvme.poll_queues=4')).toBe(4);
    expect(parseNvmePollQueues('nvme.poll_queues=4 nvme.poll_queues=0')).toBe(0);
    for (const bad of ['nvme.poll_queues=', 'nvme.poll_queues=-1', 'nvme.poll_queues=two', 'nvme.poll_queues=257']) {
      expect(() => parseNvmePollQueues(bad)).toThrow(InputError);
      expect(() => parseNvmePollQueues(bad)).toThrow(`--cmdline: "${bad}" is not valid; expected nvme.poll_queues=<N> with a whole number from 0 to 256`);
    }
  });

  it('polls a storage job only when it asks (hipri) and the driver has poll queues', () => {
    expect(isPolled({ engine: 'storage', hipri: true }, 1)).toBe(true);
    expect(isPolled({ engine: 'storage', hipri: true }, 0)).toBe(false);
    expect(isPolled({ engine: 'storage', hipri: false }, 4)).toBe(false);
    expect(isPolled({ engine: 'net', hipri: true }, 4)).toBe(false);
  });

  it('names each poll queue with the completions posted and not reaped, and whether its vCPU is parked', () => {
    const q = QueuePair.create(8);
    Atomics.store(q.header, QP_CQ_TAIL, 7);
    Atomics.store(q.header, QP_CQ_HEAD, 2);
    const states = polledQueueStates([null, q], new Set([1]));
    expect(states).toEqual([{ vcpu: 1, device: 'nvme0', posted_unreaped: 5, parked_in_throttle_wait: true }]);
    expect(polledQueuesText(states)).toBe('; polled queues (no interrupt: only the submitting vCPU\'s poll loop reaps them): vcpu1 nvme0 poll queue: 5 completions posted, not reaped (vcpu parked in the throttle wait: it cannot poll)');
    expect(polledQueuesText([])).toBe('');
    // Read back from a stall's one-line reason, as a sweep record has only that.
    expect(parsePolledQueuesText(`stall: no I/O completed${polledQueuesText(states)}`)).toEqual(states);
    expect(parsePolledQueuesText('stall: no I/O completed for 15 s')).toEqual([]);
  });
});

describe('a polled job parked on the throttle (one vCPU, 512 slots, 64 KiB reads at iodepth 16)', () => {
  // Worked out by hand. 512 slots: high_throttle = 512 * 70 / 100 = 358. Each 64 KiB read takes 32
  // slots and one pass submits up to iodepth = 16 before reaping. Reads 1-12 see total_used 0..352 <=
  // 358 and pass; read 13 sees 384 > 358, takes the free throttle_sem and holds it as a live mapping;
  // read 14 sees 416 > 358 and waits for throttle_sem, held by its own vCPU's mapping (§15.9). Only
  // the unmap of read 13 releases it.
  // - Polled (nvme.poll_queues=1): reads 1-13 complete on the poll queue, which nothing reaps while
  //   the only poller sleeps: the throttle watchdog ends the run, exit 1, naming the 13 completions.
  // - Interrupt-driven (no poll queues): the wait takes the interrupts, reads 1-13 complete (the
  //   device serves in submission order, so 13 is reaped after 1-12, all during that wait), read 13's
  //   unmap hands throttle_sem to read 14, and the run ends normally.
  // Both rely on the vCPU ringing the NVMe doorbell for reads 1-13 before read 14's map sleeps: the
  // throttle wait asserts it (a worker error, exit 1 with another message, if it did not). At most one throttled mapping
  //   is live and unthrottled maps pass only at used <= 358, so used stays <= 358 + 32 + 32 < 512:
  //   no map fails.
  const job = (dir: string): string => {
    const file = join(dir, 'hipri.fio');
    writeFileSync(file, '[polled]\nioengine=io_uring\nhipri\nrw=randread\nbs=64k\niodepth=16\nsize=16M\ntime_based\nruntime=500ms\n');
    return file;
  };
  const args = (dir: string) => ['--vcpus', '1', '--mem', '1G', '--policy', 'throttle', '--exact-nslabs', '512', '--throttle-stall-timeout', '300ms',
    '--stall-timeout', '10s', '--job', job(dir), '--output-format', 'json', '--log-file', join(dir, 'run.ndjson')];

  it('stalls with polled completions: reported, exit 1, the poll queue and the parked vCPU named, the log written', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coco-poll-'));
    const r = await vm([...args(dir), '--cmdline', 'nvme.poll_queues=1']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('swiotlb throttle stall (self-deadlock: the holder\'s own vCPU waits for it): throttle_sem held');
    expect(r.stderr).toContain('by vcpu0 (nvme0, 65536-byte mapping); waiting: vcpu0 (nvme0, 65536 bytes');
    expect(r.stderr).toContain('vcpu0 nvme0 poll queue: 13 completions posted, not reaped (vcpu parked in the throttle wait: it cannot poll)');
    const rep = JSON.parse(r.stdout) as RunReport;
    expect(rep.run).toMatchObject({ status: 'failed', partial: true });
    expect(rep.polling.nvme_poll_queues).toBe(1);
    const p = rep.polling.jobs[0]!;
    expect(p).toMatchObject({ name: 'polled', hipri: true, polled: true, reaped_in_throttle_wait: 0 });
    // Once the watchdog aborted the wait, the map failed and the poll loop reaped the 13.
    expect(p.reaped_by_polling).toBe(13);
    expect(p.polls).toBeGreaterThanOrEqual(1);
    expect(rep.throttle.waits_behind_own_mapping).toBe(1);
    expect(rep.swiotlb.map_failures_by_cause.throttle_aborted).toBe(1);
    expect(rep.swiotlb.io_tlb_used).toBe(0);
    const recs = readFileSync(join(dir, 'run.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const stall = recs.find((x) => x['event'] === 'stall')!;
    expect(stall).toMatchObject({ kind: 'self_deadlock', polled_queues: [{ vcpu: 0, device: 'nvme0', posted_unreaped: 13, parked_in_throttle_wait: true }] });
    expect(recs.some((x) => x['event'] === 'run_summary')).toBe(true);
  }, 60_000);

  it('completes with interrupt-driven completions: the throttle wait reaps them, no map fails', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coco-poll-'));
    const r = await vm(args(dir));
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout) as RunReport;
    expect(rep.run.status).toBe('ok');
    const p = rep.polling.jobs[0]!;
    expect(p).toMatchObject({ hipri: true, polled: false, polls: 0, reaped_by_polling: 0 });
    expect(p.reaped_in_throttle_wait).toBeGreaterThanOrEqual(13);
    expect(rep.polling.note).toContain('nvme0 has no poll queues (nvme.poll_queues=0, the default)');
    expect(rep.throttle.waits_behind_own_mapping).toBeGreaterThanOrEqual(1);
    expect(rep.swiotlb.map_failures).toBe(0);
    expect(rep.jobs[0]!.errors_total).toBe(0);
    expect(rep.jobs[0]!.read!.ios).toBeGreaterThan(13);
  }, 60_000);

  it('refuses a bad nvme.poll_queues with one line and exit 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coco-poll-'));
    const r = await vm([...args(dir), '--cmdline', 'nvme.poll_queues=lots']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('vm: --cmdline: "nvme.poll_queues=lots" is not valid; expected nvme.poll_queues=<N> with a whole number from 0 to 256');
  }, 60_000);
});
