// [RFC] swiotlb throttling on one thread (reference §15, §18.14-15). Expected values are worked out
// from the reference by hand; the multi-thread rules are in throttle-threads.test.ts.
import { describe, expect, it } from 'vitest';
import { DmaDevice } from '../../src/dma/device.js';
import { dmaRecommendMayBlock } from '../../src/dma/direct.js';
import { InputError, InvariantError } from '../../src/errors.js';
import { GuestMemory } from '../../src/memory/guest.js';
import {
  DMA_ATTR_MAY_BLOCK, DMA_MAPPING_ERROR, DMA_TO_DEVICE,
} from '../../src/swiotlb/constants.js';
import {
  AREA_ACQUIRED, STAT_MAP_FAIL_FULL, STAT_MAP_FAIL_THROTTLE_ABORTED, THR_SEM_LOCK_RECORD, TSTAT_ABORTED, TSTAT_ADMITTED, TSTAT_BOUND_SLOTS_AT_MAX, TSTAT_BYTES,
  TSTAT_FAILED_RELEASES, TSTAT_HIGH_THROTTLED, TSTAT_LOW_THROTTLED, TSTAT_OVERSHOOTS, TSTAT_OVERSHOOT_SLOTS_MAX,
  TSTAT_OWN_SLOTS_AT_MAX, TSTAT_UNMAP_RELEASES, TSTAT_WAITS, TSTAT_WAIT_NS_MAX, TSTAT_WAIT_NS_TOTAL,
} from '../../src/swiotlb/layout.js';
import { IoTlbMem, type SwiotlbEvent } from '../../src/swiotlb/mem.js';
import {
  THROTTLE_DEBUGFS_PATHS, THROTTLE_SYSCTL_PATHS, ThrottleState, ThrottleStats, type ThrottleOptions,
  defaultThrottleThresholds, sumThrottleStats, throttleQuiescentViolations, throttledSlots,
} from '../../src/swiotlb/throttle.js';
import { GUEST_BASE, POOL_START } from '../helpers.js';

interface TFixture {
  mem: IoTlbMem;
  guest: GuestMemory;
  events: SwiotlbEvent[];
  dev: DmaDevice;
  /** Map `slots` slots without MAY_BLOCK (non-throttled traffic). */
  nb: (slots: number) => number;
  /** Map `bytes` with MAY_BLOCK. */
  mb: (bytes: number, m?: IoTlbMem) => number;
  unmap: (tlb: number, bytes: number, m?: IoTlbMem) => void;
}

function tfixture(nslabs: number, throttle?: ThrottleOptions): TFixture {
  const guest = GuestMemory.create(GUEST_BASE, 4 * 1024 * 1024);
  const events: SwiotlbEvent[] = [];
  const mem = IoTlbMem.create({ nslabs, nareas: 1, start: POOL_START, forceBounce: true, throttle }, { cpu: 0, guest, events: (e) => events.push(e) });
  const dev = new DmaDevice('test-dev');
  let at = 0;
  const orig = (bytes: number) => {
    const a = guest.addrOf(at);
    at = (at + bytes + 4095) & ~4095;
    return a;
  };
  return {
    mem, guest, events, dev,
    nb: (slots) => mem.tblMapSingle(dev, orig(slots * 2048), slots * 2048, 0, DMA_TO_DEVICE, 0),
    mb: (bytes, m = mem) => m.tblMapSingle(dev, orig(bytes), bytes, 0, DMA_TO_DEVICE, DMA_ATTR_MAY_BLOCK),
    unmap: (tlb, bytes, m = mem) => m.tblUnmapSingle(dev, tlb, bytes, DMA_TO_DEVICE, 0),
  };
}

const slotOf = (mem: IoTlbMem, tlb: number) => Math.floor((tlb - mem.defpool.start) / 2048);
const semLockAcquisitions = (mem: IoTlbMem) => mem.throttle.i32[THR_SEM_LOCK_RECORD + AREA_ACQUIRED]!;

describe('init_throttling defaults (§15.3)', () => {
  it('70% / 65% of nslabs, rounded down', () => {
    const { mem } = tfixture(32768, { enabled: true });
    expect(mem.throttleDebugfs()).toEqual({ high_throttle: 22937, low_throttle: 21299, high_throttle_count: 0, low_throttle_count: 0 });
    expect(mem.throttleSnapshot()).toMatchObject({ count: 1, held: false, holder: null, queue_len: 0 });
    // A 1 GiB pool: the region alone (the pool's bounce data would be 1 GiB).
    expect(ThrottleState.create(524288, { enabled: true }).debugfs()).toMatchObject({ high_throttle: 367001, low_throttle: 340787 });
    expect(defaultThrottleThresholds(32768)).toEqual({ high_throttle: 22937, low_throttle: 21299 });
  });
  it('without CONFIG_SWIOTLB_THROTTLE both thresholds read 0 and MAY_BLOCK is ignored', () => {
    const f = tfixture(256, { enabled: false, highThrottle: 5, lowThrottle: 3 });
    const { mem } = f;
    expect(mem.throttleEnabled).toBe(false);
    expect(mem.throttleDebugfs()).toEqual({ high_throttle: 0, low_throttle: 0, high_throttle_count: 0, low_throttle_count: 0 });
    f.nb(3); // used 3 > high_throttle 0: a build with throttling would throttle now
    const a = f.mb(4096);
    const b = f.mb(4096);
    expect(a).not.toBe(DMA_MAPPING_ERROR);
    expect(b).not.toBe(DMA_MAPPING_ERROR);
    expect(mem.throttleDebugfs()).toMatchObject({ high_throttle_count: 0, low_throttle_count: 0 });
    expect(mem.throttleSnapshot()).toMatchObject({ count: 1, holder: null });
    expect(throttledSlots(mem.pools)).toBe(0);
    expect(mem.throttleStats.fields[TSTAT_HIGH_THROTTLED]).toBe(0);
    expect(dmaRecommendMayBlock(mem, f.dev)).toBe(false);
    // The default is off, like CONFIG_SWIOTLB_THROTTLE=n.
    expect(tfixture(256).mem.throttleEnabled).toBe(false);
  });
});

describe('the throttle decision (§15.4)', () => {
  const opts = { enabled: true, highThrottle: 10, lowThrottle: 5 };
  it('used == high_throttle: no throttle', () => {
    const f = tfixture(256, opts);
    f.nb(10);
    const lock0 = semLockAcquisitions(f.mem);
    const a = f.mb(2048);
    expect(semLockAcquisitions(f.mem)).toBe(lock0); // the semaphore was not touched
    expect(f.mem.throttleDebugfs()).toMatchObject({ high_throttle_count: 0, low_throttle_count: 0 });
    expect(f.mem.defpool.throttled[slotOf(f.mem, a)]).toBe(0);
    expect(f.mem.throttleSnapshot()).toMatchObject({ count: 1, holder: null });
  });
  it('used == high_throttle + 1: throttled (high), takes the free semaphore at once and holds it as a mapping', () => {
    const f = tfixture(256, opts);
    f.nb(11);
    const a = f.mb(2048);
    expect(f.mem.throttleDebugfs()).toMatchObject({ high_throttle_count: 1, low_throttle_count: 0 });
    expect(f.mem.throttleStats.fields[TSTAT_HIGH_THROTTLED]).toBe(1);
    expect(f.mem.throttleStats.fields[TSTAT_WAITS]).toBe(0); // it never waited
    const snap = f.mem.throttleSnapshot();
    expect(snap).toMatchObject({ count: 0, held: true, queue_len: 0 });
    expect(snap.holder).toMatchObject({ vcpu: 0, device: 'test-dev', size: 2048, kind: 'mapping' });
    expect(f.mem.defpool.throttled[slotOf(f.mem, a)]).toBe(1);
    expect(throttledSlots(f.mem.pools)).toBe(1);
    f.unmap(a, 2048);
    expect(f.mem.throttleSnapshot()).toMatchObject({ count: 1, holder: null });
    expect(f.mem.throttleStats.fields[TSTAT_UNMAP_RELEASES]).toBe(1);
  });
  it('between the thresholds with the semaphore free: no throttle, semaphore untouched', () => {
    const f = tfixture(256, opts);
    f.nb(7);
    const lock0 = semLockAcquisitions(f.mem);
    f.mb(2048);
    expect(semLockAcquisitions(f.mem)).toBe(lock0);
    expect(f.mem.throttleDebugfs()).toMatchObject({ high_throttle_count: 0, low_throttle_count: 0 });
    expect(f.mem.throttleSnapshot()).toMatchObject({ count: 1, holder: null });
  });
  it('used == low_throttle with the semaphore held: no throttle (the rule is used > low_throttle), semaphore untouched', () => {
    const f = tfixture(256, opts);
    const x = f.nb(11);
    const m = f.mb(2048); // high: holds the semaphore through a live mapping
    f.unmap(x, 11 * 2048);
    f.nb(4); // used = 1 (m) + 4 = 5 = low_throttle
    expect(f.mem.memUsed()).toBe(5);
    const other = IoTlbMem.attach(f.mem.shared(), { cpu: 1, guest: f.guest });
    // The abort word makes a wait, were the request throttled, return at once (a failed map) instead of hanging.
    f.mem.throttleAbort();
    const lock0 = semLockAcquisitions(f.mem); // after the abort, which takes the semaphore's lock to wake waiters
    const a = f.mb(2048, other);
    expect(semLockAcquisitions(f.mem)).toBe(lock0);
    f.mem.throttleAbort(false);
    expect(a).not.toBe(DMA_MAPPING_ERROR);
    expect(f.mem.throttleDebugfs()).toMatchObject({ high_throttle_count: 1, low_throttle_count: 0 });
    expect(other.throttleStats.fields[TSTAT_LOW_THROTTLED]).toBe(0);
    expect(f.mem.defpool.throttled[slotOf(f.mem, a)]).toBe(0);
    expect(f.mem.throttleSnapshot()).toMatchObject({ count: 0, holder: { vcpu: 0, kind: 'mapping' } });
    f.unmap(a, 2048, other);
    f.unmap(m, 2048);
    expect(f.mem.throttleSnapshot()).toMatchObject({ count: 1, holder: null, queue_len: 0 });
  });
  it('between the thresholds with the semaphore held: throttled (low) and goes to wait', () => {
    const f = tfixture(256, opts);
    const x = f.nb(11);
    const m = f.mb(2048); // high: holds the semaphore through a live mapping
    f.unmap(x, 11 * 2048);
    f.nb(6); // used = 1 (m) + 6 = 7: above low_throttle 5, not above high_throttle 10
    expect(f.mem.memUsed()).toBe(7);
    // Another CPU maps. The abort word is set first so that the wait it must enter returns at once
    // (the waiting itself is shown on real threads in throttle-threads.test.ts).
    const otherEvents: SwiotlbEvent[] = [];
    const other = IoTlbMem.attach(f.mem.shared(), { cpu: 1, guest: f.guest, events: (e) => otherEvents.push(e) });
    f.mem.throttleAbort();
    expect(f.mb(2048, other)).toBe(DMA_MAPPING_ERROR);
    expect(f.mem.throttleDebugfs()).toMatchObject({ high_throttle_count: 1, low_throttle_count: 1 });
    expect(other.throttleStats.fields[TSTAT_LOW_THROTTLED]).toBe(1);
    expect(other.throttleStats.fields[TSTAT_ABORTED]).toBe(1);
    expect(otherEvents.map((e) => e.event)).toEqual(['map_failure']); // no self-deadlock: the holder is cpu 0
    expect(otherEvents[0]).toMatchObject({ cause: 'throttle_aborted', vcpu: 1, size: 2048, used: 7 });
    expect(f.mem.memUsed()).toBe(7); // a waiter holds no slots
    f.mem.throttleAbort(false);
    f.unmap(m, 2048);
    expect(f.mem.throttleSnapshot()).toMatchObject({ count: 1, holder: null, queue_len: 0 });
  });
});

describe('tunables (§15.8)', () => {
  it('thresholds changed at run time apply to the next request; low > high warns; bad values are rejected', () => {
    const f = tfixture(256, { enabled: true });
    expect(f.mem.throttleDebugfs()).toMatchObject({ high_throttle: 179, low_throttle: 166 }); // floor(179.2), floor(166.4)
    f.nb(20);
    const a = f.mb(2048); // 20 <= 179
    expect(f.mem.throttleDebugfs().high_throttle_count).toBe(0);
    f.unmap(a, 2048);
    f.mem.writeThrottleTunable('low_throttle', 10);
    f.mem.writeThrottleTunable('high_throttle', 19);
    const b = f.mb(2048); // 20 > 19
    expect(f.mem.throttleDebugfs().high_throttle_count).toBe(1);
    f.unmap(b, 2048);
    f.mem.writeThrottleTunable('high_throttle', 100);
    const warnings = () => f.events.filter((e) => e.event === 'swiotlb_warn' && e.msg.includes('_throttle')).map((e) => e.msg);
    expect(warnings()).toEqual([]);
    f.mem.writeThrottleTunable('low_throttle', 150); // not validated against high_throttle, as in the RFC
    expect(f.mem.throttleDebugfs()).toMatchObject({ high_throttle: 100, low_throttle: 150 });
    expect(warnings()).toEqual([
      'swiotlb: low_throttle 150 is above high_throttle 100; the low threshold has no effect',
    ]);
    f.mem.writeThrottleTunable('high_throttle_count', 0); // the counters are writable, to reset them
    expect(f.mem.throttleDebugfs().high_throttle_count).toBe(0);
    expect(() => f.mem.writeThrottleTunable('high_throttle', -1)).toThrow(InputError);
    expect(() => f.mem.writeThrottleTunable('low_throttle', 1.5)).toThrow(InputError);
    expect(() => f.mem.writeThrottleTunable('nope' as 'high_throttle', 1)).toThrow(InputError);
    expect(f.mem.throttleDebugfs()).toMatchObject({ high_throttle: 100, low_throttle: 150 });
  });
  it('names the proposed sysctl paths and the debugfs files', () => {
    expect(THROTTLE_SYSCTL_PATHS).toEqual({
      '/proc/sys/kernel/dma/swiotlb_default/high_throttle': 'high_throttle',
      '/proc/sys/kernel/dma/swiotlb_default/low_throttle': 'low_throttle',
      '/proc/sys/kernel/dma/swiotlb_default/high_throttle_count': 'high_throttle_count',
      '/proc/sys/kernel/dma/swiotlb_default/low_throttle_count': 'low_throttle_count',
    });
    expect(THROTTLE_DEBUGFS_PATHS['/sys/kernel/debug/swiotlb/low_throttle_count']).toBe('low_throttle_count');
  });
});

describe('the throttled mapping (§15.4 step 6, §15.5)', () => {
  it('the flag lives in the first data slot (after the padding) and is cleared at unmap', () => {
    const f = tfixture(128, { enabled: true, highThrottle: 0, lowThrottle: 0 });
    f.nb(1); // slot 0, cursor 1; used 1 > 0
    // IOMMU-style: alloc_align_mask 0xFFF and min_align_mask 0xFFF, original at page offset 0x810.
    // offset = 0x810, size = 4096 (2 slots), pad_slots = 1. The search skips slot 1 (not page
    // aligned) and takes slots 2-3; the first data slot is 3 and the bounce address 3 * 2048 + 0x10.
    const d = new DmaDevice('iommu-dev', { minAlignMask: 0xfff });
    const tlb = f.mem.tblMapSingle(d, f.guest.base + 0x810, 100, 0xfff, DMA_TO_DEVICE, DMA_ATTR_MAY_BLOCK);
    expect(tlb).toBe(POOL_START + 3 * 2048 + 0x10);
    const pool = f.mem.defpool;
    expect(pool.padSlots[3]).toBe(1);
    expect(Array.from(pool.throttled.subarray(0, 5))).toEqual([0, 0, 0, 1, 0]);
    expect(f.mem.throttleDebugfs().high_throttle_count).toBe(1);
    f.mem.tblUnmapSingle(d, tlb, 100, DMA_TO_DEVICE, 0);
    expect(throttledSlots(f.mem.pools)).toBe(0);
    expect(f.mem.throttleSnapshot()).toMatchObject({ count: 1, holder: null });
  });
  it('up() comes after the slots are freed, and unmaps of other mappings never call it', () => {
    const f = tfixture(128, { enabled: true, highThrottle: 0, lowThrottle: 0 });
    const x = f.nb(1);
    const m = f.mb(5000); // 3 slots, throttled
    const s = slotOf(f.mem, m);
    expect(f.mem.memUsed()).toBe(4);
    const seen: { used: number; list: number }[] = [];
    const up = f.mem.throttle.up.bind(f.mem.throttle);
    f.mem.throttle.up = () => {
      seen.push({ used: f.mem.memUsed(), list: f.mem.defpool.list[s]! });
      up();
    };
    f.unmap(x, 2048);
    expect(seen).toEqual([]);
    f.unmap(m, 5000);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.used).toBe(0); // total_used already lowered
    expect(seen[0]!.list).toBeGreaterThan(0); // the slots already free
    expect(throttleQuiescentViolations(f.mem.throttle, f.mem.pools)).toEqual([]);
  });
  it('maps without MAY_BLOCK never wait, even above high_throttle with the semaphore held', () => {
    const f = tfixture(256, { enabled: true, highThrottle: 0, lowThrottle: 0 });
    f.nb(1);
    const m = f.mb(2048);
    expect(f.mem.throttleSnapshot().count).toBe(0);
    f.mem.throttleAbort(); // a wrong implementation would fail these maps instead of hanging
    const lock0 = semLockAcquisitions(f.mem);
    for (let i = 0; i < 5; i++) expect(f.nb(8)).not.toBe(DMA_MAPPING_ERROR);
    expect(semLockAcquisitions(f.mem)).toBe(lock0);
    expect(f.mem.throttleDebugfs()).toMatchObject({ high_throttle_count: 1, low_throttle_count: 0 });
    expect(f.events.filter((e) => e.event !== 'swiotlb_warn')).toEqual([]);
    f.mem.throttleAbort(false);
    f.unmap(m, 2048);
  });
  it('a throttled request whose slot search fails releases the semaphore (full and oversize)', () => {
    const f = tfixture(256, { enabled: true, highThrottle: 0, lowThrottle: 0 });
    // Leave no 128-slot run: slot 0 and slot 128 in use.
    const a = f.nb(1); // slot 0
    const b = f.nb(126); // page-aligned: slots 2..127
    const c = f.nb(1); // slot 128
    expect([a, b, c].map((t) => slotOf(f.mem, t))).toEqual([0, 2, 128]);
    f.unmap(b, 126 * 2048);
    expect(f.mb(262144)).toBe(DMA_MAPPING_ERROR);
    expect(f.events.filter((e) => e.event === 'map_failure').map((e) => (e as { cause: string }).cause)).toEqual(['full']);
    expect(f.mem.throttleSnapshot()).toMatchObject({ count: 1, holder: null });
    expect(f.mb(262145)).toBe(DMA_MAPPING_ERROR); // larger than a segment
    expect(f.mem.throttleSnapshot()).toMatchObject({ count: 1, holder: null });
    expect(f.mem.throttleStats.fields[TSTAT_FAILED_RELEASES]).toBe(2);
    expect(f.mem.throttleDebugfs().high_throttle_count).toBe(2);
    expect(throttleQuiescentViolations(f.mem.throttle, f.mem.pools)).toEqual([]);
  });
  it('self-deadlock (§15.9): a second MAY_BLOCK map while its own throttled mapping holds the semaphore is reported', () => {
    const f = tfixture(256, { enabled: true, highThrottle: 10, lowThrottle: 5 });
    const x = f.nb(11);
    const m = f.mb(4096); // high: holds
    // Raise high_throttle: usage is now only above low_throttle, which is enough because the
    // semaphore is held (by our own mapping).
    f.unmap(x, 11 * 2048);
    f.nb(6);
    f.mem.writeThrottleTunable('high_throttle', 50);
    f.mem.throttleAbort(); // one thread cannot wait for itself: the VM's watchdog would abort here
    expect(f.mb(2048)).toBe(DMA_MAPPING_ERROR);
    const dl = f.events.filter((e) => e.event === 'throttle_deadlock');
    expect(dl).toHaveLength(1);
    expect(dl[0]).toMatchObject({ vcpu: 0, device: 'test-dev', size: 2048, holder: { vcpu: 0, device: 'test-dev', size: 4096, kind: 'mapping' } });
    expect(f.mem.throttleDebugfs()).toMatchObject({ high_throttle_count: 1, low_throttle_count: 1 });
    expect(f.mem.throttleSnapshot().deadlocks).toBe(1);
    // The aborted wait is a failed map with its own cause, in the thread's statistics and the total.
    expect(f.mem.stats[STAT_MAP_FAIL_THROTTLE_ABORTED]).toBe(1);
    expect(f.mem.stats[STAT_MAP_FAIL_FULL]).toBe(0);
    expect(f.mem.mapFailures()).toBe(1);
    f.mem.throttleAbort(false);
    f.unmap(m, 4096);
    expect(throttleQuiescentViolations(f.mem.throttle, f.mem.pools)).toEqual([]);
  });
});

describe('throttle_sem (§15.5, §16)', () => {
  it('count stays within {0, 1}: an up() without a down() is an invariant violation', () => {
    const s = ThrottleState.create(128, { enabled: true });
    expect(s.down(0, 'a', 1)).toBe('acquired');
    expect(s.semCount()).toBe(0);
    s.abort();
    expect(s.down(1, 'b', 1)).toBe('aborted'); // would have to wait
    expect(s.snapshot()).toMatchObject({ count: 0, queue_len: 0, aborted_waits: 1, holder: { vcpu: 0, device: 'a', kind: 'request' } });
    s.up();
    expect(s.semCount()).toBe(1);
    expect(() => s.up()).toThrow(InvariantError);
  });
});

describe('invariant §18.14', () => {
  it('count + holders = 1: the quiescence check flags a live throttled mapping, and passes once it is unmapped', () => {
    const f = tfixture(256, { enabled: true, highThrottle: 0, lowThrottle: 0 });
    const x = f.nb(1);
    expect(throttleQuiescentViolations(f.mem.throttle, f.mem.pools)).toEqual([]);
    const m = f.mb(4096);
    const s = slotOf(f.mem, m);
    expect(throttleQuiescentViolations(f.mem.throttle, f.mem.pools)).toEqual([
      'throttle_sem count is 0, expected 1',
      'throttle_sem has a holder (vCPU 0, test-dev)',
      `slot ${s} of the pool at 0x80000000 is flagged throttled`,
    ]);
    f.unmap(m, 4096);
    f.unmap(x, 2048);
    expect(throttleQuiescentViolations(f.mem.throttle, f.mem.pools)).toEqual([]);
  });
});

describe('slop measurement and per-thread statistics', () => {
  it('an admitted request alone overshoots by its own size at most, within the bound', () => {
    const f = tfixture(256, { enabled: true, highThrottle: 10, lowThrottle: 5 });
    f.nb(9); // just under high_throttle
    f.mb(3 * 2048); // admitted: used 9 -> 12, overshoot 2, bound = its own 3 slots
    const t = f.mem.throttleStats.fields;
    expect(t[TSTAT_ADMITTED]).toBe(1);
    expect(t[TSTAT_OVERSHOOTS]).toBe(1);
    expect(t[TSTAT_OVERSHOOT_SLOTS_MAX]).toBe(2);
    expect(t[TSTAT_OWN_SLOTS_AT_MAX]).toBe(3);
    expect(t[TSTAT_BOUND_SLOTS_AT_MAX]).toBe(3);
    expect(f.mem.throttleStats.overshootSlots.count).toBe(1);
  });
  it('sums per-thread blocks: counts add, maxima take the max, histograms merge', () => {
    const sab = new SharedArrayBuffer(2 * TSTAT_BYTES);
    const [a, b] = ThrottleStats.blocks(sab, 2) as [ThrottleStats, ThrottleStats];
    a.recordWait(1000);
    b.recordWait(5000);
    b.recordWait(3000);
    a.fields[TSTAT_OVERSHOOT_SLOTS_MAX] = 4;
    a.fields[TSTAT_BOUND_SLOTS_AT_MAX] = 9;
    b.fields[TSTAT_OVERSHOOT_SLOTS_MAX] = 7;
    b.fields[TSTAT_BOUND_SLOTS_AT_MAX] = 8;
    a.overshootSlots.record(4);
    b.overshootSlots.record(7);
    const s = sumThrottleStats([a, b]);
    expect(s.waits).toBe(3);
    expect(s.wait_ns_total).toBe(9000);
    expect(s.wait_ns_max).toBe(5000);
    expect(s.overshoot_slots_max).toBe(7);
    expect(s.bound_slots_at_max).toBe(8); // from the block with the largest overshoot
    expect(s.wait_ns.count).toBe(3);
    expect(s.wait_ns.max_ns).toBe(5000);
    expect(s.overshoot_slots.count).toBe(2);
    expect(a.fields[TSTAT_WAIT_NS_TOTAL]).toBe(1000);
    expect(b.fields[TSTAT_WAIT_NS_MAX]).toBe(5000);
  });
});
