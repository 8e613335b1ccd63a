// The guest memory flags: --buddyinfo, --fragmentation, --decrypt-latency, --decrypted-arena and
// coherent_pool= on --cmdline, validated once, and the boot they give (bootSwiotlb -> bootGuestMemory).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseVmOptions } from '../../src/vm/options.js';
import { bootSwiotlb } from '../../src/vm/vm.js';

describe('guest memory options', () => {
  it('defaults: no snapshot, fragmentation none, decrypt latency 0, arena = --mem', () => {
    const opts = parseVmOptions(['--vcpus', '2', '--mem', '1G']);
    expect(opts).toMatchObject({ buddyinfo: undefined, fragmentation: 'none', decryptLatencyNsPerMiB: 0, decryptedArenaBytes: undefined, churn: undefined });
    expect(parseVmOptions(['--mem', '1G', '--churn', '20000']).churn).toEqual({ ratePagesPerSec: 20000, holdBytes: 256 * 1024 * 1024 });
    expect(parseVmOptions(['--churn', '20000,64M']).churn).toEqual({ ratePagesPerSec: 20000, holdBytes: 64 * 1024 * 1024 });
    const boot = bootSwiotlb(opts);
    // 1 GiB, all below the q35 hole: the 64 MiB pool is memblock_alloc_low'd at the top, [960M, 1G).
    expect(boot.poolStart).toBe(960 * 1024 * 1024);
    expect(boot.guest.arena.capacityBytes).toBe(1024 ** 3);
    // totalram = 262144 - 256 - 16384 pages -> 30 pages -> the 128 KiB minimum; no ZONE_NORMAL, so no kernel pool.
    expect(boot.bootLines).toContain('DMA: preallocated 128 KiB GFP_KERNEL|GFP_DMA32 pool for atomic allocations');
    expect(boot.bootLines.some((l) => l.includes('GFP_KERNEL pool'))).toBe(false);
  });
  it('reads the flags, and coherent_pool= from the command line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'coco-bi-'));
    const file = join(dir, 'buddyinfo');
    writeFileSync(file, 'Node 0, zone    DMA32      0      0      0      0      0      0      0      0      2      0      0 \n');
    const opts = parseVmOptions(['--vcpus', '2', '--mem', '1G', '--buddyinfo', file, '--decrypt-latency', '200us', '--decrypted-arena', '64M', '--cmdline', 'coherent_pool=256K']);
    expect(opts.decryptLatencyNsPerMiB).toBe(200_000);
    expect(opts.decryptedArenaBytes).toBe(64 * 1024 * 1024);
    const boot = bootSwiotlb(opts);
    expect(boot.bootLines).toContain('DMA: preallocated 256 KiB GFP_KERNEL|GFP_DMA32 pool for atomic allocations');
    expect(boot.guest.startFree).toEqual([{ zone: 'DMA32', free: [0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0] }]);
  });
  it('refuses bad values in one line naming the flag and the accepted form', () => {
    expect(() => parseVmOptions(['--fragmentation', 'extreme'])).toThrow(/--fragmentation: "extreme" is not valid; expected one of none, light, moderate, severe/);
    expect(() => parseVmOptions(['--buddyinfo', '/nonexistent/buddyinfo'])).toThrow(/--buddyinfo: cannot read "\/nonexistent\/buddyinfo" \(ENOENT\)/);
    expect(() => parseVmOptions(['--decrypted-arena', '5G'])).toThrow(/--decrypted-arena: "5G" is not valid; expected a whole number of 4 KiB pages from 4k to 4G/);
    expect(() => parseVmOptions(['--decrypt-latency', 'fast'])).toThrow(/--decrypt-latency: "fast" is not a duration/);
    expect(() => parseVmOptions(['--churn', 'fast'])).toThrow(/--churn: "fast" is not valid; expected off or RATE\[,HOLD\]/);
    expect(() => parseVmOptions(['--mem', '1G', '--churn', '100,2G'])).toThrow(/the cache must hold from 4k to --mem/);
    expect(() => bootSwiotlb(parseVmOptions(['--vcpus', '1', '--cmdline', 'coherent_pool=lots']))).toThrow(/coherent_pool=<size>/);
  });
});
