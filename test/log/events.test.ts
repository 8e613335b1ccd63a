// The catalogue: names, levels and the kernel's wording (expected strings written out from
// ../shared/reference/linux-swiotlb.md §11 and §15, not read off the implementation).
import { describe, expect, it } from 'vitest';
import {
  EVENTS, EVENT_NAMES, bootText, checkRecord, formatPhysAddr, levelOf, messageOf, tunablePath, type EventName,
} from '../../src/log/events.js';

describe('event catalogue', () => {
  it('names every event the issue asks for, each with one level', () => {
    const required: EventName[] = [
      'boot_line', 'pool_created', 'map_failure', 'io_error', 'packet_dropped', 'throttle_begin', 'throttle_end',
      'stall', 'tunable_changed', 'sample', 'run_config', 'run_summary', 'worker_error', 'double_unmap', 'bounce_overflow',
    ];
    for (const e of required) expect(EVENT_NAMES).toContain(e);
    const levels = Object.fromEntries(EVENT_NAMES.map((e) => [e, EVENTS[e].level]));
    expect(levels).toEqual({
      boot_line: 'info', pool_created: 'info', map_failure: 'warn', io_error: 'warn', packet_dropped: 'warn',
      throttle_begin: 'debug', throttle_end: 'info', stall: 'error', tunable_changed: 'info', sample: 'info',
      run_start: 'info', run_config: 'info', run_summary: 'info', worker_error: 'error', double_unmap: 'error', bounce_overflow: 'warn',
      swiotlb_warn: 'warn', log_overflow: 'warn', stress_trial: 'info', stress_failure: 'error',
      atomic_pool_expanded: 'info', atomic_pool_exhausted: 'warn',
      growth_failed: 'warn', transient_created: 'debug', transient_freed: 'debug',
    });
  });

  it('logs a fatal worker error at fatal, others at error', () => {
    const error = { name: 'Error', message: 'x' };
    expect(levelOf('worker_error', { thread: 'vcpu1', fatal: true, error })).toBe('fatal');
    expect(levelOf('worker_error', { thread: 'vcpu1', fatal: false, error })).toBe('error');
    expect(messageOf('worker_error', { thread: 'vcpu1', fatal: true, error })).toBe('vcpu1 died: Error: x');
  });

  it('words a map failure as the kernel does, with the device prefix of dev_warn', () => {
    expect(messageOf('map_failure', { device: 'nvme0', vcpu: 3, size: 65536, dir: 'DMA_TO_DEVICE', total: 32768, used: 32704 }))
      .toBe('nvme0: swiotlb buffer is full (sz: 65536 bytes), total 32768 (slots), used 32704 (slots)');
  });

  it('words a map with no pool at all as the kernel does', () => {
    expect(messageOf('map_failure', { device: 'nvme0', vcpu: 0, size: 4096, dir: 'DMA_TO_DEVICE', total: 0, used: 0, cause: 'no_pool' }))
      .toBe("nvme0: Can not allocate SWIOTLB buffer earlier and can't now provide you with the DMA bounce buffer");
  });

  it('words warn-once messages with the device (dev_WARN_ONCE) or the swiotlb prefix (pr_warn_once)', () => {
    expect(messageOf('swiotlb_warn', { text: 'Alloc alignment may prevent fulfilling requests with max mapping_size', device: 'nvme0', vcpu: 1 }))
      .toBe('nvme0: Alloc alignment may prevent fulfilling requests with max mapping_size');
    expect(messageOf('swiotlb_warn', { text: 'Memory encryption is active and system is using DMA bounce buffers' }))
      .toBe('software IO TLB: Memory encryption is active and system is using DMA bounce buffers');
  });

  it('words a bounce overflow as the kernel does', () => {
    expect(messageOf('bounce_overflow', { device: 'nvme0', vcpu: 0, alloc_size: 2048, mapping_size: 4096 }))
      .toBe('nvme0: Buffer overflow detected. Allocation size: 2048. Mapping size: 4096.');
  });

  it('prints the boot lines of a 64 MiB pool at 2 GiB with 32 areas', () => {
    // %pa on a 64-bit phys_addr_t: 0x and 16 hex digits. 32768 slots of 2 KiB = 64 MiB = 0x4000000.
    expect(bootText.areaNum(32)).toBe('software IO TLB: area num 32.');
    expect(bootText.mapped(0x8000_0000, 32768)).toBe('software IO TLB: mapped [mem 0x0000000080000000-0x0000000084000000] (64MB)');
    expect(bootText.mapped(0x1_0000_0000, 524288)).toBe('software IO TLB: mapped [mem 0x0000000100000000-0x0000000140000000] (1024MB)');
    expect(bootText.memEncryption()).toBe('software IO TLB: Memory encryption is active and system is using DMA bounce buffers');
    expect(bootText.pciDma()).toBe('PCI-DMA: Using software bounce buffering for IO (SWIOTLB)');
    expect(bootText.adjustedSlabs(1024, 2048)).toBe('software IO TLB: SWIOTLB bounce buffer size adjusted 1024 -> 2048 slabs');
    expect(messageOf('boot_line', { text: 'software IO TLB: area num 32.' })).toBe('software IO TLB: area num 32.');
  });

  it('names tunables by the proposed sysctl path', () => {
    expect(tunablePath('high_throttle')).toBe('/proc/sys/kernel/dma/swiotlb_default/high_throttle');
    expect(messageOf('tunable_changed', { name: tunablePath('high_throttle'), old: 22937, new: 24000 }))
      .toBe('/proc/sys/kernel/dma/swiotlb_default/high_throttle: 22937 -> 24000');
  });

  it('words an I/O error as blk_print_req_error does (sector = offset / 512)', () => {
    expect(messageOf('io_error', { device: 'nvme0n1', vcpu: 1, op: 'write', offset: 1048576, size: 4096, reason: 'swiotlb buffer is full' }))
      .toBe('I/O error, dev nvme0n1, sector 2048 op 0x1:(WRITE) flags 0x0 phys_seg 1 prio class 0');
  });

  it('words the stress harness\'s records with the seed and the replay command', () => {
    expect(messageOf('stress_trial', { trial: 3, seed: 77, mode: 'pct', vcpus: 4, nslabs: 512, nareas: 2, ops: 1000, perturbations: 9, duration_ms: 120, ok: true, failures: 0 }))
      .toBe('stress trial 3 (seed 77, pct, 4 vCPUs): ok, 1000 operations in 120 ms');
    expect(messageOf('stress_trial', { trial: 0, seed: 5, mode: 'chaos', mutant: 'merge-short', vcpus: 2, nslabs: 256, nareas: 1, ops: 1, perturbations: 0, duration_ms: 9, ok: false, failures: 2 }))
      .toBe('stress trial 0 (seed 5, chaos, mutant merge-short, 2 vCPUs): 2 broken checks, 1 operation in 9 ms');
    expect(messageOf('stress_failure', { trial: 0, seed: 5, mode: 'chaos', check: 'x', failures: ['x'], config: {}, replay: 'npm run stress -- --replay 5 --mode chaos' }))
      .toBe('stress trial 0 failed (seed 5, chaos): x; replay: npm run stress -- --replay 5 --mode chaos');
    expect(levelOf('stress_failure', { trial: 0, seed: 5, mode: 'chaos', check: 'x', failures: ['x'], config: {}, replay: '' })).toBe('error');
  });

  it('formats addresses like %pa', () => {
    expect(formatPhysAddr(0)).toBe('0x0000000000000000');
    expect(formatPhysAddr(0xfee0_0000)).toBe('0x00000000fee00000');
  });

  it('checks records read back against the catalogue', () => {
    expect(checkRecord({ event: 'map_failure', device: 'nvme0', vcpu: 1, size: 4096, dir: 'DMA_TO_DEVICE', total: 1, used: 1 })).toBeUndefined();
    expect(checkRecord({ event: 'map_failure', device: 'nvme0', vcpu: '1', size: 4096, dir: 'DMA_TO_DEVICE', total: 1, used: 1 }))
      .toBe('map_failure: field "vcpu" is string, expected number');
    expect(checkRecord({ event: 'nope' })).toBe('unknown event "nope"');
    expect(checkRecord({ msg: 'x' })).toBe('no "event" field');
    expect(checkRecord({ event: 'sample', t_ms: 1, io_tlb_used: 1, io_tlb_used_hiwater: 1, nslabs: 1, area_used: 3, throttle_queue_len: 0, iops: 0, high_throttle: 0, low_throttle: 0 }))
      .toBe('sample: field "area_used" is number, expected array');
  });
});
