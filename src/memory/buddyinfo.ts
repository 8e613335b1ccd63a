// The starting state of guest memory: a real /proc/buddyinfo snapshot (--buddyinfo FILE) or a named
// fragmentation level (--fragmentation), applied at boot after memblock and the atomic pools, so the
// guest starts as one that has run a while (seed 002: growth needs contiguous memory).
//
// A snapshot is read as mm/vmstat.c's frag_show prints it: one line per populated zone,
// "Node %d, zone %8s " and then free_area[order].nr_free as "%6lu " for orders 0..10 (x86's
// NR_PAGE_ORDERS). Zones fold into the guest's two (phys.ts): DMA and DMA32 into DMA32 (both below
// 4 GiB), Normal and Movable into Normal; lines of several nodes add up.
//
// Applying it (GuestPhysMem.setFreeBlocks): every free page of the zone is taken ("the rest of the
// guest": kernel, page cache, processes), then exactly the snapshot's free blocks are given back.
// When the guest's zone cannot hold them (a snapshot of a larger machine), every count of that zone
// is scaled by the same factor, the largest that fits, and a note says so; a zone the snapshot does
// not list keeps its boot state (also noted); a snapshot zone the guest lacks is ignored (noted).
import { readFileSync } from 'node:fs';
import { InputError } from '../errors.js';
import { quote } from '../util/quote.js';
import {
  GuestPhysMem, MAX_PAGE_ORDER, NR_PAGE_ORDERS, NR_ZONES, ZONE_DMA32, ZONE_NAMES, ZONE_NORMAL, type ZoneFree, placementRegions,
} from './phys.js';

export interface BuddyinfoLine {
  node: number;
  zone: string;
  free: number[];
}

const LINE_FORM = '"Node <n>, zone <name> <11 counts>" as /proc/buddyinfo prints it, e.g. "Node 0, zone    DMA32    12     8     5     3     2     1     1     0     1     0     0"';
/** Kernel zone names and the guest zone each folds into. */
const ZONE_FOLD: Readonly<Record<string, number>> = { DMA: ZONE_DMA32, DMA32: ZONE_DMA32, Normal: ZONE_NORMAL, Movable: ZONE_NORMAL };

/** Parse /proc/buddyinfo text; `what` names the source in errors (one line each). */
export function parseBuddyinfo(text: string, what: string): BuddyinfoLine[] {
  const out: BuddyinfoLine[] = [];
  const seen = new Set<string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    if (raw.trim() === '') return;
    const where = `${what} line ${i + 1}`;
    const m = /^Node\s+(\d+),\s+zone\s+(\S+)((?:\s+\S+)*)\s*$/.exec(raw);
    if (!m) throw new InputError('EBADBUDDYINFO', `${where}: ${quote(raw)} is not a buddyinfo line; expected ${LINE_FORM}`);
    const zone = m[2]!;
    if (ZONE_FOLD[zone] === undefined) {
      throw new InputError('EBADBUDDYINFO', `${where}: zone ${quote(zone)} is not one this guest models; expected DMA, DMA32, Normal or Movable`);
    }
    const words = m[3]!.trim().split(/\s+/).filter((w) => w !== '');
    if (words.length !== NR_PAGE_ORDERS) {
      throw new InputError('EBADBUDDYINFO', `${where}: ${words.length} counts; expected ${NR_PAGE_ORDERS} (orders 0..${MAX_PAGE_ORDER}, x86's 4 KiB pages)`);
    }
    const free = words.map((w) => {
      if (!/^\d+$/.test(w) || !Number.isSafeInteger(Number(w)) || Number(w) > 2 ** 31 - 1) {
        throw new InputError('EBADBUDDYINFO', `${where}: count ${quote(w)} is not a whole number of free blocks`);
      }
      return Number(w);
    });
    const key = `${m[1]}/${zone}`;
    if (seen.has(key)) throw new InputError('EBADBUDDYINFO', `${where}: node ${m[1]} zone ${zone} is listed twice`);
    seen.add(key);
    out.push({ node: Number(m[1]), zone, free });
  });
  if (out.length === 0) throw new InputError('EBADBUDDYINFO', `${what}: no buddyinfo lines; expected ${LINE_FORM}`);
  return out;
}

/** Read and parse a snapshot file (the flag's value names it in errors). */
export function readBuddyinfoFile(path: string, what: string): BuddyinfoLine[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new InputError('EBADBUDDYINFO', `${what}: cannot read ${quote(path)} (${(e as NodeJS.ErrnoException).code ?? 'error'}); expected a file holding a copy of /proc/buddyinfo`);
  }
  return parseBuddyinfo(text, `${what} ${quote(path)}`);
}

/** The snapshot's free counts per guest zone (index ZONE_*), undefined for a zone it does not list. */
export function foldSnapshot(lines: readonly BuddyinfoLine[]): (number[] | undefined)[] {
  const out: (number[] | undefined)[] = Array.from({ length: NR_ZONES }, () => undefined);
  for (const l of lines) {
    const z = ZONE_FOLD[l.zone]!;
    const acc = out[z] ?? Array.from({ length: NR_PAGE_ORDERS }, () => 0);
    l.free.forEach((c, k) => { acc[k]! += c; });
    out[z] = acc;
  }
  return out;
}

/**
 * Named fragmentation levels: what stays free of each zone (its free pages after boot), and how the
 * free memory spreads over the orders: equal bytes in each order from 0 up to the largest, so
 * counts[k] = floor(freeShare / 2^k). The rest of the zone is taken.
 */
export const FRAGMENTATION_LEVELS = {
  /** As booted: the zone's free memory in the largest blocks. */
  none: null,
  /** Half the zone free, blocks of every order up to 4 MiB. */
  light: { freePercent: 50, maxOrder: 10 },
  /** A quarter free, no block above order 9 (2 MiB): dynamic swiotlb gets 2 MiB pools at most. */
  moderate: { freePercent: 25, maxOrder: 9 },
  /** A tenth free, no block above order 7 (512 KiB): no 1 MiB block, so dynamic growth fails (seed 002). */
  severe: { freePercent: 10, maxOrder: 7 },
} as const;
export type FragmentationLevel = keyof typeof FRAGMENTATION_LEVELS;
export const FRAGMENTATION_FORM = Object.keys(FRAGMENTATION_LEVELS).join(', ');

export function parseFragmentation(text: string, what: string): FragmentationLevel {
  if (!Object.prototype.hasOwnProperty.call(FRAGMENTATION_LEVELS, text)) {
    throw new InputError('EBADFLAG', `${what}: ${quote(text)} is not valid; expected one of ${FRAGMENTATION_FORM}`);
  }
  return text as FragmentationLevel;
}

/** The free counts a level leaves in a zone with `freePages` free pages. */
export function levelCounts(level: FragmentationLevel, freePages: number): number[] | null {
  const spec = FRAGMENTATION_LEVELS[level];
  if (spec === null) return null;
  const share = Math.floor((freePages * spec.freePercent) / 100 / (spec.maxOrder + 1));
  return Array.from({ length: NR_PAGE_ORDERS }, (_, k) => (k <= spec.maxOrder ? Math.floor(share / 2 ** k) : 0));
}

export type StartingState =
  | { kind: 'level'; level: FragmentationLevel }
  | { kind: 'buddyinfo'; lines: readonly BuddyinfoLine[]; source: string };

/** Free 4 MiB blocks a zone has now (what setFreeBlocks can lay a state out in). */
function freeMaxBlocks(phys: GuestPhysMem, z: number): number {
  return phys.freeBlocks().find((f) => f.zone === ZONE_NAMES[z])?.free[MAX_PAGE_ORDER] ?? 0;
}

function fits(counts: readonly number[], maxBlocks: number): boolean {
  const r = placementRegions(counts);
  return r !== null && r + counts[MAX_PAGE_ORDER]! <= maxBlocks;
}

/** The largest factor f in [0, 1] (to 1/1024) with floor(counts * f) fitting; the scaled counts. */
function scaleToFit(counts: readonly number[], maxBlocks: number): { factor: number; counts: number[] } {
  const scaled = (f: number) => counts.map((c) => Math.floor(c * f));
  let lo = 0;
  let hi = 1024;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(scaled(mid / 1024), maxBlocks)) lo = mid;
    else hi = mid - 1;
  }
  return { factor: lo / 1024, counts: scaled(lo / 1024) };
}

/** Apply a starting state to every zone; returns the notes to print (empty when it applied as given). */
export function applyStartingState(phys: GuestPhysMem, state: StartingState): string[] {
  const notes: string[] = [];
  const zones = phys.populatedZones();
  const snapshot = state.kind === 'buddyinfo' ? foldSnapshot(state.lines) : undefined;
  if (snapshot !== undefined) {
    for (let z = 0; z < NR_ZONES; z++) {
      if (snapshot[z] !== undefined && !zones.includes(z)) notes.push(`buddyinfo: ${state.kind === 'buddyinfo' ? state.source : ''}: zone ${ZONE_NAMES[z]} ignored: this guest has no memory ${z === ZONE_NORMAL ? 'above 4 GiB' : 'below 4 GiB'}`);
    }
  }
  for (const z of zones) {
    let want = snapshot !== undefined ? snapshot[z] : levelCounts((state as { level: FragmentationLevel }).level, phys.freePagesCount(z));
    if (want === null) continue;
    if (want === undefined) {
      notes.push(`buddyinfo: the snapshot lists no ${ZONE_NAMES[z]} zone; it keeps its boot state`);
      continue;
    }
    const maxBlocks = freeMaxBlocks(phys, z);
    if (!fits(want, maxBlocks)) {
      const s = scaleToFit(want, maxBlocks);
      const mib = (c: readonly number[]) => Math.round(c.reduce((acc, n, k) => acc + n * 2 ** k, 0) / 256);
      notes.push(`buddyinfo: zone ${ZONE_NAMES[z]}: the wanted free blocks (${mib(want)} MiB) do not fit the guest's ${maxBlocks * 4} MiB free in 4 MiB blocks; every count scaled by ${s.factor.toFixed(3)} (${mib(s.counts)} MiB free)`);
      want = s.counts;
    }
    const ok = phys.setFreeBlocks(z, want);
    if (!ok) throw new Error(`buddyinfo: zone ${ZONE_NAMES[z]}: a state that fits was refused`);
  }
  return notes;
}

export type { ZoneFree };
