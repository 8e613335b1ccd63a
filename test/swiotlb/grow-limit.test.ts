// [proposal] --grow-limit (Michael Kelley, seed thread 000: dynamic swiotlb "doesn't have a limit to
// how much it will allocate"): the default and dynamic pools together may not pass the limit; a size
// that would is halved as swiotlb_alloc_pool halves one no free block serves, and below
// IO_TLB_MIN_SLABS (1 MiB) the growth is refused: counted, and not reported as the kernel's failure.
import { describe, expect, it } from 'vitest';
import { DmaDevice } from '../../src/dma/device.js';
import { DecryptedArena } from '../../src/memory/arena.js';
import { GuestMemory } from '../../src/memory/guest.js';
import { GuestPhysMem } from '../../src/memory/phys.js';
import { DMA_ATTR_MAY_BLOCK, DMA_MAPPING_ERROR, DMA_TO_DEVICE, IO_TLB_SIZE, POOL_START } from '../../src/swiotlb/constants.js';
import { IoTlbMem, type SwiotlbEvent } from '../../src/swiotlb/mem.js';
import { InputError } from '../../src/errors.js';
import { parseVmOptions } from '../../src/vm/options.js';
import { bootSwiotlb } from '../../src/vm/vm.js';

const MiB = 1024 ** 2;
const GUEST = 0x1_0000_0000;

function setup(nslabs: number, limitBytes: number | undefined, hybrid = false) {
  const phys = GuestPhysMem.create({ memBytes: 1024 * MiB });
  const arena = DecryptedArena.create(64 * MiB);
  const events: SwiotlbEvent[] = [];
  const mem = IoTlbMem.create({
    nslabs, nareas: 1, start: POOL_START, forceBounce: true, canGrow: true, throttle: { enabled: hybrid },
    dynamic: {
      headroomBytes: arena.capacityBytes, defaultNslabs: nslabs, maxTransient: 16, arena: arena.shared.data,
      ...(limitBytes !== undefined ? { growLimitSlabs: limitBytes / IO_TLB_SIZE } : {}),
    },
    ...(hybrid ? { hybrid: { timeoutMs: 0, highPercent: 70, lowPercent: 65, decryptLatencyNsPerMiB: 0, nslabs } } : {}),
  }, { memory: { phys, arena, setMemoryDecrypted: () => {} }, events: (e) => events.push(e), guest: new GuestMemory(new SharedArrayBuffer(4 * MiB), GUEST) });
  return { mem, events };
}

describe('[proposal] --grow-limit', () => {
  it('a 1 MiB default pool under a 3 MiB limit grows twice by 1 MiB, then the growth is refused: exactly 3 MiB', () => {
    const { mem } = setup(512, 3 * MiB);
    const dyn = mem.dyn!;
    expect(dyn.dynAlloc()).toMatchObject({ ok: true, nslabs: 512 });
    expect(dyn.dynAlloc()).toMatchObject({ ok: true, nslabs: 512 });
    const r = dyn.dynAlloc();
    expect(r).toEqual({
      ok: false, reason: '[proposal] --grow-limit 3MiB: a 1MiB pool would take the default and dynamic pools to 4MiB',
      limited: { limit_bytes: 3 * MiB, committed_bytes: 3 * MiB },
    });
    expect(mem.nslabs * IO_TLB_SIZE).toBe(3 * MiB);
    const s = dyn.stats();
    expect(s.grow_limit).toEqual({ limit_bytes: 3 * MiB, committed_bytes: 3 * MiB, refused: 1 });
    // Not the kernel's "Failed to allocate new pool", and no page allocation was tried for it.
    expect([s.grow_runs, s.grow_failed, s.pools_added]).toEqual([3, 0, 2]);
    expect(s.attempts.find((a) => a.bytes === MiB)).toEqual({ bytes: MiB, attempts: 2, ok: 2, failed: 0 });
  });

  it('halves a 4 MiB growth to the 2 MiB that fits: a 4 MiB pool under a 10 MiB limit ends at exactly 10 MiB', () => {
    const { mem } = setup(2048, 10 * MiB);
    const dyn = mem.dyn!;
    expect(dyn.dynAlloc()).toMatchObject({ ok: true, nslabs: 2048 }); // 8 MiB
    expect(dyn.dynAlloc()).toMatchObject({ ok: true, nslabs: 1024 }); // 4 MiB would be 12: halved to 2 MiB
    expect(mem.nslabs * IO_TLB_SIZE).toBe(10 * MiB);
    const r = dyn.dynAlloc(); // 4, 2 and 1 MiB all pass it
    expect(r.ok).toBe(false);
    expect(!r.ok && r.limited).toEqual({ limit_bytes: 10 * MiB, committed_bytes: 10 * MiB });
    expect(mem.nslabs * IO_TLB_SIZE).toBe(10 * MiB);
  });

  it('without a limit, growth goes on (mainline) and the report says there is none', () => {
    const { mem } = setup(512, undefined);
    for (let i = 0; i < 4; i++) expect(mem.dyn!.dynAlloc().ok).toBe(true);
    expect(mem.dyn!.stats().grow_limit).toEqual({ limit_bytes: null, committed_bytes: 5 * MiB, refused: 0 });
  });

  it('bounds hybrid\'s synchronous growth too: refused with the emulator\'s [proposal] warning, and the map is served by the search', () => {
    const { mem, events } = setup(512, MiB, true); // the limit is the default pool: no growth at all
    const dev = new DmaDevice('nvme0');
    const map = (bytes: number, attrs: number) => mem.tblMapSingle(dev, GUEST, bytes, 0, DMA_TO_DEVICE, attrs);
    for (let i = 0; i < 3; i++) expect(map(256 * 1024, 0)).not.toBe(DMA_MAPPING_ERROR);
    expect(map(64 * 1024, DMA_ATTR_MAY_BLOCK)).not.toBe(DMA_MAPPING_ERROR); // holds throttle_sem
    expect(map(64 * 1024, DMA_ATTR_MAY_BLOCK)).not.toBe(DMA_MAPPING_ERROR); // times out at once, may not grow
    expect(mem.hybrid!.stats()).toMatchObject({ timeouts: 1, sync_grows: 0, sync_grow_failed: 1 });
    expect(mem.nslabs).toBe(512);
    expect(events.filter((e) => e.event === 'growth_failed')).toEqual([]);
    expect(events.filter((e) => e.event === 'swiotlb_warn').map((e) => e.msg))
      .toEqual(['[proposal] --grow-limit 1MiB: a 1MiB pool would take the default and dynamic pools to 2MiB']);
  });

  it('is refused for static and throttle, and below the default pool it counts', () => {
    const err = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(InputError);
        return (e as Error).message;
      }
      throw new Error('no error');
    };
    expect(err(() => parseVmOptions(['--grow-limit', '64M']))).toBe('--grow-limit applies to --policy dynamic or hybrid, not static; drop it or choose one of them');
    expect(err(() => parseVmOptions(['--policy', 'throttle', '--grow-limit', '64M']))).toMatch(/^--grow-limit applies to --policy dynamic or hybrid, not throttle/);
    expect(err(() => parseVmOptions(['--policy', 'dynamic', '--grow-limit', '3K']))).toMatch(/^--grow-limit: "3K" is not valid; expected a size in whole 2 KiB slots/);
    const o = parseVmOptions(['--policy', 'dynamic', '--grow-limit', '4M', '--swiotlb', '8M', '--vcpus', '2', '--mem', '1G']);
    expect(o.growLimitBytes).toBe(4 * MiB);
    expect(err(() => bootSwiotlb(o))).toBe("--grow-limit: 4MiB is below the default pool's 8MiB, which it counts; expected at least 8MiB");
    const ok = bootSwiotlb(parseVmOptions(['--policy', 'hybrid', '--grow-limit', '16M', '--swiotlb', '8M', '--vcpus', '2', '--mem', '1G']));
    expect(ok.mem.dyn!.stats().grow_limit.limit_bytes).toBe(16 * MiB);
  });
});
