// The VM's options: .env.example defaults, overridden by ./.env, then by the environment, then by
// flags (src/cli/flags.ts, src/config.ts); validated once here so the rest of the VM can trust them.
import { quote } from '../util/quote.js';
import { HelpRequested, InputError } from '../errors.js';
import { type FlagSpec, type ParsedFlags, type Setting, parseFlags, parseOnOff } from '../cli/flags.js';
import {
  MAX_TIMER_MS, type DurationBounds, durationBoundsText, formatBytes, formatDurationMs, parseDurationInRange, parseIntInRange, parsePercent, parseSize,
} from '../util/units.js';
import { cocoSwiotlbBytes, parseSwiotlbCmdline } from '../swiotlb/sizing.js';
import { type TuneStep, parseTuneSteps, tunablesHelp } from './control.js';
import { MAX_ARENA_BYTES } from '../memory/arena.js';
import { type BuddyinfoLine, FRAGMENTATION_FORM, type FragmentationLevel, parseFragmentation, readBuddyinfoFile } from '../memory/buddyinfo.js';
import { PAGE_SIZE } from '../memory/phys.js';
import { HYBRID_TIMEOUT_MAX_MS } from '../swiotlb/hybrid.js';
import { IO_TLB_SIZE } from '../swiotlb/constants.js';
import { GROWING_POLICIES, type PolicyName, resolvePolicy } from './policy.js';
import { RESTRICTED_POOL_FORM, type RestrictedPoolSpec, parseRestrictedPools } from '../swiotlb/restricted.js';

/** The emulated devices of every run, by the names their threads, messages and flags use. */
export const VM_DEVICES = ['nvme0', 'eth0'] as const;

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
const LEVELS_TEXT = LEVELS.join(', ');
/** The sampler also drives the stall watchdog: a sample at least once a minute. */
const SAMPLE_BOUNDS: DurationBounds = { minMs: 1, maxMs: 60_000 };
const SAMPLE_BOUNDS_TEXT = durationBoundsText(SAMPLE_BOUNDS);
/** The park timeout is a whole number of milliseconds in the pool's Int32 header. */
const PARK_BOUNDS: DurationBounds = { minMs: 1, maxMs: 60_000, wholeMs: true };
const PARK_BOUNDS_TEXT = durationBoundsText(PARK_BOUNDS);
const MAX_LOCK_SPINS = 1_000_000;
/** --hybrid-timeout: 0 (grow at once) to a minute. */
const HYBRID_TIMEOUT_BOUNDS: DurationBounds = { minMs: 0, maxMs: HYBRID_TIMEOUT_MAX_MS };

/** A policy's own knob given as a flag while another policy runs: refused, never ignored. */
function knobOfPolicy(f: ParsedFlags, flag: string, policy: PolicyName, allowed: readonly PolicyName[]): void {
  if (f.has(flag) && !allowed.includes(policy)) {
    throw new InputError('EBADFLAG', `--${flag} applies to --policy ${allowed.join(' or ')}, not ${policy}; drop it or choose ${allowed.length === 1 ? 'that policy' : 'one of them'}`);
  }
}

/**
 * The storage device's service model (src/devices/device.ts) serves bytes at `bandwidth` through one
 * channel: below 1 MiB/s a default-sized request takes seconds and a queue of them trips the stall
 * watchdog (0 never completes at all); above 1 TiB/s a request is below the model's resolution.
 */
const MIN_BANDWIDTH = 1024 ** 2;
const MAX_BANDWIDTH = 1024 ** 4;
export const BANDWIDTH_BOUNDS_TEXT = `${formatBytes(MIN_BANDWIDTH)}/s to ${formatBytes(MAX_BANDWIDTH)}/s (1M to 1T)`;
/** A command's latency: longer than a minute is a device that never answers, which the stall watchdog reports. */
const LATENCY_BOUNDS: DurationBounds = { minMs: 0, maxMs: 60_000 };
export const LATENCY_BOUNDS_TEXT = durationBoundsText(LATENCY_BOUNDS);

/** Bytes per second of a device (--nvme-bandwidth and the tunable nvme0.bandwidth_bytes_per_s: one parser). */
export function parseNvmeBandwidth(text: string, what: string): number {
  const v = parseSize(text, what);
  if (v < MIN_BANDWIDTH || v > MAX_BANDWIDTH) {
    throw new InputError('EBADSIZE', `${what}: ${quote(text)} is a bandwidth the device model cannot honour; expected ${BANDWIDTH_BOUNDS_TEXT}, e.g. 2G`);
  }
  return v;
}

/** A device's per-command latency in microseconds (--nvme-latency and nvme0.latency_us: one parser). */
export function parseNvmeLatencyUs(text: string, what: string): number {
  return parseDurationInRange(text, what, LATENCY_BOUNDS, 0.001) * 1000;
}


export interface VmOptions {
  vcpus: number;
  memBytes: number;
  swiotlbBytes: number | undefined;
  cmdline: string;
  runtimeMs: number;
  sizeCapBytes: number;
  jobFile: string | undefined;
  seed: number;
  outputFormat: 'normal' | 'json';
  logFile: string | undefined;
  /** Where logFile came from (--log-file or COCO_LOG_FILE and its layer), for the error when it cannot be opened. */
  logFileWhat: string;
  logLevel: string;
  sampleIntervalMs: number;
  nvmeLatencyUs: number;
  nvmeBandwidth: number;
  /** A run with no I/O completed for this long ends with a stall report (exit 1). */
  stallMs: number;
  /** Scheduled tunable changes (--tune AT:NAME=VALUE). */
  tune: TuneStep[];
  /** Fault injection for testing the failure path: a thread throws at a time (--inject-fault). */
  injectFault: { thread: string; atMs: number } | undefined;
  /** The allocator's policy under pressure (policy.ts); --throttle on means throttle. */
  policy: PolicyName;
  /** [RFC] swiotlb throttling (CONFIG_SWIOTLB_THROTTLE): policy === 'throttle'. */
  throttle: boolean;
  /** [proposal] --policy hybrid: the timed wait's bound, ms of the run's clock (src/swiotlb/hybrid.ts). */
  hybridTimeoutMs: number;
  /** [proposal] --policy cma: the CMA area's size (memory/cma.ts); 0 for the other policies. */
  cmaBytes: number;
  /** [proposal] --grow-limit: bytes the default and dynamic pools may hold together (grow-limit.ts); undefined: none. */
  growLimitBytes: number | undefined;
  /**
   * [emulator] Boot the default pool with exactly this many slots, skipping the kernel's round-up to
   * a power of two (what `npm run size` probes between powers of two); undefined: the kernel's sizing.
   */
  exactNslabs: number | undefined;
  /** Thresholds at boot; undefined means the RFC's defaults (70% and 65% of nslabs). */
  highThrottle: ThrottleThreshold | undefined;
  lowThrottle: ThrottleThreshold | undefined;
  /** A throttle waiter parked this long while the holder makes no progress is a stall. */
  throttleStallMs: number;
  /** CONFIG_SWIOTLB_DYNAMIC (mainline >= v6.6): the default allocator may grow; off by default, as in the kernel config. */
  swiotlbDynamic: boolean;
  /** --time-scale K: the run's clock (the device model, the workload, every reported time) runs K times slower than the wall. */
  timeScale: number;
  /** Guest physical memory's starting state (src/memory): a /proc/buddyinfo snapshot (beats the level). */
  buddyinfo: { lines: readonly BuddyinfoLine[]; source: string } | undefined;
  fragmentation: FragmentationLevel;
  /** set_memory_decrypted's modelled cost, ns per MiB (0: no figure to cite; see src/memory/arena.ts). */
  decryptLatencyNsPerMiB: number;
  /** Capacity of the decrypted-memory arena; undefined: the guest's RAM (at most 4 GiB). */
  decryptedArenaBytes: number | undefined;
  /** --churn RATE[,HOLD]: page-cache churn during the run (src/memory/churn.ts); undefined: off. */
  churn: { ratePagesPerSec: number; holdBytes: number } | undefined;
  /** Exit 3 when the run had I/O errors, dropped packets or bad verify sectors (--fail-on-errors). */
  failOnErrors: boolean;
  /** --trace-file: the run's DMA calls as tracefs text (src/trace/writer.ts); undefined: none. */
  traceFile: string | undefined;
  /** Spins on a contended area lock before parking (COCO_LOCK_SPINS). */
  lockSpins: number;
  /** Longest single park on an area lock word (COCO_LOCK_PARK_TIMEOUT). */
  lockParkTimeoutMs: number;
  /** Restricted DMA pools (--restricted-pool DEV=SIZE, COCO_RESTRICTED_POOL): a device's own io_tlb_mem. */
  restrictedPools: RestrictedPoolSpec[];
}

/** A throttle threshold as given: a slot count, or a percentage of nslabs resolved at boot. */
export type ThrottleThreshold = { slots: number } | { percent: number };

/** Slots of a threshold for a pool of nslabs slots (a percentage rounds down, as the RFC's defaults do). */
export function thresholdSlots(t: ThrottleThreshold, nslabs: number): number {
  return 'slots' in t ? t.slots : Math.floor((nslabs * t.percent) / 100);
}

const CHURN_FORM = 'RATE[,HOLD]: pages per second and the most the cache holds (default a quarter of --mem), e.g. 20000 or 20000,512M';

const THRESHOLD_FORM = 'a slot count (e.g. 22937) or a percentage of nslabs (e.g. 70%)';

export function parseThreshold(text: string, what: string): ThrottleThreshold {
  const t = text.trim();
  if (t.endsWith('%')) return { percent: parsePercent(t, what, 0, 100) };
  if (!/^\d+$/.test(t)) throw new InputError('EBADFLAG', `${what}: ${quote(text)} is not valid; expected ${THRESHOLD_FORM}`);
  return { slots: parseIntInRange(t, what, 0, 2 ** 31 - 1) };
}

export const VM_FLAGS: readonly FlagSpec[] = [
  { name: 'vcpus', kind: 'string', form: 'N', env: 'COCO_VCPUS', help: 'vCPU threads, 1..256' },
  { name: 'mem', kind: 'string', form: 'SIZE', env: 'COCO_MEM', help: 'guest memory, at least 256M, e.g. 16G' },
  { name: 'swiotlb', kind: 'string', form: 'SIZE', env: 'COCO_SWIOTLB', default: 'the CoCo rule, 6% of --mem in 64M..1G', help: 'pool size, up to 1G, e.g. 64M (64M is the kernel\'s default and becomes the CoCo size: see the warning)' },
  { name: 'cmdline', kind: 'string', form: 'TEXT', env: 'COCO_CMDLINE', help: 'kernel command line, e.g. "swiotlb=32768,16,force" (swiotlb=<nslabs>[,<nareas>][,force|noforce], coherent_pool=<size>, nvme.poll_queues=<N>)' },
  { name: 'runtime', kind: 'string', form: 'DURATION', env: 'COCO_RUNTIME', help: 'run length or cap, e.g. 10s, 2m' },
  { name: 'size', kind: 'string', form: 'SIZE', default: 'no cap', help: 'cap on each job\'s size, e.g. 64M' },
  { name: 'job', kind: 'string', form: 'FILE', default: 'a mixed random storage job on every vCPU', help: 'fio job file' },
  { name: 'seed', kind: 'string', form: 'N', env: 'COCO_SEED', help: 'seed of the workload\'s random choices, 0..2147483647' },
  { name: 'output-format', kind: 'string', form: 'normal|json', env: 'COCO_OUTPUT_FORMAT', help: 'the report as text or as one JSON document' },
  { name: 'log-file', kind: 'string', form: 'FILE', env: 'COCO_LOG_FILE', help: 'NDJSON log file (its directory must exist)' },
  { name: 'log-level', kind: 'string', form: 'LEVEL', env: 'COCO_LOG_LEVEL', help: `the log's level: ${LEVELS_TEXT}` },
  { name: 'sample-interval', kind: 'string', form: 'DURATION', env: 'COCO_SAMPLE_INTERVAL', help: `how often the run is sampled (progress line, sample records, stall watchdog), ${SAMPLE_BOUNDS_TEXT}` },
  { name: 'nvme-latency', kind: 'string', form: 'DURATION', env: 'COCO_NVME_LATENCY', help: `nvme0's per-command latency, ${LATENCY_BOUNDS_TEXT}, e.g. 20us` },
  { name: 'nvme-bandwidth', kind: 'string', form: 'SIZE', env: 'COCO_NVME_BANDWIDTH', help: `nvme0's bytes per second, ${BANDWIDTH_BOUNDS_TEXT}, e.g. 2G` },
  { name: 'tune', kind: 'string', form: 'AT:NAME=VALUE', repeatable: true, help: 'change a tunable during the run, e.g. 2s:io_tlb_used_hiwater=0 (the tunables are listed below)' },
  { name: 'stall-timeout', kind: 'string', form: 'DURATION', env: 'COCO_STALL_TIMEOUT', help: 'end the run (exit 1) when no I/O completes for this long while I/O is expected, e.g. 15s' },
  { name: 'fail-on-errors', kind: 'boolean', env: 'COCO_FAIL_ON_ERRORS', help: 'exit 3 when the run had I/O errors, dropped packets or bad verify sectors' },
  { name: 'policy', kind: 'string', form: 'static|throttle|dynamic|hybrid|cma', env: 'COCO_POLICY', help: 'the allocator under pressure: static, throttle ([RFC]), dynamic (= --swiotlb-dynamic on), hybrid ([proposal], Robin Murphy: a timed throttle wait, then a synchronous growth) or cma ([proposal], Alexander Graf: growth into a CMA area reserved at boot)' },
  { name: 'grow-limit', kind: 'string', form: 'SIZE', env: 'COCO_GROW_LIMIT', default: 'none', help: '[proposal] --policy dynamic or hybrid: the most the default and dynamic pools may hold together (transient pools not counted), at least the default pool, e.g. 64M' },
  { name: 'cma', kind: 'string', form: 'SIZE', env: 'COCO_CMA', default: 'the CoCo rule\'s size, 6% of --mem in 64M..1G', help: '[proposal] --policy cma: the CMA area reserved at boot below 4 GiB for growth (movable allocations may borrow it), whole 4M blocks, e.g. 256M' },
  { name: 'hybrid-timeout', kind: 'string', form: 'DURATION', env: 'COCO_HYBRID_TIMEOUT', help: `[proposal] --policy hybrid: longest wait of a MAY_BLOCK map above the threshold before it grows the pool from its own context, ${durationBoundsText(HYBRID_TIMEOUT_BOUNDS)} (0 grows at once)` },
  { name: 'throttle', kind: 'boolean', env: 'COCO_THROTTLE', help: '[RFC] swiotlb throttling of MAY_BLOCK maps, on or off (on means --policy throttle)' },
  { name: 'high-throttle', kind: 'string', form: 'SLOTS|N%', env: 'COCO_HIGH_THROTTLE', default: 'the RFC\'s 70%', help: `high_throttle: ${THRESHOLD_FORM}` },
  { name: 'low-throttle', kind: 'string', form: 'SLOTS|N%', env: 'COCO_LOW_THROTTLE', default: 'the RFC\'s 65%', help: `low_throttle: ${THRESHOLD_FORM}` },
  { name: 'throttle-stall-timeout', kind: 'string', form: 'DURATION', env: 'COCO_THROTTLE_STALL_TIMEOUT', help: 'report a stall when a throttle waiter is parked this long behind a holder that makes no progress, e.g. 5s' },
  { name: 'buddyinfo', kind: 'string', form: 'FILE', env: 'COCO_BUDDYINFO', default: 'none', help: 'guest memory starts with the free blocks of this /proc/buddyinfo copy' },
  { name: 'fragmentation', kind: 'string', form: 'LEVEL', env: 'COCO_FRAGMENTATION', help: `guest memory's starting fragmentation: ${FRAGMENTATION_FORM}` },
  { name: 'decrypt-latency', kind: 'string', form: 'DURATION', env: 'COCO_DECRYPT_LATENCY', help: 'set_memory_decrypted cost per MiB, e.g. 200us' },
  { name: 'churn', kind: 'string', form: 'off|RATE[,HOLD]', env: 'COCO_CHURN', help: `page-cache churn while the VM runs: off or ${CHURN_FORM}` },
  { name: 'decrypted-arena', kind: 'string', form: 'SIZE', env: 'COCO_DECRYPTED_ARENA', default: '--mem, at most 4G', help: 'bytes for memory decrypted after boot (dynamic pools, atomic pools), e.g. 1G' },
  { name: 'swiotlb-dynamic', kind: 'boolean', env: 'COCO_SWIOTLB_DYNAMIC', help: 'dynamic swiotlb (CONFIG_SWIOTLB_DYNAMIC): the growth worker and transient pools, on or off' },
  { name: 'restricted-pool', kind: 'string', form: 'DEV=SIZE', env: 'COCO_RESTRICTED_POOL', repeatable: true, default: 'none', help: `a restricted DMA pool (CONFIG_DMA_RESTRICTED_POOL) for a device: its own io_tlb_mem, one area, never grows; ${RESTRICTED_POOL_FORM}` },
  { name: 'exact-nslabs', kind: 'string', form: 'N', default: 'the kernel\'s sizing', help: '[emulator] a default pool of exactly N slots, a multiple of 128 x areas, not rounded up to a power of two as the kernel does (what npm run size probes)' },
  { name: 'time-scale', kind: 'string', form: 'K', env: 'COCO_TIME_SCALE', help: 'run the emulated clock K times slower than the wall (K host-CPU us per emulated us), 1..10000' },
  { name: 'lock-spins', kind: 'string', form: 'N', env: 'COCO_LOCK_SPINS', help: `spins on a contended area lock before parking, 0..${MAX_LOCK_SPINS}` },
  { name: 'lock-park-timeout', kind: 'string', form: 'DURATION', env: 'COCO_LOCK_PARK_TIMEOUT', help: `longest single park on an area lock word, ${PARK_BOUNDS_TEXT}` },
  { name: 'trace-file', kind: 'string', form: 'FILE', default: 'none', help: 'write the run\'s DMA calls as tracefs text (dma_map_phys, dma_unmap_phys, dma_map_sg, dma_unmap_sg, swiotlb_bounced), which npm run replay reads' },
  { name: 'inject-fault', kind: 'string', form: 'THREAD@TIME', default: 'none', help: 'make a thread throw, THREAD one of vcpuN (N without leading zeros), nvme0, eth0, e.g. vcpu3@500ms (tests the failure path)' },
];

export function parseVmOptions(argv: readonly string[]): VmOptions {
  let f: ParsedFlags;
  try {
    f = parseFlags(argv, VM_FLAGS, 'vm');
  } catch (e) {
    if (e instanceof HelpRequested) throw new HelpRequested(e.text + tunablesHelp());
    throw e;
  }
  const get = (flag: string): [string, string] => {
    const s = f.setting(flag);
    return [s.value, s.what];
  };
  const [vcpus, vcpusWhat] = get('vcpus');
  const [mem, memWhat] = get('mem');
  const [runtime, rtWhat] = get('runtime');
  const [seed, seedWhat] = get('seed');
  const [fmt, fmtWhat] = get('output-format');
  const [logFile, logFileWhat] = get('log-file');
  const [level, levelWhat] = get('log-level');
  const [sample, sampleWhat] = get('sample-interval');
  const [stall, stallWhat] = get('stall-timeout');
  // One precedence for every name of the policy (ParsedFlags.setting's rank): policy.ts resolvePolicy.
  const policyName = resolvePolicy(f.setting('policy'), f.setting('throttle'), f.setting('swiotlb-dynamic'));
  knobOfPolicy(f, 'hybrid-timeout', policyName, ['hybrid']);
  knobOfPolicy(f, 'grow-limit', policyName, ['dynamic', 'hybrid']);
  knobOfPolicy(f, 'cma', policyName, ['cma']);
  const [cma, cmaWhat] = get('cma');
  const cmaSize = parseCma(cma, cmaWhat, parseSize(mem, memWhat)); // read and checked whatever the policy
  const [growLimit, growLimitWhat] = get('grow-limit');
  const [hybridTimeout, hybridTimeoutWhat] = get('hybrid-timeout');
  const [tscale, tscaleWhat] = get('time-scale');
  const [buddyinfo, buddyinfoWhat] = get('buddyinfo');
  const [frag, fragWhat] = get('fragmentation');
  const [decrypt, decryptWhat] = get('decrypt-latency');
  const [arena, arenaWhat] = get('decrypted-arena');
  const [churn, churnWhat] = get('churn');
  const [failOnErrors, failWhat] = get('fail-on-errors');
  const [high, highWhat] = get('high-throttle');
  const [low, lowWhat] = get('low-throttle');
  const [tstall, tstallWhat] = get('throttle-stall-timeout');
  const [latency, latencyWhat] = get('nvme-latency');
  const [bandwidth, bandwidthWhat] = get('nvme-bandwidth');
  // Repeatable: every flag value (each may be a comma list), else the variable's comma list.
  const restricted = f.has('restricted-pool') ? { values: f.all('restricted-pool'), what: '--restricted-pool' } : { values: [get('restricted-pool')[0]], what: get('restricted-pool')[1] };
  const [spins, spinsWhat] = get('lock-spins');
  const [park, parkWhat] = get('lock-park-timeout');
  if (fmt !== 'normal' && fmt !== 'json') throw new InputError('EBADFLAG', `${fmtWhat}: ${quote(fmt)} is not valid; expected normal or json`);
  if (!LEVELS.includes(level)) throw new InputError('EBADFLAG', `${levelWhat}: ${quote(level)} is not valid; expected one of ${LEVELS_TEXT}`);
  const { swiotlbBytes, cmdline } = poolSize(f.setting('swiotlb'), f.setting('cmdline'));
  const memBytes = parseSize(mem, memWhat);
  if (memBytes < 256 * 1024 * 1024) throw new InputError('EBADSIZE', `${memWhat}: ${quote(mem)} is too small; expected at least 256M`);
  const runtimeMs = parseDurationInRange(runtime, rtWhat, { minMs: 0, minExclusive: true, maxMs: MAX_TIMER_MS });
  const nvcpus = parseIntInRange(vcpus, vcpusWhat, 1, 256);
  const timeScale = parseIntInRange(tscale, tscaleWhat, 1, 10_000);
  const tune = parseTuneSteps(f.all('tune'), '--tune');
  // A --tune time is on the run's clock: its timer waits K times as long in wall time.
  for (const step of tune) {
    if (step.atMs * timeScale > MAX_TIMER_MS) {
      throw new InputError('EBADDURATION', `--tune: ${quote(formatDurationMs(step.atMs))} at time scale ${timeScale} is ${formatDurationMs(step.atMs * timeScale)} of wall time, longer than a Node timer honours; expected at most ${formatDurationMs(Math.floor(MAX_TIMER_MS / timeScale))} (2^31-1 ms / ${timeScale})`);
    }
  }
  return {
    vcpus: nvcpus,
    memBytes,
    swiotlbBytes,
    cmdline,
    runtimeMs,
    sizeCapBytes: f.has('size') ? parseSize(f.get('size')!, '--size', 1) : Infinity,
    jobFile: f.get('job'),
    seed: parseIntInRange(seed, seedWhat, 0, 2 ** 31 - 1),
    outputFormat: fmt,
    logFile: logFile === '' ? undefined : logFile,
    logFileWhat,
    logLevel: level,
    sampleIntervalMs: parseDurationInRange(sample, sampleWhat, SAMPLE_BOUNDS),
    nvmeLatencyUs: parseNvmeLatencyUs(latency, latencyWhat),
    nvmeBandwidth: parseNvmeBandwidth(bandwidth, bandwidthWhat),
    stallMs: parseDurationInRange(stall, stallWhat, { minMs: 0, minExclusive: true, maxMs: MAX_TIMER_MS }),
    tune,
    injectFault: f.has('inject-fault') ? parseFault(f.get('inject-fault')!, nvcpus) : undefined,
    failOnErrors: parseOnOff(failOnErrors, failWhat),
    policy: policyName,
    throttle: policyName === 'throttle',
    hybridTimeoutMs: parseDurationInRange(hybridTimeout, hybridTimeoutWhat, HYBRID_TIMEOUT_BOUNDS),
    growLimitBytes: growLimit === '' ? undefined : parseGrowLimit(growLimit, growLimitWhat),
    cmaBytes: policyName === 'cma' ? cmaSize : 0,
    exactNslabs: f.has('exact-nslabs') ? parseExactNslabs(f.get('exact-nslabs')!, f.has('swiotlb') || (f.has('cmdline') && parseSwiotlbCmdline(f.get('cmdline')!).nslabs !== undefined)) : undefined,
    highThrottle: high === '' ? undefined : parseThreshold(high, highWhat),
    lowThrottle: low === '' ? undefined : parseThreshold(low, lowWhat),
    throttleStallMs: parseDurationInRange(tstall, tstallWhat, { minMs: 0, minExclusive: true, maxMs: MAX_TIMER_MS }),
    // CONFIG_SWIOTLB_DYNAMIC: the dynamic policy and the ones built on it (hybrid, cma).
    swiotlbDynamic: GROWING_POLICIES.has(policyName),
    timeScale,
    buddyinfo: buddyinfo === '' ? undefined : { lines: readBuddyinfoFile(buddyinfo, buddyinfoWhat), source: buddyinfo },
    fragmentation: parseFragmentation(frag, fragWhat),
    decryptLatencyNsPerMiB: parseDurationInRange(decrypt, decryptWhat, { minMs: 0, maxMs: 60_000 }, 1e-6) * 1e6,
    decryptedArenaBytes: arena === '' ? undefined : parseArenaSize(arena, arenaWhat),
    churn: parseChurn(churn, churnWhat, memBytes),
    traceFile: f.get('trace-file'),
    lockSpins: parseIntInRange(spins, spinsWhat, 0, MAX_LOCK_SPINS),
    lockParkTimeoutMs: parseDurationInRange(park, parkWhat, PARK_BOUNDS),
    restrictedPools: parseRestrictedPools(restricted.values, restricted.what, VM_DEVICES),
  };
}

/**
 * --swiotlb and --cmdline's swiotlb=<nslabs> both size the pool. One precedence for both: the value
 * from the higher layer (flag, environment, ./.env, .env.example) wins and the other's size is
 * dropped (the command line's areas and force stay); two from the same layer are a conflict.
 */
function poolSize(sw: Setting, cl: Setting): { swiotlbBytes: number | undefined; cmdline: string } {
  const cmdSizes = cl.value !== '' && parseSwiotlbCmdline(cl.value, cl.what).nslabs !== undefined;
  if (sw.value === '' || !cmdSizes) {
    return { swiotlbBytes: sw.value === '' ? undefined : parseSize(sw.value, sw.what), cmdline: cl.value };
  }
  if (sw.rank === cl.rank) {
    throw new InputError('EBADFLAG', `${sw.what} and ${cl.what} (swiotlb=<nslabs>) both size the pool; give one of them`);
  }
  if (sw.rank > cl.rank) return { swiotlbBytes: parseSize(sw.value, sw.what), cmdline: cl.value };
  return { swiotlbBytes: undefined, cmdline: cl.value };
}

function parseExactNslabs(text: string, sized: boolean): number {
  if (sized) throw new InputError('EBADFLAG', '--exact-nslabs and --swiotlb/--cmdline all size the pool; give one of them');
  // The multiple of 128 x areas is checked at boot, where the area count is known.
  return parseIntInRange(text, '--exact-nslabs', 128, 1 << 19);
}

function parseChurn(text: string, what: string, memBytes: number): { ratePagesPerSec: number; holdBytes: number } | undefined {
  if (text === 'off') return undefined;
  const [rate, hold, extra] = text.split(',');
  if (extra !== undefined || rate === undefined || !/^\d+$/.test(rate.trim())) {
    throw new InputError('EBADFLAG', `${what}: ${quote(text)} is not valid; expected off or ${CHURN_FORM}`);
  }
  const ratePagesPerSec = parseIntInRange(rate, what, 1, 10_000_000);
  const holdBytes = hold === undefined ? Math.floor(memBytes / 4) : parseSize(hold, what);
  if (holdBytes < PAGE_SIZE || holdBytes > memBytes) {
    throw new InputError('EBADFLAG', `${what}: ${quote(text)}: the cache must hold from 4k to --mem (${memBytes} bytes); expected ${CHURN_FORM}`);
  }
  return { ratePagesPerSec, holdBytes };
}

/** --grow-limit: whole slots, up to the decrypted arena's largest (4 GiB); the default pool's size is checked at boot. */
function parseGrowLimit(text: string, what: string): number {
  const bytes = parseSize(text, what);
  if (bytes < IO_TLB_SIZE || bytes > MAX_ARENA_BYTES || bytes % IO_TLB_SIZE !== 0) {
    throw new InputError('EBADSIZE', `${what}: ${quote(text)} is not valid; expected a size in whole 2 KiB slots up to 4G, at least the default pool, e.g. 64M`);
  }
  return bytes;
}

/** --cma: whole 4 MiB blocks (a dynamic pool's largest), below 4 GiB; empty: the CoCo rule's size rounded up to 4 MiB. */
function parseCma(text: string, what: string, memBytes: number): number {
  const four = 4 * 1024 * 1024;
  if (text === '') return Math.ceil(cocoSwiotlbBytes(memBytes) / four) * four;
  const bytes = parseSize(text, what);
  if (bytes < four || bytes > 3 * 1024 ** 3 || bytes % four !== 0) {
    throw new InputError('EBADSIZE', `${what}: ${quote(text)} is not valid; expected whole 4M blocks from 4M to 3G (below 4 GiB), e.g. 256M`);
  }
  return bytes;
}

function parseArenaSize(text: string, what: string): number {
  const bytes = parseSize(text, what);
  if (bytes < PAGE_SIZE || bytes > MAX_ARENA_BYTES || bytes % PAGE_SIZE !== 0) {
    throw new InputError('EBADSIZE', `${what}: ${quote(text)} is not valid; expected a whole number of 4 KiB pages from 4k to 4G`);
  }
  return bytes;
}

const FAULT_FORM = 'THREAD@TIME with THREAD one of vcpuN (N a vCPU number without leading zeros), nvme0, eth0, e.g. vcpu3@500ms';

/** --inject-fault: the thread must be one the VM runs, named exactly as its threads are (vcpu3, not vcpu03). */
export function parseFault(text: string, vcpus: number): { thread: string; atMs: number } {
  const at = text.indexOf('@');
  const thread = at < 0 ? text : text.slice(0, at);
  const m = /^vcpu(0|[1-9]\d*)$/.exec(thread);
  if (at < 0 || !(thread === 'nvme0' || thread === 'eth0' || (m !== null && Number(m[1]) < vcpus))) {
    throw new InputError('EBADFLAG', `--inject-fault: ${quote(text)} is not valid; expected ${FAULT_FORM} (vCPUs vcpu0..vcpu${vcpus - 1})`);
  }
  return { thread, atMs: parseDurationInRange(text.slice(at + 1), '--inject-fault', { minMs: 0, maxMs: MAX_TIMER_MS }) };
}
