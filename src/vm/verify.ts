// Data verification for storage jobs with verify=: every unit written (a 512-byte sector, or the
// job's own verify unit, see jobs.ts verifyUnit) carries a header (magic, its unit number in the
// job's region, the write's seed) and a payload derived from the three, so a read can check each
// unit on its own, whatever block sizes wrote it. This is stronger than the checksum fio stores
// (every word is compared), and it works for random mixed workloads where reads and writes do not
// line up. A unit that was never written reads as zeros and is counted apart. fio has the same
// idea in verify_interval (a header every N bytes, default the block size).
export const SECTOR_BYTES = 512;
/** The header: magic, unit number, seed, and a zero word; a unit must hold it. */
export const MIN_VERIFY_UNIT = 16;
const MAGIC = 0x56455249; // "VERI"

function mix(seed: number, sector: number, i: number): number {
  let x = (seed ^ Math.imul(sector, 0x9e3779b1) ^ Math.imul(i, 0x85ebca6b)) | 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x2c1b3c6d);
  x ^= x >>> 12;
  return x | 0;
}

/**
 * Fill `nsectors` whole units of `unitBytes` (a multiple of 4, at least MIN_VERIFY_UNIT; default a
 * sector) of `words` (an Int32 view of private memory) starting at word `w0`.
 */
export function fillSectors(words: Int32Array, w0: number, nsectors: number, firstSector: number, seed: number, unitBytes = SECTOR_BYTES): void {
  const unitWords = unitBytes >> 2;
  for (let s = 0; s < nsectors; s++) {
    const base = w0 + s * unitWords;
    const sector = firstSector + s;
    words[base] = MAGIC;
    words[base + 1] = sector;
    words[base + 2] = seed;
    words[base + 3] = 0;
    for (let i = 4; i < unitWords; i++) words[base + i] = mix(seed, sector, i);
  }
}

export interface VerifyCounts {
  ok: number;
  unwritten: number;
  bad: number;
  firstBad: string | null;
}

/** Check whole units read into `words`; returns counts and a description of the first bad unit. */
export function verifySectors(words: Int32Array, w0: number, nsectors: number, firstSector: number, out: VerifyCounts, unitBytes = SECTOR_BYTES): void {
  const unitWords = unitBytes >> 2;
  for (let s = 0; s < nsectors; s++) {
    const base = w0 + s * unitWords;
    const sector = firstSector + s;
    if (words[base] !== MAGIC) {
      let zero = true;
      for (let i = 0; i < unitWords && zero; i++) zero = words[base + i] === 0;
      if (zero) out.unwritten++;
      else bad(out, `sector ${sector}: bad magic 0x${(words[base]! >>> 0).toString(16)}`);
      continue;
    }
    if (words[base + 1] !== sector) {
      bad(out, `sector ${sector}: holds sector ${words[base + 1]}`);
      continue;
    }
    const seed = words[base + 2]!;
    let ok = true;
    for (let i = 4; i < unitWords && ok; i++) ok = words[base + i] === mix(seed, sector, i);
    if (ok) out.ok++;
    else bad(out, `sector ${sector}: payload does not match its header`);
  }
}

function bad(out: VerifyCounts, what: string): void {
  out.bad++;
  if (out.firstBad === null) out.firstBad = what;
}
