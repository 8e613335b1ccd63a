// [RFC] swiotlb throttling on real threads (reference §15.4-15.5, §15.9, §16, §18.14). Threads are
// lined up through control words and the queue length, so the expected orders are exact; checks are
// of invariants and orders, never of timings.
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { DmaDevice } from '../../src/dma/device.js';
import { GuestMemory } from '../../src/memory/guest.js';
import { DMA_ATTR_MAY_BLOCK, DMA_MAPPING_ERROR, DMA_TO_DEVICE } from '../../src/swiotlb/constants.js';
import { TSTAT_BYTES, TSTAT_WAITS } from '../../src/swiotlb/layout.js';
import { IoTlbMem } from '../../src/swiotlb/mem.js';
import {
  SLOP_STOP, type ThrottleSlopConfig, type ThrottleStep, type ThrottleWorkerConfig, type ThrottleWorkerResult,
} from '../../src/swiotlb/throttle-exerciser.js';
import {
  ThrottleStats, type ThrottleOptions, sumThrottleStats, throttleQuiescentViolations,
} from '../../src/swiotlb/throttle.js';
import { runWorkers } from '../../src/util/threads.js';
import { GUEST_BASE, POOL_START } from '../helpers.js';

const REGION_BYTES = 1 << 20;
const MAX_THREADS = 17;
const TIMEOUT_MS = 8000;
// Control words.
const CTL_HELD = 0;
const CTL_TICKET = 1;
const CTL_GO = 2;
const CTL_DONE = 3;
const CTL_ROUND = 4;

interface Rig {
  mem: IoTlbMem;
  dev: DmaDevice;
  control: Int32Array;
  stats: ThrottleStats[];
  /** Map `slots` slots from the main thread (cpu 0) without MAY_BLOCK. */
  nb: (slots: number) => number;
  /** Map `bytes` from the main thread with MAY_BLOCK. */
  mb: (bytes: number) => number;
  unmap: (tlb: number, bytes: number) => void;
  script: (cpu: number, steps: ThrottleStep[]) => ThrottleWorkerConfig;
  slop: (cpu: number, size: number, mayBlock: boolean, pairsPerRound: number) => ThrottleSlopConfig;
  /** Start the workers; the rig's waits fail fast if one of them fails. */
  start: (cfgs: ThrottleWorkerConfig[]) => Promise<ThrottleWorkerResult[]>;
  waitFor: (what: string, ok: () => boolean) => Promise<void>;
}

function rig(nslabs: number, nareas: number, throttle: ThrottleOptions): Rig {
  const guestSab = new SharedArrayBuffer(REGION_BYTES * (MAX_THREADS + 1));
  const guest = new GuestMemory(guestSab, GUEST_BASE);
  const statsSab = new SharedArrayBuffer(TSTAT_BYTES * (MAX_THREADS + 1));
  const stats = ThrottleStats.blocks(statsSab, MAX_THREADS + 1);
  const mem = IoTlbMem.create({ nslabs, nareas, start: POOL_START, forceBounce: true, throttle }, { cpu: 0, guest, throttleStats: stats[0] });
  const dev = new DmaDevice('main');
  const controlSab = new SharedArrayBuffer(64);
  const mainRegion = MAX_THREADS * REGION_BYTES;
  let failure: Error | null = null;
  const common = (cpu: number) => ({
    shared: mem.shared(), guest: guestSab, guestBase: GUEST_BASE, regionOffset: cpu * REGION_BYTES, cpu,
    device: `nvme${cpu}`, control: controlSab, stats: { sab: statsSab, byteOffset: cpu * TSTAT_BYTES }, timeoutMs: TIMEOUT_MS,
  });
  return {
    mem, dev, stats, control: new Int32Array(controlSab),
    nb: (slots) => mem.tblMapSingle(dev, guest.addrOf(mainRegion), slots * 2048, 0, DMA_TO_DEVICE, 0),
    mb: (bytes) => mem.tblMapSingle(dev, guest.addrOf(mainRegion), bytes, 0, DMA_TO_DEVICE, DMA_ATTR_MAY_BLOCK),
    unmap: (tlb, bytes) => mem.tblUnmapSingle(dev, tlb, bytes, DMA_TO_DEVICE, 0),
    script: (cpu, steps) => ({ kind: 'script', ...common(cpu), steps }),
    slop: (cpu, size, mayBlock, pairsPerRound) => ({ kind: 'slop', ...common(cpu), size, mayBlock, pairsPerRound, roundIndex: CTL_ROUND, doneIndex: CTL_DONE }),
    start: (cfgs) => {
      const p = runWorkers<ThrottleWorkerResult>('throttle', cfgs);
      p.catch((e: Error) => {
        failure = e;
      });
      return p;
    },
    waitFor: async (what, ok) => {
      const deadline = performance.now() + TIMEOUT_MS;
      while (!ok()) {
        if (failure !== null) throw failure;
        if (performance.now() > deadline) {
          mem.throttleAbort(); // release any parked worker before failing
          throw new Error(`timed out waiting for ${what}`);
        }
        await sleep(2);
      }
    },
  };
}

const byCpu = (results: ThrottleWorkerResult[], cpu: number) => results.find((r) => r.cpu === cpu)!;

describe('throttle_sem on threads', () => {
  it('FIFO with direct handoff: waiters are admitted in queue order, and a late down() does not barge', async () => {
    const r = rig(1024, 1, { enabled: true, highThrottle: 100, lowThrottle: 50 });
    const bg = [r.nb(64), r.nb(64)]; // used 128 > high_throttle: every MAY_BLOCK map throttles
    const waiter = (cpu: number): ThrottleStep[] => [
      { op: 'waitControl', index: CTL_HELD, atLeast: 1 },
      { op: 'waitQueueLen', atLeast: cpu - 1 }, // cpu 1 first, then 2, 3, 4
      { op: 'map', key: 'w', size: 4096, mayBlock: true },
      { op: 'ticket', index: CTL_TICKET, key: 'w' },
      { op: 'unmap', key: 'w' }, // hands the semaphore to the next waiter
    ];
    const holder: ThrottleStep[] = [
      { op: 'map', key: 'a', size: 4096, mayBlock: true }, // takes the free semaphore at once
      { op: 'addControl', index: CTL_HELD },
      { op: 'waitQueueLen', atLeast: 4 },
      { op: 'waitControl', index: CTL_GO, atLeast: 1 },
      { op: 'unmap', key: 'a' }, // up(): straight to cpu 1
      { op: 'map', key: 'late', size: 4096, mayBlock: true }, // at once: must queue behind 2, 3, 4
      { op: 'ticket', index: CTL_TICKET, key: 'late' },
      { op: 'unmap', key: 'late' },
    ];
    const done = r.start([r.script(5, holder), ...[1, 2, 3, 4].map((c) => r.script(c, waiter(c)))]);
    await r.waitFor('4 waiters', () => r.mem.throttle.queueLength() === 4);
    const snap = r.mem.throttleSnapshot();
    expect(snap.holder).toMatchObject({ vcpu: 5, device: 'nvme5', size: 4096, kind: 'mapping' });
    expect(snap.waiters.map((w) => [w.vcpu, w.device, w.size])).toEqual([[1, 'nvme1', 4096], [2, 'nvme2', 4096], [3, 'nvme3', 4096], [4, 'nvme4', 4096]]);
    expect(snap.count).toBe(0);
    Atomics.store(r.control, CTL_GO, 1);
    const results = await done;
    const order = [1, 2, 3, 4].map((c) => byCpu(results, c).tickets.w);
    expect(order).toEqual([0, 1, 2, 3]);
    expect(byCpu(results, 5).tickets.late).toBe(4);
    for (const c of [1, 2, 3, 4]) {
      expect(byCpu(results, c).maps[0]!.ok).toBe(true);
      expect(r.stats[c]!.fields[TSTAT_WAITS]).toBe(1); // each parked once
    }
    expect(r.stats[5]!.values()).toMatchObject({ high_throttled: 2, waits: 1, unmap_releases: 2 });
    // Decisions were serialised by the line-up, so no increment was lost.
    expect(r.mem.throttleDebugfs().high_throttle_count).toBe(6);
    expect(r.mem.throttleSnapshot().queue_len_max).toBe(4);
    expect(sumThrottleStats(r.stats).wait_ns.count).toBe(5);
    for (const t of bg) r.unmap(t, 64 * 2048);
    expect(throttleQuiescentViolations(r.mem.throttle, r.mem.pools)).toEqual([]);
    expect(r.mem.memUsed()).toBe(0);
  });

  it('unrelated unmaps wake nobody; the waiter (throttled low) wakes at the holder\'s unmap, after its slots are freed', async () => {
    const r = rig(1024, 1, { enabled: true, highThrottle: 100, lowThrottle: 50 });
    const x1 = r.nb(40);
    const x2 = r.nb(40);
    const x3 = r.nb(30); // used 110 > 100
    const m = r.mb(4096); // high: the main thread holds the semaphore through mapping m
    r.unmap(x3, 30 * 2048); // used 82: between the thresholds
    expect(r.mem.memUsed()).toBe(82);
    const done = r.start([r.script(1, [
      { op: 'map', key: 'w', size: 4096, mayBlock: true },
      { op: 'addControl', index: CTL_DONE },
      { op: 'unmap', key: 'w' },
    ])]);
    await r.waitFor('the waiter to park', () => r.mem.throttle.queueLength() === 1);
    r.unmap(x1, 40 * 2048);
    r.unmap(x2, 40 * 2048); // usage falls to 2 slots, far below low_throttle
    await sleep(250); // several wait slices: a waiter woken by anything but up() would be gone by now
    expect(r.mem.throttle.queueLength()).toBe(1);
    expect(Atomics.load(r.control, CTL_DONE)).toBe(0);
    expect(r.mem.throttleSnapshot()).toMatchObject({ count: 0, waiters: [{ vcpu: 1, device: 'nvme1' }], holder: { vcpu: 0, kind: 'mapping' } });
    r.unmap(m, 4096);
    const [w] = await done;
    expect(w!.maps[0]).toMatchObject({ ok: true, usedAtGrant: 0 }); // m's 2 slots were already free
    expect(r.stats[1]!.values()).toMatchObject({ low_throttled: 1, high_throttled: 0, waits: 1 });
    expect(r.mem.throttleDebugfs()).toMatchObject({ high_throttle_count: 1, low_throttle_count: 1 });
    const begin = w!.events.find((e) => e.event === 'throttle_begin');
    expect(begin).toMatchObject({ vcpu: 1, device: 'nvme1', size: 4096, used: 82, high_throttle: 100, low_throttle: 50, reason: 'low', queue_len: 0 });
    expect(w!.events.some((e) => e.event === 'throttle_end')).toBe(true);
    expect(throttleQuiescentViolations(r.mem.throttle, r.mem.pools)).toEqual([]);
  });

  it('the abort word ends a wait: the map fails, the waiter leaves the queue, the holder keeps the semaphore', async () => {
    const r = rig(1024, 1, { enabled: true, highThrottle: 10, lowThrottle: 5, waitSliceMs: 50 });
    const x = r.nb(20);
    const m = r.mb(4096);
    const done = r.start([r.script(1, [{ op: 'map', key: 'w', size: 4096, mayBlock: true }])]);
    await r.waitFor('the waiter to park', () => r.mem.throttle.queueLength() === 1);
    r.mem.throttleAbort();
    const [w] = await done;
    expect(w!.maps[0]!.ok).toBe(false);
    expect(w!.events.find((e) => e.event === 'map_failure')).toMatchObject({ cause: 'throttle_aborted', vcpu: 1, device: 'nvme1', size: 4096 });
    expect(r.stats[1]!.values()).toMatchObject({ aborted: 1, waits: 1 });
    expect(r.mem.throttleSnapshot()).toMatchObject({ count: 0, queue_len: 0, aborted_waits: 1, holder: { vcpu: 0 } });
    r.unmap(m, 4096);
    r.unmap(x, 20 * 2048);
    r.mem.throttleAbort(false);
    expect(throttleQuiescentViolations(r.mem.throttle, r.mem.pools)).toEqual([]);
  });

  it('self-deadlock (§15.9): the event names the holder, the watchdog view shows it waiting on itself, abort returns', async () => {
    const r = rig(1024, 1, { enabled: true, highThrottle: 10, lowThrottle: 5 });
    const x = r.nb(20);
    const done = r.start([r.script(3, [
      { op: 'map', key: 'data', size: 4096, mayBlock: true }, // throttled, holds the semaphore
      { op: 'map', key: 'meta', size: 2048, mayBlock: true }, // NVMe metadata: waits for itself
      { op: 'unmap', key: 'data' },
    ])]);
    await r.waitFor('the second map to park', () => r.mem.throttle.queueLength() === 1);
    const snap = r.mem.throttleSnapshot();
    expect(snap.holder).toMatchObject({ vcpu: 3, device: 'nvme3', size: 4096, kind: 'mapping' });
    expect(snap.waiters.map((w) => [w.vcpu, w.size])).toEqual([[3, 2048]]);
    expect(snap.deadlocks).toBe(1);
    r.mem.throttleAbort();
    const [w] = await done;
    const dl = w!.events.find((e) => e.event === 'throttle_deadlock');
    expect(dl).toMatchObject({ vcpu: 3, device: 'nvme3', size: 2048, holder: { vcpu: 3, device: 'nvme3', size: 4096, kind: 'mapping' } });
    expect(w!.maps.map((m) => m.ok)).toEqual([true, false]);
    expect(r.stats[3]!.values()).toMatchObject({ deadlocks: 1, aborted: 1 });
    r.unmap(x, 20 * 2048);
    r.mem.throttleAbort(false);
    expect(throttleQuiescentViolations(r.mem.throttle, r.mem.pools)).toEqual([]);
  });

  it('a throttled allocation that fails hands the semaphore to the next waiter', async () => {
    const r = rig(256, 1, { enabled: true, highThrottle: 0, lowThrottle: 0 });
    const a = r.nb(1); // slot 0
    const b = r.nb(126); // slots 2..127
    const c = r.nb(1); // slot 128: now no 128-slot run is free
    r.unmap(b, 126 * 2048);
    const m = r.mb(2048); // used 2 > 0: throttled, holds
    const big: ThrottleStep = { op: 'map', key: 'big', size: 262144, mayBlock: true };
    const done = r.start([
      r.script(1, [big]),
      r.script(2, [{ op: 'waitQueueLen', atLeast: 1 }, big]),
    ]);
    await r.waitFor('2 waiters', () => r.mem.throttle.queueLength() === 2);
    r.unmap(m, 2048); // to cpu 1, whose search fails; its up() goes to cpu 2, whose search fails too
    const results = await done;
    for (const cpu of [1, 2]) {
      const w = byCpu(results, cpu);
      expect(w.maps[0]!.ok).toBe(false);
      expect(w.events.find((e) => e.event === 'map_failure')).toMatchObject({ cause: 'full', size: 262144 });
      expect(r.stats[cpu]!.values()).toMatchObject({ waits: 1, failed_releases: 1, aborted: 0 });
    }
    expect(r.mem.throttleSnapshot()).toMatchObject({ count: 1, queue_len: 0, holder: null });
    r.unmap(a, 2048);
    r.unmap(c, 2048);
    expect(throttleQuiescentViolations(r.mem.throttle, r.mem.pools)).toEqual([]);
  });
});

describe('accepted slop (§15.9)', () => {
  it('requests released together just under high_throttle overshoot it, never beyond the bound', async () => {
    const HIGH = 1000;
    const SLOTS = 2; // each request maps 2 slots
    const THREADS = 16; // 12 MAY_BLOCK, 4 without (networking-like traffic)
    const MIN_ROUNDS = 20; // keep checking the bound for a while after the first overshoot
    const MAX_ROUNDS = 200;
    const PAIRS = 4; // map + unmap pairs per thread per round
    const r = rig(4096, 4, { enabled: true, highThrottle: HIGH, lowThrottle: 900 });
    // Background usage HIGH - 1: a request that checks before any other allocation is admitted and,
    // alone, ends at HIGH + 1. A used1 beyond that (growth above its own 2 slots) needs another
    // allocation between its check and its own, which only concurrency gives.
    const bg: [number, number][] = [];
    for (let left = HIGH - 1; left > 0; left -= Math.min(left, 100)) bg.push([r.nb(Math.min(left, 100)), Math.min(left, 100)]);
    expect(r.mem.memUsed()).toBe(HIGH - 1);
    const cpus = Array.from({ length: THREADS }, (_, k) => k + 1);
    const mayBlock = (cpu: number) => cpu <= 12;
    const done = r.start(cpus.map((cpu) => r.slop(cpu, SLOTS * 2048, mayBlock(cpu), PAIRS)));
    let rounds = 0;
    let seen = false;
    while (rounds < MAX_ROUNDS && !(seen && rounds >= MIN_ROUNDS)) {
      rounds++;
      Atomics.store(r.control, CTL_ROUND, rounds);
      Atomics.notify(r.control, CTL_ROUND); // the barrier: all threads at once
      await r.waitFor(`round ${rounds}`, () => Atomics.load(r.control, CTL_DONE) === rounds * THREADS);
      const s = sumThrottleStats(r.stats.slice(1, 13));
      seen ||= s.concurrent_slop > 0 && s.overshoot_slots_max > SLOTS - 1;
    }
    Atomics.store(r.control, CTL_ROUND, SLOP_STOP);
    Atomics.notify(r.control, CTL_ROUND);
    const results = await done;
    const s = sumThrottleStats(r.stats.slice(1, 13));
    expect(seen, `no overshoot beyond one request's own size in ${rounds} rounds`).toBe(true);
    expect(s.bound_violations).toBe(0);
    expect(s.overshoot_slots_max).toBeLessThanOrEqual(s.bound_slots_at_max);
    expect(s.own_slots_at_max).toBe(SLOTS);
    expect(s.bound_slots_at_max).toBe(s.own_slots_at_max + s.other_may_block_slots_at_max + s.non_block_slots_at_max);
    expect(s.overshoot_slots.count).toBe(s.overshoots);
    expect(s.admitted).toBeGreaterThan(0);
    for (const cpu of cpus.filter((c) => !mayBlock(c))) {
      // Non-blocking maps never wait, though usage is above high_throttle most of the time.
      expect(r.stats[cpu]!.values()).toMatchObject({ high_throttled: 0, low_throttled: 0, waits: 0, admitted: 0 });
    }
    expect(results.every((w) => w.mapFailures === 0 && w.rounds === rounds)).toBe(true);
    for (const [t, n] of bg) r.unmap(t, n * 2048);
    expect(throttleQuiescentViolations(r.mem.throttle, r.mem.pools)).toEqual([]);
    expect(r.mem.memUsed()).toBe(0);
  });
});
