// [proposal] The CMA area of the cma policy (Alexander Graf, seed thread 002): reserved at boot out of
// the buddy allocator's reach, lent to movable allocations while the buddy allocator has fewer free
// pages (ALLOC_CMA's balance), and taken back for a pool by migrating the borrowed pages out.
import { describe, expect, it } from 'vitest';
import { CmaArea } from '../../src/memory/cma.js';
import { GuestPhysMem, NR_PAGE_ORDERS, PAGE_SIZE, ZONE_DMA32 } from '../../src/memory/phys.js';

const MiB = 1024 ** 2;
const G4 = 2 ** 32;

/** A 1 GiB guest with an 8 MiB CMA area and only `freePages` order-0 pages free in the buddy allocator. */
function setup(freePages: number) {
  const phys = GuestPhysMem.create({ memBytes: 1024 * MiB });
  const cma = CmaArea.reserve(phys, 8 * MiB, G4);
  const counts = Array.from({ length: NR_PAGE_ORDERS }, (_, k) => (k === 0 ? freePages : 0));
  expect(phys.setFreeBlocks(ZONE_DMA32, counts)).toBe(true);
  expect(phys.freePagesCount(ZONE_DMA32)).toBe(freePages);
  return { phys, cma };
}

describe('[proposal] the cma policy\'s CMA area', () => {
  it('is reserved 4 MiB-aligned below 4 GiB, outside the buddy allocator', () => {
    const { cma } = setup(600);
    expect(cma.base % (4 * MiB)).toBe(0);
    expect(cma.base + 8 * MiB).toBeLessThanOrEqual(G4);
    expect(cma.stats()).toMatchObject({ bytes: 8 * MiB, pool_bytes: 0, lent_pages: 0 });
  });

  it('lends pages to movable allocations only while it has more free pages than the buddy allocator', () => {
    const { cma } = setup(600);
    expect(cma.allocMovable(600)).toBe(cma.base); // 2048 free here > 600
    expect(cma.allocMovable(600)).toBe(cma.base + PAGE_SIZE);
    expect(cma.allocMovable(5000)).toBe(-1); // the buddy allocator has more: it serves
    expect(cma.stats()).toMatchObject({ lent_pages: 2, lent_total: 2 });
    cma.freeMovable(cma.base);
    expect(cma.stats().lent_pages).toBe(1);
  });

  it('gives a pool the run with fewest borrowed pages, then migrates the borrowed ones out of the next', () => {
    const { phys, cma } = setup(600);
    for (let i = 0; i < 10; i++) expect(cma.allocMovable(600)).toBe(cma.base + i * PAGE_SIZE); // pages 0..9 of run 0
    // Two 4 MiB runs: run 1 has no borrowed page, so it goes first, with nothing to migrate.
    expect(cma.allocPages(10, G4)).toBe(cma.base + 4 * MiB);
    expect(cma.stats()).toMatchObject({ migrated_pages: 0, pool_bytes: 4 * MiB });
    // Run 0: its 10 borrowed pages each get a buddy page (600 -> 590 free) and the run is the pool's.
    expect(cma.allocPages(10, G4)).toBe(cma.base);
    expect(cma.stats()).toMatchObject({ migrated_pages: 10, lent_pages: 0, pool_bytes: 8 * MiB, allocs: 2 });
    expect(phys.freePagesCount(ZONE_DMA32)).toBe(590);
    // The borrower frees what it holds by its old address: the page it was migrated to goes back.
    cma.freeMovable(cma.base + 3 * PAGE_SIZE);
    expect(phys.freePagesCount(ZONE_DMA32)).toBe(591);
    // Full: the next pool finds no run.
    expect(cma.allocPages(10, G4)).toBe(-1);
    expect(cma.stats().alloc_failures).toBe(1);
  });

  it('a run whose borrowed pages find no new home is given up (EBUSY), and a free run is used instead', () => {
    const { cma } = setup(600);
    expect(cma.allocMovable(0)).toBe(cma.base);
    const phys = (cma as unknown as { phys: GuestPhysMem }).phys;
    // Take every free buddy page: migration has nowhere to go.
    while (phys.allocPages(0, Number.MAX_SAFE_INTEGER) >= 0);
    expect(cma.allocPages(10, G4)).toBe(cma.base + 4 * MiB); // the free run, no migration needed
    expect(cma.allocPages(10, G4)).toBe(-1); // run 0 holds a page that cannot move
    expect(cma.stats()).toMatchObject({ migrate_failures: 1, alloc_failures: 1, lent_pages: 1 });
  });
});
