// A stress trial's configuration, drawn from its seed: everything a trial does follows from
// (seed, mode, mutant, limits), so `--replay <seed>` rebuilds the same trial.
import { IO_TLB_SEGSIZE, IO_TLB_SIZE } from '../swiotlb/constants.js';
import {
  POINT_COUNT, POINT_NAMES, P_AREA_LOCK_ACQUIRED, P_AREA_LOCK_ENTER, P_AREA_LOCK_PARK, P_AREA_LOCK_SPIN, P_AREA_LOCK_UNPARK,
  P_AREA_UNLOCK, P_AREA_UNLOCKED, P_AREA_USED, P_EXERCISER_OP, P_HIWATER_UPDATE, P_SLOTS_FOUND, P_SLOTS_FREED,
  P_THROTTLE_ACQUIRED, P_THROTTLE_CHECKED, P_THROTTLE_COUNT, P_THROTTLE_GRANTED, P_THROTTLE_QUEUED, P_THROTTLE_WAIT,
  P_GROWTH_IDLE, P_GROWTH_SCHEDULED, P_POOL_PUBLISHED, P_TRANSIENT_COPIED, P_TRANSIENT_DEL, P_TRANSIENT_FREE, P_TRANSIENT_LINKED,
  P_TRANSIENT_RECLAIM, P_TRANSIENT_RETIRED,
} from '../swiotlb/instrument.js';
import type { MutantSpec } from '../swiotlb/mutants.js';
import { Rng } from '../util/rng.js';

export type StressMode = 'chaos' | 'pct';
/** What --mode takes: one mode for every trial, or each trial's mode drawn from its seed. */
export type StressModeOption = StressMode | 'mixed';

export interface PerturbConfig {
  /** Probability of a perturbation at each instrumentation point, indexed by point id (instrument.ts). */
  rates: number[];
  /** Relative weights of the kinds: a busy spin, a yield (a 20 us sleep), a short park. */
  kinds: [number, number, number];
  /** Longest busy spin, in loop iterations. */
  spinMax: number;
  /** Longest park, in microseconds. */
  parkMaxUs: number;
}

export interface PctConfig {
  /** Bug depth d of probabilistic concurrency testing: d - 1 priority change points. */
  depth: number;
  /** Scheduling steps the change points are drawn from (an estimate of the trial's length). */
  steps: number;
}

export interface TrialConfig {
  seed: number;
  mode: StressMode;
  /** Mutant name (src/swiotlb/mutants.ts), or null for the real core. */
  mutant: string | null;
  /** vCPU worker threads. */
  vcpus: number;
  nslabs: number;
  nareas: number;
  /** Spins on a held area lock before parking (MEM_LOCK_SPINS). */
  lockSpins: number;
  /** Longest single park on an area lock word (MEM_PARK_TIMEOUT_MS). */
  parkTimeoutMs: number;
  opsPerThread: number;
  /** Live mappings per thread at most. */
  maxLive: number;
  /** Largest mapping (and SG entry), 1 .. swiotlb_max_mapping_size. */
  maxMappingBytes: number;
  minAlignMask: number;
  /** alloc_align_mask values of IOMMU-style maps, and the share of maps that are such. */
  allocAlignMasks: number[];
  allocAlignShare: number;
  /** Share of maps that are SG lists, and their longest length. */
  sgShare: number;
  sgMaxEntries: number;
  /** Relative weights of BIDIRECTIONAL, TO_DEVICE, FROM_DEVICE. */
  dirWeights: [number, number, number];
  /** Thread 0 writes 0 to io_tlb_used_hiwater every this many operations; 0 never. */
  hiwaterResetEvery: number;
  /**
   * [RFC] Throttling: null for off, else high_throttle and low_throttle in slots (low may exceed high:
   * the RFC does not check them against each other).
   */
  throttle: { high: number; low: number } | null;
  /** [RFC] Share of dma-direct maps (single and SG) passing DMA_ATTR_MAY_BLOCK (ignored with throttling off). */
  mayBlockShare: number;
  /**
   * Dynamic swiotlb (CONFIG_SWIOTLB_DYNAMIC), null for off. With it on, a growth worker thread adds
   * pools (of the default pool's size, capped at 4 MiB) while the vCPUs map and unmap, until the
   * decrypted arena that backs them is full (growPools pools); a failed search makes a transient
   * pool from the atomic pool (coherent_pool= coherentPoolKiB; its expansion thread does not run, so
   * it runs dry). The vCPU threads share `devices` DMA devices (each device has its transient list).
   */
  dynamic: DynamicTrialConfig | null;
  /** chaos mode only. */
  perturb: PerturbConfig;
  /** pct mode only. */
  pct: PctConfig;
}

export interface DynamicTrialConfig {
  /** Pools growth can add before the decrypted arena is full. */
  growPools: number;
  /** coherent_pool=, KiB: the atomic pool's size (64..512 KiB). */
  coherentPoolKiB: number;
  /** Transient pools at once (records). */
  maxTransient: number;
  devices: number;
}

/** Guest memory of a dynamic trial: enough for the pools, all of it below 4 GiB. */
export const DYN_TRIAL_MEM_BYTES = 256 * 1024 * 1024;
/** The most devices a dynamic trial's threads share (the dynamic region has DYN_MAX_DEVICES records). */
const DYN_TRIAL_DEVICES = 8;

/** Settings that bound every trial of a run (flags and COCO_STRESS_*), not drawn from the seed. */
export interface TrialLimits {
  maxVcpus: number;
  parkTimeoutMs: number;
  /** Multiplier of the operations per trial (1 = trials of a second or two). */
  scale: number;
}

export const MIN_VCPUS = 2;
export const MAX_VCPUS = 64;
/** Private memory of all threads of a trial together, at most. */
const GUEST_BUDGET_BYTES = 96 * 1024 * 1024;
const GUARD_AND_PAGE = 4096 + 32;
const MIN_ALIGN_MASKS = [0, 0, 0, 0x3, 0x7ff, 0xfff, 0xfff, 0x3fff];
const ALLOC_ALIGN_MASKS = [0xfff, 0x1fff, 0x3fff, 0xffff];
/**
 * Points where a perturbation may be inserted: every point but those about to wait anyway (a park on
 * a lock word, a throttle_sem waiter's park) or just back from one. [RFC] The throttle points are
 * among them, so races around throttle_sem get widened windows too.
 */
const PERTURBABLE = [
  P_AREA_LOCK_ENTER, P_AREA_LOCK_SPIN, P_AREA_LOCK_ACQUIRED, P_AREA_UNLOCK, P_AREA_UNLOCKED, P_SLOTS_FOUND,
  P_HIWATER_UPDATE, P_EXERCISER_OP,
];
/** Perturbable points added later: drawn after every other draw, so that a seed keeps the rest of its trial. */
const PERTURBABLE_LATER = [
  P_AREA_USED, P_THROTTLE_CHECKED, P_SLOTS_FREED, P_THROTTLE_ACQUIRED, P_THROTTLE_QUEUED, P_THROTTLE_GRANTED,
  P_THROTTLE_COUNT,
];
/** Dynamic swiotlb's perturbable points: drawn after those. */
const PERTURBABLE_DYN = [
  P_TRANSIENT_LINKED, P_TRANSIENT_DEL, P_TRANSIENT_RETIRED, P_TRANSIENT_RECLAIM, P_TRANSIENT_FREE, P_TRANSIENT_COPIED,
  P_POOL_PUBLISHED, P_GROWTH_SCHEDULED,
];
/** Every point chaos mode may perturb. */
export const PERTURBABLE_POINTS: readonly number[] = [...PERTURBABLE, ...PERTURBABLE_LATER, ...PERTURBABLE_DYN];
const NOT_PERTURBABLE = new Set([P_AREA_LOCK_PARK, P_AREA_LOCK_UNPARK, P_THROTTLE_WAIT, P_GROWTH_IDLE]);
/** Scheduling steps per operation, roughly (pct mode's change points are drawn from this many). */
const STEPS_PER_OP = 9;

/** The seed of trial `i` of a run: spread out, never 0. */
export function trialSeed(runSeed: number, i: number): number {
  let h = Math.imul((runSeed >>> 0) ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(i + 1, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  return (h >>> 0) || 1;
}

/** swiotlb_max_mapping_size for a device with this min_align_mask (§8). */
export function maxMappingSize(minAlignMask: number): number {
  const r = minAlignMask === 0 ? 0 : Math.ceil(minAlignMask / IO_TLB_SIZE) * IO_TLB_SIZE;
  return IO_TLB_SEGSIZE * IO_TLB_SIZE - r;
}

/** Bytes of private memory one thread needs: maxLive buffers of the largest map or SG list. */
export function regionBytes(cfg: TrialConfig): number {
  const buf = (cfg.sgShare > 0 ? cfg.sgMaxEntries : 1) * cfg.maxMappingBytes;
  return cfg.maxLive * (buf + GUARD_AND_PAGE);
}

/**
 * The trial drawn from `seed`. The draws do not depend on `mode` or `mutant` (they only override
 * the result), so a trial of a mixed run replays with `--mode <its mode>`. With a mutant, a mixed
 * mode means the mutant's own (its hint's).
 */
export function trialConfig(seed: number, mode: StressModeOption, limits: TrialLimits, mutant?: MutantSpec): TrialConfig {
  const rng = new Rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[rng.below(xs.length)]!;
  const drawnMode: StressMode = rng.below(2) === 0 ? 'chaos' : 'pct';
  const maxV = Math.max(MIN_VCPUS, Math.min(MAX_VCPUS, limits.maxVcpus));
  // Few threads more often than many: 2..maxV, log-uniform.
  const vcpus = Math.min(maxV, 1 + rng.logUniform(maxV - 1));
  const areaLog2Max = Math.ceil(Math.log2(vcpus));
  const nareas = 2 ** rng.below(areaLog2Max + 1);
  const segmentsPerArea = rng.logUniform(8);
  const minAlignMask = pick(MIN_ALIGN_MASKS);
  const maxMap = maxMappingSize(minAlignMask);
  const sizeClass = rng.below(4);
  const maxMappingBytes = sizeClass === 0 ? rng.logUniform(4096) : sizeClass === 3 ? maxMap : Math.min(maxMap, rng.logUniform(65536));
  const allocAlignShare = rng.below(2) === 0 ? 0 : 0.1 + rng.float() * 0.4;
  const allocAlignMasks = ALLOC_ALIGN_MASKS.filter(() => rng.below(2) === 0);
  const sgShare = rng.below(2) === 0 ? 0 : 0.1 + rng.float() * 0.4;
  const sgMaxEntries = 2 + rng.below(7);
  const only = rng.below(4) === 0 ? rng.below(3) : -1; // sometimes one direction only
  const dirWeights: [number, number, number] = only >= 0
    ? [only === 0 ? 1 : 0, only === 1 ? 1 : 0, only === 2 ? 1 : 0]
    : [1 + rng.below(3), 1 + rng.below(3), 1 + rng.below(3)];
  const lockSpins = pick([0, 1, 4, 64, 64, 256]);
  const wantLive = 1 + rng.below(12);
  const hiwaterResetEvery = rng.below(4) === 0 ? 50 + rng.below(450) : 0;
  const totalOps = Math.round((20_000 + rng.below(60_000)) * limits.scale);
  const pctOps = Math.round((8_000 + rng.below(16_000)) * limits.scale);
  // chaos: a base rate, each perturbable point on or off, a mix of kinds.
  const baseRate = pick([0.0005, 0.002, 0.01, 0.03]);
  const rates = new Array<number>(POINT_COUNT).fill(0);
  for (const p of PERTURBABLE) rates[p] = rng.below(2) === 0 ? 0 : baseRate * (1 + rng.below(4));
  const kinds: [number, number, number] = [1 + rng.below(3), rng.below(3), rng.below(3)];
  const spinMax = 50 + rng.below(5000);
  const parkMaxUs = 20 + rng.below(1000);
  const depth = 2 + rng.below(11);
  // [RFC] Throttling in half the trials: high_throttle 1% to 99% of the pool, log-uniform (trials with
  // small mappings use little of it), low below high (sometimes above it), a share of MAY_BLOCK maps.
  const throttleOn = rng.below(2) === 0;
  const highPercent = rng.logUniform(99);
  const lowPercent = rng.below(8) === 0 ? Math.min(100, highPercent + 1 + rng.below(10)) : Math.floor(highPercent * (0.5 + rng.float() * 0.5));
  const mayBlockShare = 0.2 + rng.float() * 0.8;
  for (const p of PERTURBABLE_LATER) rates[p] = rng.below(2) === 0 ? 0 : baseRate * (1 + rng.below(4));
  // Dynamic swiotlb in half the trials (drawn last, so a seed keeps the rest of its trial): a small
  // default pool (one segment per area) so that searches fail, growth, transient pools and an
  // atomic pool of 64..512 KiB that runs dry.
  const dynamicOn = rng.below(2) === 0;
  const growPools = 1 + rng.below(6);
  const coherentPoolKiB = pick([64, 128, 256, 512]);
  const maxTransient = pick([8, 16, 32]);
  for (const p of PERTURBABLE_DYN) rates[p] = rng.below(2) === 0 ? 0 : baseRate * (1 + rng.below(4));

  const cfg: TrialConfig = {
    seed,
    mode: mode === 'mixed' ? drawnMode : mode,
    mutant: null,
    vcpus,
    nareas,
    nslabs: nareas * (dynamicOn ? 1 : segmentsPerArea) * IO_TLB_SEGSIZE,
    lockSpins,
    parkTimeoutMs: limits.parkTimeoutMs,
    opsPerThread: 0,
    maxLive: wantLive,
    maxMappingBytes,
    minAlignMask,
    allocAlignMasks: allocAlignMasks.length > 0 ? allocAlignMasks : [0xfff],
    allocAlignShare,
    sgShare,
    sgMaxEntries,
    dirWeights,
    hiwaterResetEvery,
    throttle: null,
    mayBlockShare,
    dynamic: dynamicOn ? { growPools, coherentPoolKiB, maxTransient, devices: Math.min(vcpus, DYN_TRIAL_DEVICES) } : null,
    perturb: { rates, kinds, spinMax, parkMaxUs },
    pct: { depth, steps: 0 },
  };
  // Dynamic trials make the pressure real: mappings up to a whole segment and at least 8 live per
  // thread fill a pool of one segment per area, so searches fail, the pool grows, transient pools
  // are made and the atomic pool runs dry (each run counts and prints how often).
  if (dynamicOn) {
    cfg.maxMappingBytes = maxMap;
    cfg.maxLive = Math.max(cfg.maxLive, 8);
  }
  let percents = throttleOn ? { highPercent, lowPercent } : null;
  if (mutant !== undefined) percents = applyHint(cfg, mutant, maxV, mode, percents);
  if (percents !== null) {
    cfg.throttle = { high: Math.floor((cfg.nslabs * percents.highPercent) / 100), low: Math.floor((cfg.nslabs * percents.lowPercent) / 100) };
  }
  if (cfg.mode === 'pct' && cfg.lockSpins < 1) cfg.lockSpins = 1; // pct blocks a thread at its spin point, never in a park
  // Private memory within budget: fewer live mappings for big configurations.
  const perLive = (cfg.sgShare > 0 ? cfg.sgMaxEntries : 1) * cfg.maxMappingBytes + GUARD_AND_PAGE;
  cfg.maxLive = Math.max(1, Math.min(cfg.maxLive, Math.floor(GUEST_BUDGET_BYTES / (cfg.vcpus * perLive))));
  if (cfg.opsPerThread === 0) {
    cfg.opsPerThread = Math.max(100, Math.round((cfg.mode === 'pct' ? pctOps : totalOps) / cfg.vcpus));
  }
  cfg.pct.steps = cfg.vcpus * cfg.opsPerThread * STEPS_PER_OP;
  return cfg;
}

/**
 * A mutant's overrides. Its mode applies unless the run names one (chaos or pct). Returns the
 * throttle thresholds in percent (the hint's, if it has any).
 */
function applyHint(
  cfg: TrialConfig, m: MutantSpec, maxV: number, mode: StressModeOption, percents: { highPercent: number; lowPercent: number } | null,
): { highPercent: number; lowPercent: number } | null {
  const h = m.hint;
  cfg.mutant = m.name;
  cfg.mode = mode === 'mixed' ? h.mode : mode;
  if (h.vcpus !== undefined) cfg.vcpus = Math.max(MIN_VCPUS, Math.min(maxV, h.vcpus));
  if (h.nareas !== undefined) cfg.nareas = h.nareas;
  if (h.nareas !== undefined || h.segmentsPerArea !== undefined) {
    const spa = h.segmentsPerArea ?? Math.max(1, cfg.nslabs / (cfg.nareas * IO_TLB_SEGSIZE));
    cfg.nslabs = cfg.nareas * Math.round(spa) * IO_TLB_SEGSIZE;
  }
  if (h.lockSpins !== undefined) cfg.lockSpins = h.lockSpins;
  if (h.opsPerThread !== undefined) cfg.opsPerThread = h.opsPerThread;
  if (h.maxMappingBytes !== undefined) cfg.maxMappingBytes = Math.min(h.maxMappingBytes, maxMappingSize(cfg.minAlignMask));
  if (h.perturbPoints !== undefined) {
    cfg.perturb.rates = new Array<number>(POINT_COUNT).fill(0);
    for (const p of h.perturbPoints) if (!NOT_PERTURBABLE.has(p)) cfg.perturb.rates[p] = h.perturbRate ?? 0.05;
  }
  if (h.parkMaxUs !== undefined) {
    cfg.perturb.parkMaxUs = h.parkMaxUs;
    cfg.perturb.kinds = [1, 1, 4];
  }
  if (h.mayBlockShare !== undefined) cfg.mayBlockShare = h.mayBlockShare;
  if (h.sgShare !== undefined) cfg.sgShare = h.sgShare;
  // Dynamic swiotlb exactly in the trials of the mutants that break it (the others keep their measured setups).
  cfg.dynamic = m.requiresDynamic === true
    ? {
      growPools: h.dynamic?.growPools ?? 2, coherentPoolKiB: h.dynamic?.coherentPoolKiB ?? 128, maxTransient: 16,
      devices: Math.min(cfg.vcpus, DYN_TRIAL_DEVICES),
    }
    : null;
  if (cfg.dynamic !== null) cfg.throttle = null;
  return cfg.dynamic !== null ? null : h.throttle ?? percents;
}

/** The configuration as one JSON line (what a failure prints). */
export function configLine(cfg: TrialConfig): string {
  const { perturb, pct, ...rest } = cfg;
  const shown: Record<string, unknown> = { ...rest };
  if (cfg.mode === 'chaos') {
    const on: Record<string, number> = {};
    perturb.rates.forEach((r, p) => {
      if (r > 0) on[POINT_NAMES[p]!] = Number(r.toPrecision(3));
    });
    shown['perturb'] = { rates: on, kinds: perturb.kinds, spinMax: perturb.spinMax, parkMaxUs: perturb.parkMaxUs };
  } else {
    shown['pct'] = pct;
  }
  return JSON.stringify(shown);
}
