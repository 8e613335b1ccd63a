// /proc/buddyinfo as the kernel prints it, read back; the starting states it and the named
// fragmentation levels give a guest.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { applyStartingState, foldSnapshot, levelCounts, parseBuddyinfo, readBuddyinfoFile } from '../../src/memory/buddyinfo.js';
import { GuestPhysMem, ZONE_DMA32, ZONE_NORMAL, formatBuddyinfo } from '../../src/memory/phys.js';

// A copy of a real x86-64 guest's /proc/buddyinfo (format: "Node %d, zone %8s " then "%6lu " per order).
const SNAPSHOT = [
  'Node 0, zone      DMA      1      1      1      0      2      1      1      0      1      1      3 ',
  'Node 0, zone    DMA32   3265   2456   1765   1017    611    300    120     41      0      0      0 ',
  'Node 0, zone   Normal  15130  10266   6160   3175   1478    605    205     73     27     14     36 ',
  '',
].join('\n');
const MiB = 1024 * 1024;

describe('parseBuddyinfo', () => {
  it('reads the kernel\'s lines as printed and formats them back identically', () => {
    const lines = parseBuddyinfo(SNAPSHOT, 'snapshot');
    expect(lines.map((l) => l.zone)).toEqual(['DMA', 'DMA32', 'Normal']);
    expect(lines[1]!.free).toEqual([3265, 2456, 1765, 1017, 611, 300, 120, 41, 0, 0, 0]);
    const text = formatBuddyinfo(lines.map((l) => ({ zone: l.zone as 'DMA32', free: l.free })));
    expect(text).toBe(SNAPSHOT);
  });
  it('folds DMA into DMA32 and adds up nodes', () => {
    const two = `${SNAPSHOT}Node 1, zone   Normal      1      0      0      0      0      0      0      0      0      0      1 \n`;
    const z = foldSnapshot(parseBuddyinfo(two, 'x'));
    expect(z[ZONE_DMA32]).toEqual([3266, 2457, 1766, 1017, 613, 301, 121, 41, 1, 1, 3]);
    expect(z[ZONE_NORMAL]![0]).toBe(15131);
    expect(z[ZONE_NORMAL]![10]).toBe(37);
  });
  it('refuses what the kernel does not print, in one line naming the line', () => {
    expect(() => parseBuddyinfo('Node 0, zone DMA32 1 2 3', 'f')).toThrow(/f line 1: 3 counts; expected 11 \(orders 0..10/);
    expect(() => parseBuddyinfo('zone DMA32 1 2 3 4 5 6 7 8 9 10 11', 'f')).toThrow(/f line 1: .* is not a buddyinfo line; expected "Node <n>, zone <name> <11 counts>"/);
    expect(() => parseBuddyinfo('Node 0, zone HighMem 1 2 3 4 5 6 7 8 9 10 11', 'f')).toThrow(/zone "HighMem" is not one this guest models/);
    expect(() => parseBuddyinfo('Node 0, zone DMA32 1 2 3 4 5 6 7 8 9 10 x', 'f')).toThrow(/count "x" is not a whole number/);
    expect(() => parseBuddyinfo('Node 0, zone DMA32 1 2 3 4 5 6 7 8 9 10 11\nNode 0, zone DMA32 1 2 3 4 5 6 7 8 9 10 11', 'f')).toThrow(/f line 2: node 0 zone DMA32 is listed twice/);
    expect(() => parseBuddyinfo('\n\n', 'f')).toThrow(/no buddyinfo lines/);
    const dir = mkdtempSync(join(tmpdir(), 'buddyinfo-'));
    expect(() => readBuddyinfoFile(join(dir, 'missing'), '--buddyinfo')).toThrow(InputError);
    writeFileSync(join(dir, 'ok'), SNAPSHOT);
    expect(readBuddyinfoFile(join(dir, 'ok'), '--buddyinfo')).toHaveLength(3);
  });
});

describe('applyStartingState', () => {
  it('a snapshot that fits is the guest\'s free state exactly', () => {
    const phys = GuestPhysMem.create({ memBytes: 4096 * MiB }); // DMA32 2 GiB, Normal 2 GiB
    const notes = applyStartingState(phys, { kind: 'buddyinfo', lines: parseBuddyinfo(SNAPSHOT, 's'), source: 's' });
    expect(notes).toEqual([]);
    expect(phys.freeBlocks()).toEqual([
      { zone: 'DMA32', free: [3266, 2457, 1766, 1017, 613, 301, 121, 41, 1, 1, 3] },
      { zone: 'Normal', free: [15130, 10266, 6160, 3175, 1478, 605, 205, 73, 27, 14, 36] },
    ]);
    expect(phys.checkInvariants()).toEqual([]);
  });
  it('scales a snapshot too large for the guest, says so, and ignores a zone the guest lacks', () => {
    const phys = GuestPhysMem.create({ memBytes: 256 * MiB }); // 63 free 4 MiB blocks, no Normal zone
    const big = 'Node 0, zone    DMA32      0      0      0      0      0      0      0      0      0      0    100 \nNode 0, zone   Normal 1 1 1 1 1 1 1 1 1 1 1\n';
    const notes = applyStartingState(phys, { kind: 'buddyinfo', lines: parseBuddyinfo(big, 's'), source: 's' });
    expect(notes).toHaveLength(2);
    expect(notes[0]).toMatch(/zone Normal ignored/);
    // 63 of 100 blocks fit: the largest factor k/1024 with floor(100 k / 1024) <= 63 is 655/1024 (0.6396).
    expect(notes[1]).toMatch(/zone DMA32: the wanted free blocks \(400 MiB\) do not fit the guest's 252 MiB free in 4 MiB blocks; every count scaled by 0\.640 \(252 MiB free\)/);
    expect(phys.freeBlocks()[0]!.free[10]).toBe(63);
  });
  it('named levels: equal bytes per order up to the largest, of a share of the zone', () => {
    // severe: 10% free, orders 0..7. 65280 free pages -> 6528 -> 816 pages per order.
    expect(levelCounts('severe', 65280)).toEqual([816, 408, 204, 102, 51, 25, 12, 6, 0, 0, 0]);
    expect(levelCounts('none', 65280)).toBeNull();
    const phys = GuestPhysMem.create({ memBytes: 256 * MiB });
    expect(applyStartingState(phys, { kind: 'level', level: 'severe' })).toEqual([]);
    expect(phys.freeBlocks()[0]!.free).toEqual([816, 408, 204, 102, 51, 25, 12, 6, 0, 0, 0]);
    // No block of 1 MiB (order 8) or more is left: a 1 MiB dynamic pool cannot be allocated.
    expect(phys.allocPages(8, 2 ** 32)).toBe(-1);
    expect(phys.checkInvariants()).toEqual([]);
  });
});
