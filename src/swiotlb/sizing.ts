// Sizing of the default pool at boot, as the kernel does it: the swiotlb= boot parameter
// (setup_io_tlb_npages), the CoCo heuristic (mem_encrypt_setup_arch -> swiotlb_adjust_size), the
// area count from the CPU count (swiotlb_adjust_nareas, round_up_default_nslabs) and limit_nareas.
// The kernel's info messages are collected in order, with its "software IO TLB: " prefix.
import { quote } from '../util/quote.js';
import { InputError } from '../errors.js';
import {
  IO_TLB_DEFAULT_SIZE, IO_TLB_MAX_SIZE, IO_TLB_SEGSIZE, IO_TLB_SHIFT, IO_TLB_SIZE, alignUp, isPowerOfTwo,
  nrSlots, roundupPowOfTwo,
} from './constants.js';
import { bootText } from '../log/events.js';

const MAX_NSLABS = IO_TLB_MAX_SIZE >> IO_TLB_SHIFT;
const MAX_NAREAS = MAX_NSLABS / IO_TLB_SEGSIZE;
const BOOT_PARAM_FORM = 'swiotlb=<nslabs>[,<nareas>][,force|noforce], e.g. swiotlb=32768,16,force';

/**
 * Mainline's setup_io_tlb_npages knows no "dynamic": CONFIG_SWIOTLB_DYNAMIC is a build option. Only
 * Petr Tesarik's April 2023 RFC (v2 5/7) parsed swiotlb=dynamic; the emulator's switch is a flag.
 */
const DYNAMIC_IS_NOT_A_BOOT_OPTION = (word: string): string =>
  `--cmdline: ${quote(word)}: mainline Linux has no swiotlb=dynamic boot option (only the 2023 RFC had one; dynamic swiotlb is CONFIG_SWIOTLB_DYNAMIC); use --swiotlb-dynamic on, and ${BOOT_PARAM_FORM} on the command line`;

/** What the swiotlb= boot parameter asked for. */
export interface SwiotlbBootParam {
  nslabs?: number;
  nareas?: number;
  force: boolean;
  noforce: boolean;
}

/**
 * Parse a kernel command line (or just its swiotlb= word). Other parameters are ignored, as the
 * kernel's early_param does; a malformed swiotlb= value is an InputError.
 */
export function parseSwiotlbCmdline(cmdline: string, what = '--cmdline'): SwiotlbBootParam {
  const out: SwiotlbBootParam = { force: false, noforce: false };
  for (const word of cmdline.trim().split(/\s+/)) {
    if (!word.startsWith('swiotlb=')) continue;
    // The kernel's cursor walk: [digits] [,] [digits] [,] then "force" or "noforce".
    let rest = word.slice('swiotlb='.length);
    if (rest.split(',').includes('dynamic')) throw new InputError('EBADCMDLINE', DYNAMIC_IS_NOT_A_BOOT_OPTION(word));
    const take = (): string | undefined => {
      const m = /^\d+/.exec(rest);
      if (!m) return undefined;
      rest = rest.slice(m[0].length);
      return m[0];
    };
    const nslabs = take();
    if (nslabs !== undefined) out.nslabs = checkNslabs(Number(nslabs), `${what}: ${word}`);
    if (rest.startsWith(',')) rest = rest.slice(1);
    const nareas = take();
    if (nareas !== undefined) out.nareas = checkNareas(Number(nareas), `${what}: ${word}`);
    if (rest.startsWith(',')) rest = rest.slice(1);
    if (rest === 'force') out.force = true;
    else if (rest === 'noforce') out.noforce = true;
    else if (rest !== '' || (nslabs === undefined && nareas === undefined)) {
      throw new InputError('EBADCMDLINE', `${what}: ${quote(word)} is not valid; expected ${BOOT_PARAM_FORM} with whole positive numbers`);
    }
  }
  return out;
}

// Digit strings too long for a double's exact range are still compared as numbers: 40 nines is
// "too large", not "below 1".
function checkNslabs(n: number, what: string): number {
  if (n > MAX_NSLABS) {
    const shown = Number.isSafeInteger(n) ? `${n} slots is` : 'the slot count is';
    throw new InputError('EBADSIZE', `${what}: ${shown} too large, above the 1 GiB limit of the static pool; expected 1 to ${MAX_NSLABS} slots`);
  }
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new InputError('EBADSIZE', `${what}: the slot count must be at least 1; expected 1 to ${MAX_NSLABS} slots in ${BOOT_PARAM_FORM}`);
  }
  return n;
}

function checkNareas(n: number, what: string): number {
  if (n > MAX_NAREAS || (Number.isSafeInteger(n) && roundupPowOfTwo(n) > MAX_NAREAS)) {
    const shown = Number.isSafeInteger(n) ? `${n} areas is` : 'the area count is';
    throw new InputError('EBADAREAS', `${what}: ${shown} too large, more than the largest pool can hold; expected 1 to ${MAX_NAREAS} (one 128-slot segment per area)`);
  }
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new InputError('EBADAREAS', `${what}: the area count must be at least 1; expected 1 to ${MAX_NAREAS} in ${BOOT_PARAM_FORM}`);
  }
  return n;
}

/** Convert a pool size in bytes (the emulator's --swiotlb flag) to a slot count, validated. */
export function nslabsFromBytes(bytes: number, what = '--swiotlb'): number {
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new InputError('EBADSIZE', `${what}: the pool size must be positive; expected a size such as 64M`);
  }
  if (bytes > IO_TLB_MAX_SIZE) {
    throw new InputError('EBADSIZE', `${what}: ${bytes} bytes is above the 1 GiB limit of the static pool; expected at most 1G`);
  }
  return nrSlots(bytes);
}

/** limit_nareas: an area must hold at least one segment. */
export function limitNareas(nareas: number, nslots: number): number {
  return nslots < nareas * IO_TLB_SEGSIZE ? Math.floor(nslots / IO_TLB_SEGSIZE) : nareas;
}

/** The CoCo heuristic's size before swiotlb_adjust_size: 6% of memory, clamped to 64 MiB..1 GiB. */
export function cocoSwiotlbBytes(memBytes: number): number {
  const size = Math.floor((memBytes * 6) / 100);
  return Math.min(Math.max(size, IO_TLB_DEFAULT_SIZE), IO_TLB_MAX_SIZE);
}

/** Inputs of the boot-time sizing. */
export interface SizingInput {
  /** Possible CPUs (the VM's vCPUs). */
  cpus: number;
  /** Guest memory in bytes; with `coco` it drives the default size. */
  memBytes: number;
  /** A CoCo guest (CC_ATTR_GUEST_MEM_ENCRYPT): force bounce and the 6% heuristic. */
  coco: boolean;
  /** The swiotlb= boot parameter, if given. */
  bootParam?: SwiotlbBootParam;
}

/** The default pool the kernel would create, and what it logged on the way. */
export interface PoolPlan {
  nslabs: number;
  nareas: number;
  forceBounce: boolean;
  /** noforce: no pool at all. */
  disabled: boolean;
  messages: string[];
}

/**
 * Replay the kernel's boot sequence: early_param swiotlb= (setup_io_tlb_npages), then the CoCo
 * heuristic (swiotlb_adjust_size), then swiotlb_init_remap's area choice and limit_nareas.
 */
export function planDefaultPool(input: SizingInput): PoolPlan {
  const messages: string[] = [];
  let defaultNslabs = IO_TLB_DEFAULT_SIZE >> IO_TLB_SHIFT;
  let defaultNareas = 0;

  const roundUpDefaultNslabs = (): boolean => {
    if (defaultNareas === 0) return false;
    if (defaultNslabs < IO_TLB_SEGSIZE * defaultNareas) defaultNslabs = IO_TLB_SEGSIZE * defaultNareas;
    else if (isPowerOfTwo(defaultNslabs)) return false;
    defaultNslabs = roundupPowOfTwo(defaultNslabs);
    return true;
  };
  const adjustNareas = (n: number): void => {
    defaultNareas = n === 0 ? 1 : roundupPowOfTwo(n);
    messages.push(bootText.areaNum(defaultNareas));
    if (roundUpDefaultNslabs()) messages.push(bootText.roundup((defaultNslabs * IO_TLB_SIZE) >> 20));
  };

  const bp = input.bootParam ?? { force: false, noforce: false };
  if (bp.nslabs !== undefined) defaultNslabs = alignUp(bp.nslabs, IO_TLB_SEGSIZE);
  if (bp.nareas !== undefined) adjustNareas(bp.nareas);

  if (input.coco) {
    // swiotlb_adjust_size: only while the size is still the built-in default.
    let size = cocoSwiotlbBytes(input.memBytes);
    if (defaultNslabs === IO_TLB_DEFAULT_SIZE >> IO_TLB_SHIFT) {
      size = alignUp(size, IO_TLB_SIZE);
      defaultNslabs = alignUp(size >> IO_TLB_SHIFT, IO_TLB_SEGSIZE);
      if (roundUpDefaultNslabs()) size = defaultNslabs * IO_TLB_SIZE;
      messages.push(bootText.adjustedMb(size >> 20));
    }
  }

  if (bp.noforce) {
    return { nslabs: 0, nareas: 0, forceBounce: false, disabled: true, messages };
  }
  if (defaultNareas === 0) adjustNareas(input.cpus);
  if (defaultNslabs > MAX_NSLABS) {
    throw new InputError('EBADSIZE', `swiotlb: ${defaultNslabs} slots after rounding is above the 1 GiB limit of the static pool; use fewer areas or a smaller pool`);
  }
  const nareas = limitNareas(defaultNareas, defaultNslabs);
  return { nslabs: defaultNslabs, nareas, forceBounce: bp.force || input.coco, disabled: false, messages };
}

/**
 * swiotlb_adjust_size takes a slot count equal to the built-in default (IO_TLB_DEFAULT_SIZE, 64 MiB)
 * as "not set", so a CoCo guest asked for exactly that size gets the CoCo size instead. That is the
 * kernel's behaviour and stays; this says why the size differs and names a slot count that is not the
 * default and that the area round-up (round_up_default_nslabs) brings back to the size asked for.
 * `how` is how the size was asked: '--swiotlb' (bytes) or the command line (slots).
 */
export function defaultSizeWarning(input: SizingInput, plan: PoolPlan, how: '--swiotlb' | 'swiotlb='): string | undefined {
  const asked = input.bootParam?.nslabs;
  const defaultNslabs = IO_TLB_DEFAULT_SIZE >> IO_TLB_SHIFT;
  if (!input.coco || asked === undefined || alignUp(asked, IO_TLB_SEGSIZE) !== defaultNslabs || plan.nslabs === defaultNslabs) return undefined;
  // A count that is not the default and that boot rounds back up to it; with an area count given,
  // every count rounds up to a power of two, which is the default again: then without the area count.
  const search = (bp: SwiotlbBootParam): number | undefined => {
    for (let c = defaultNslabs - IO_TLB_SEGSIZE; c > 0; c -= IO_TLB_SEGSIZE) {
      if (planDefaultPool({ ...input, bootParam: { ...bp, nslabs: c } }).nslabs === defaultNslabs) return c;
    }
    return undefined;
  };
  const bp = input.bootParam!;
  let instead = search(bp);
  let dropAreas = false;
  if (instead === undefined && bp.nareas !== undefined) {
    const { nareas: _drop, ...rest } = bp;
    instead = search(rest);
    dropAreas = instead !== undefined;
  }
  const c = instead ?? defaultNslabs - IO_TLB_SEGSIZE;
  const mib = (n: number) => `${(n * IO_TLB_SIZE) / 2 ** 20} MiB`;
  const form = how === '--swiotlb' ? `--swiotlb ${(c * IO_TLB_SIZE) / 1024}K` : `swiotlb=${c}`;
  const asked_ = how === '--swiotlb' ? `--swiotlb ${mib(defaultNslabs)}` : `swiotlb=${asked}`;
  return `${asked_} is ${defaultNslabs} slots, the kernel's default size (IO_TLB_DEFAULT_SIZE), which swiotlb_adjust_size treats as not set: this CoCo guest gets ${plan.nslabs} slots (${mib(plan.nslabs)}, 6% of its memory within 64 MiB..1 GiB) instead; for ${mib(defaultNslabs)} ask for a slot count that is not the default, e.g. ${form} (${c} slots${instead !== undefined ? `, rounded up to ${defaultNslabs} at boot` : ''})${dropAreas ? ' with no area count (an area count rounds it up to the default again)' : ''}`;
}
