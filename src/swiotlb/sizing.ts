// Sizing of the default pool at boot, as the kernel does it: the swiotlb= boot parameter
// (setup_io_tlb_npages), the CoCo heuristic (mem_encrypt_setup_arch -> swiotlb_adjust_size), the
// area count from the CPU count (swiotlb_adjust_nareas, round_up_default_nslabs) and limit_nareas.
// The kernel's info messages are collected in order, with its "software IO TLB: " prefix.
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
  `--cmdline: "${word}": mainline Linux has no swiotlb=dynamic boot option (only the 2023 RFC had one; dynamic swiotlb is CONFIG_SWIOTLB_DYNAMIC); use --swiotlb-dynamic on, and ${BOOT_PARAM_FORM} on the command line`;

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
export function parseSwiotlbCmdline(cmdline: string): SwiotlbBootParam {
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
    if (nslabs !== undefined) out.nslabs = checkNslabs(Number(nslabs), word);
    if (rest.startsWith(',')) rest = rest.slice(1);
    const nareas = take();
    if (nareas !== undefined) out.nareas = checkNareas(Number(nareas), word);
    if (rest.startsWith(',')) rest = rest.slice(1);
    if (rest === 'force') out.force = true;
    else if (rest === 'noforce') out.noforce = true;
    else if (rest !== '' || (nslabs === undefined && nareas === undefined)) {
      throw new InputError('EBADCMDLINE', `--cmdline: "${word}" is not valid; expected ${BOOT_PARAM_FORM} with whole positive numbers`);
    }
  }
  return out;
}

function checkNslabs(n: number, what: string): number {
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new InputError('EBADSIZE', `${what}: the slot count must be at least 1; expected ${BOOT_PARAM_FORM}`);
  }
  if (alignUp(n, IO_TLB_SEGSIZE) > MAX_NSLABS) {
    throw new InputError('EBADSIZE', `${what}: ${n} slots is above the 1 GiB limit of the static pool; expected at most ${MAX_NSLABS} slots`);
  }
  return n;
}

function checkNareas(n: number, what: string): number {
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new InputError('EBADAREAS', `${what}: the area count must be at least 1; expected ${BOOT_PARAM_FORM}`);
  }
  if (roundupPowOfTwo(n) > MAX_NAREAS) {
    throw new InputError('EBADAREAS', `${what}: ${n} areas is more than the largest pool can hold; expected at most ${MAX_NAREAS} (one 128-slot segment per area)`);
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
