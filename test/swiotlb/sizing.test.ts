import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import {
  cocoSwiotlbBytes, limitNareas, nslabsFromBytes, parseSwiotlbCmdline, planDefaultPool,
} from '../../src/swiotlb/sizing.js';
import { bootText } from '../../src/log/events.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

describe('swiotlb= boot parameter (setup_io_tlb_npages)', () => {
  it('reads slots, areas and force/noforce', () => {
    expect(parseSwiotlbCmdline('swiotlb=32768,16,force')).toEqual({ nslabs: 32768, nareas: 16, force: true, noforce: false });
    expect(parseSwiotlbCmdline('console=ttyS0 swiotlb=1000 quiet')).toEqual({ nslabs: 1000, force: false, noforce: false });
    expect(parseSwiotlbCmdline('swiotlb=,4')).toEqual({ nareas: 4, force: false, noforce: false });
    expect(parseSwiotlbCmdline('swiotlb=noforce')).toEqual({ force: false, noforce: true });
    expect(parseSwiotlbCmdline('swiotlb=2048,force')).toEqual({ nslabs: 2048, force: true, noforce: false });
    expect(parseSwiotlbCmdline('root=/dev/sda')).toEqual({ force: false, noforce: false });
  });
  it.each([
    ['swiotlb=0', /at least 1/],
    ['swiotlb=-5', /not valid/],
    ['swiotlb=abc', /not valid/],
    ['swiotlb=1024,0', /area count must be at least 1/],
    ['swiotlb=1048576', /above the 1 GiB limit/],
    ['swiotlb=1024,8192', /more than the largest pool can hold/],
    ['swiotlb=1024,4,sometimes', /not valid/],
  ])('rejects %s with a one-line InputError', (cmdline, re) => {
    let err: unknown;
    try { parseSwiotlbCmdline(cmdline); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).exitStatus).toBe(2);
    expect((err as Error).message).toMatch(re);
    expect((err as Error).message).toContain('expected');
    expect((err as Error).message).not.toContain('\n');
  });
});

describe('CoCo default (mem_encrypt_setup_arch + swiotlb_adjust_size + pool init)', () => {
  // Worked out from reference §2.3: next power of two >= 6% of RAM, clamped to 64 MiB..1 GiB.
  it.each([
    [512 * MiB, 32768],
    [1 * GiB, 32768],
    [2 * GiB, 65536],
    [4 * GiB, 131072],
    [8 * GiB, 262144],
    [16 * GiB, 524288],
    [64 * GiB, 524288],
  ])('%d bytes of RAM give %d slots', (mem, nslabs) => {
    const plan = planDefaultPool({ cpus: 4, memBytes: mem, coco: true });
    expect(plan.nslabs).toBe(nslabs);
    expect(plan.forceBounce).toBe(true);
  });
  it('logs "adjusted to 122MB" then "roundup to 128MB" for 2 GiB, as the kernel does', () => {
    const plan = planDefaultPool({ cpus: 4, memBytes: 2 * GiB, coco: true });
    expect(plan.messages).toEqual([
      'software IO TLB: SWIOTLB bounce buffer size adjusted to 122MB',
      'software IO TLB: area num 4.',
      'software IO TLB: SWIOTLB bounce buffer size roundup to 128MB',
    ]);
  });
  it('6% clamp', () => {
    expect(cocoSwiotlbBytes(100 * MiB)).toBe(64 * MiB);
    expect(cocoSwiotlbBytes(100 * GiB)).toBe(GiB);
  });
  it('a swiotlb= slot count disables the heuristic', () => {
    const plan = planDefaultPool({ cpus: 2, memBytes: 16 * GiB, coco: true, bootParam: parseSwiotlbCmdline('swiotlb=4096') });
    expect(plan.nslabs).toBe(4096);
    expect(plan.nareas).toBe(2);
  });
});

describe('areas (swiotlb_adjust_nareas, round_up_default_nslabs, limit_nareas)', () => {
  it('one area per CPU, rounded up to a power of two', () => {
    expect(planDefaultPool({ cpus: 3, memBytes: GiB, coco: true }).nareas).toBe(4);
    expect(planDefaultPool({ cpus: 32, memBytes: GiB, coco: true }).nareas).toBe(32);
    expect(planDefaultPool({ cpus: 33, memBytes: GiB, coco: true }).nareas).toBe(64);
  });
  it('raises the pool to 128 slots per area', () => {
    // swiotlb=256,16: 256 < 128*16, so nslabs becomes 2048, a power of two.
    const plan = planDefaultPool({ cpus: 1, memBytes: GiB, coco: false, bootParam: parseSwiotlbCmdline('swiotlb=256,16') });
    expect(plan.nslabs).toBe(2048);
    expect(plan.nareas).toBe(16);
    expect(plan.messages).toContain('software IO TLB: SWIOTLB bounce buffer size roundup to 4MB');
  });
  it('rounds a non-power-of-two slot count up once areas are known', () => {
    // 1000 -> ALIGN 128 = 1024 (power of two, unchanged); 3000 -> 3072 -> 4096
    expect(planDefaultPool({ cpus: 2, memBytes: GiB, coco: false, bootParam: parseSwiotlbCmdline('swiotlb=1000') }).nslabs).toBe(1024);
    expect(planDefaultPool({ cpus: 2, memBytes: GiB, coco: false, bootParam: parseSwiotlbCmdline('swiotlb=3000') }).nslabs).toBe(4096);
  });
  it('limit_nareas', () => {
    expect(limitNareas(16, 1024)).toBe(8);
    expect(limitNareas(4, 1024)).toBe(4);
  });
  it('noforce disables the pool', () => {
    expect(planDefaultPool({ cpus: 2, memBytes: GiB, coco: true, bootParam: parseSwiotlbCmdline('swiotlb=noforce') }).disabled).toBe(true);
  });
});

describe('sizes and messages', () => {
  it('converts byte sizes to slots and rejects bad ones', () => {
    expect(nslabsFromBytes(64 * MiB)).toBe(32768);
    expect(nslabsFromBytes(3000)).toBe(2);
    expect(() => nslabsFromBytes(0)).toThrow(InputError);
    expect(() => nslabsFromBytes(2 * GiB)).toThrow(/1 GiB/);
  });
  it('prints the mapped line with the exclusive end', () => {
    expect(bootText.mapped(0xbbed6000, 32768)).toBe('software IO TLB: mapped [mem 0x00000000bbed6000-0x00000000bfed6000] (64MB)');
  });
});
