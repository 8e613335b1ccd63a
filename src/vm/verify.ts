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

// Payload word i of a unit: mix(seed ^ sector * K_SECTOR ^ i * K_WORD). The loops below keep the
// unit's part (seed ^ sector * K_SECTOR) and step i * K_WORD by an addition (mod 2^32), so a word
// costs the finalizer only: these run on every 4 KiB a verifying job writes or reads.
const K_SECTOR = 0x9e3779b1;
const K_WORD = 0x85ebca6b;
const FIRST_PAYLOAD_WORD = 4;

function finalize(x: number): number {
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
    const unit = seed ^ Math.imul(sector, K_SECTOR);
    let step = Math.imul(FIRST_PAYLOAD_WORD, K_WORD);
    for (let i = base + FIRST_PAYLOAD_WORD, end = base + unitWords; i < end; i++) {
      words[i] = finalize(unit ^ step);
      step = (step + K_WORD) | 0;
    }
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
      // Never written reads as all zeros: or the unit's words together (most reads of a fresh
      // region land here, so this loop runs as often as the payload check).
      let any = 0;
      for (let i = base, end = base + unitWords; i < end; i++) any |= words[i]!;
      if (any === 0) out.unwritten++;
      else bad(out, `sector ${sector}: bad magic 0x${(words[base]! >>> 0).toString(16)}`);
      continue;
    }
    if (words[base + 1] !== sector) {
      bad(out, `sector ${sector}: holds sector ${words[base + 1]}`);
      continue;
    }
    const unit = words[base + 2]! ^ Math.imul(sector, K_SECTOR);
    let step = Math.imul(FIRST_PAYLOAD_WORD, K_WORD);
    // Every word is compared: the differences are or-ed together and looked at once per unit.
    let diff = 0;
    for (let i = base + FIRST_PAYLOAD_WORD, end = base + unitWords; i < end; i++) {
      diff |= words[i]! ^ finalize(unit ^ step);
      step = (step + K_WORD) | 0;
    }
    if (diff === 0) out.ok++;
    else bad(out, `sector ${sector}: payload does not match its header`);
  }
}

function bad(out: VerifyCounts, what: string): void {
  out.bad++;
  if (out.firstBad === null) out.firstBad = what;
}
