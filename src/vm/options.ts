// The VM's options: .env.example defaults, overridden by the environment, then by flags; validated
// once here so the rest of the VM can trust them.
import { configValue, envOrigin } from '../config.js';
import { InputError } from '../errors.js';
import { type FlagSpec, parseFlags, parseOnOff } from '../cli/flags.js';
import { parseDuration, parseIntInRange, parsePercent, parseSize } from '../util/units.js';
import { type TuneStep, parseTuneSteps } from './control.js';
import { MAX_ARENA_BYTES } from '../memory/arena.js';
import { type BuddyinfoLine, FRAGMENTATION_FORM, type FragmentationLevel, parseFragmentation, readBuddyinfoFile } from '../memory/buddyinfo.js';
import { PAGE_SIZE } from '../memory/phys.js';
import { type Origin, type PolicyName, resolvePolicy } from './policy.js';

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
  if (!/^\d+$/.test(t)) throw new InputError('EBADFLAG', `${what}: "${text}" is not valid; expected ${THRESHOLD_FORM}`);
  return { slots: parseIntInRange(t, what, 0, 2 ** 31 - 1) };
}

export const VM_FLAGS: readonly FlagSpec[] = [
  { name: 'vcpus', kind: 'string', help: 'vCPU threads, 1..256' },
  { name: 'mem', kind: 'string', help: 'guest memory, e.g. 16G' },
  { name: 'swiotlb', kind: 'string', help: 'pool size, e.g. 64M (default: the CoCo rule)' },
  { name: 'cmdline', kind: 'string', help: 'kernel command line, e.g. "swiotlb=32768,16,force"' },
  { name: 'runtime', kind: 'string', help: 'run length or cap, e.g. 10s, 2m' },
  { name: 'size', kind: 'string', help: 'cap on each job\'s size, e.g. 64M' },
  { name: 'job', kind: 'string', help: 'fio job file' },
  { name: 'seed', kind: 'string', help: 'seed of the workload\'s random choices' },
  { name: 'output-format', kind: 'string', help: 'normal or json' },
  { name: 'log-file', kind: 'string', help: 'NDJSON log file' },
  { name: 'log-level', kind: 'string', help: 'trace, debug, info, warn, error' },
  { name: 'nvme-latency', kind: 'string', help: 'per-command latency, e.g. 20us' },
  { name: 'nvme-bandwidth', kind: 'string', help: 'bytes per second, e.g. 2G' },
  { name: 'tune', kind: 'string', repeatable: true, help: 'change a tunable during the run, AT:NAME=VALUE, e.g. 2s:io_tlb_used_hiwater=0' },
  { name: 'stall-timeout', kind: 'string', help: 'end the run when no I/O completes for this long, e.g. 15s' },
  { name: 'policy', kind: 'string', help: 'the allocator under pressure: static, or throttle ([RFC]); dynamic, hybrid and cma need dynamic swiotlb' },
  { name: 'throttle', kind: 'boolean', help: '[RFC] swiotlb throttling of MAY_BLOCK maps, on or off (on means --policy throttle)' },
  { name: 'high-throttle', kind: 'string', help: `high_throttle: ${THRESHOLD_FORM}` },
  { name: 'low-throttle', kind: 'string', help: `low_throttle: ${THRESHOLD_FORM}` },
  { name: 'throttle-stall-timeout', kind: 'string', help: 'report a stall when a throttle waiter is parked this long behind a holder that makes no progress, e.g. 5s' },
  { name: 'buddyinfo', kind: 'string', help: 'guest memory starts with the free blocks of this /proc/buddyinfo copy' },
  { name: 'fragmentation', kind: 'string', help: `guest memory's starting fragmentation: ${FRAGMENTATION_FORM}` },
  { name: 'decrypt-latency', kind: 'string', help: 'set_memory_decrypted cost per MiB, e.g. 200us (default 0)' },
  { name: 'churn', kind: 'string', help: `page-cache churn while the VM runs: off or ${CHURN_FORM}` },
  { name: 'decrypted-arena', kind: 'string', help: 'bytes for memory decrypted after boot (dynamic pools, atomic pools), e.g. 1G (default: --mem, at most 4G)' },
  { name: 'swiotlb-dynamic', kind: 'boolean', help: 'dynamic swiotlb (CONFIG_SWIOTLB_DYNAMIC): the growth worker and transient pools, on or off' },
  { name: 'exact-nslabs', kind: 'string', help: '[emulator] a default pool of exactly N slots, a multiple of 128 x areas, not rounded up to a power of two as the kernel does (what npm run size probes)' },
  { name: 'time-scale', kind: 'string', help: 'run the emulated clock K times slower than the wall (K host-CPU us per emulated us), 1..10000' },
  { name: 'inject-fault', kind: 'string', help: 'make a thread throw, THREAD@TIME, e.g. vcpu3@500ms or nvme0@1s (tests the failure path)' },
];

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

export function parseVmOptions(argv: readonly string[]): VmOptions {
  const f = parseFlags(argv, VM_FLAGS, 'vm');
  const get = (flag: string, env: string): [string, string] =>
    f.has(flag) ? [f.get(flag)!, `--${flag}`] : [configValue(env), envOrigin(env)];
  const [vcpus, vcpusWhat] = get('vcpus', 'COCO_VCPUS');
  const [mem, memWhat] = get('mem', 'COCO_MEM');
  const [swiotlb, swWhat] = get('swiotlb', 'COCO_SWIOTLB');
  const [cmdline] = get('cmdline', 'COCO_CMDLINE');
  const [runtime, rtWhat] = get('runtime', 'COCO_RUNTIME');
  const [seed, seedWhat] = get('seed', 'COCO_SEED');
  const [fmt, fmtWhat] = get('output-format', 'COCO_OUTPUT_FORMAT');
  const [logFile] = get('log-file', 'COCO_LOG_FILE');
  const [level, levelWhat] = get('log-level', 'COCO_LOG_LEVEL');
  const [sample, sampleWhat] = [configValue('COCO_SAMPLE_INTERVAL'), envOrigin('COCO_SAMPLE_INTERVAL')];
  const [stall, stallWhat] = get('stall-timeout', 'COCO_STALL_TIMEOUT');
  const [throttle, throttleWhat] = get('throttle', 'COCO_THROTTLE');
  const [policy, policyWhat] = get('policy', 'COCO_POLICY');
  const origin = (flag: string, env: string): Origin => (f.has(flag) ? 'flag' : process.env[env] !== undefined ? 'environment' : 'default');
  const policyName = resolvePolicy(
    { value: policy, origin: origin('policy', 'COCO_POLICY'), what: policyWhat },
    { value: parseOnOff(throttle, throttleWhat), origin: origin('throttle', 'COCO_THROTTLE'), what: throttleWhat },
  );
  const [high, highWhat] = get('high-throttle', 'COCO_HIGH_THROTTLE');
  const [low, lowWhat] = get('low-throttle', 'COCO_LOW_THROTTLE');
  const [tstall, tstallWhat] = get('throttle-stall-timeout', 'COCO_THROTTLE_STALL_TIMEOUT');
  const [dynamic, dynamicWhat] = get('swiotlb-dynamic', 'COCO_SWIOTLB_DYNAMIC');
  const [tscale, tscaleWhat] = get('time-scale', 'COCO_TIME_SCALE');
  const [buddyinfo, buddyinfoWhat] = get('buddyinfo', 'COCO_BUDDYINFO');
  const [frag, fragWhat] = get('fragmentation', 'COCO_FRAGMENTATION');
  const [decrypt, decryptWhat] = get('decrypt-latency', 'COCO_DECRYPT_LATENCY');
  const [arena, arenaWhat] = get('decrypted-arena', 'COCO_DECRYPTED_ARENA');
  const [churn, churnWhat] = get('churn', 'COCO_CHURN');
  if (fmt !== 'normal' && fmt !== 'json') throw new InputError('EBADFLAG', `${fmtWhat}: "${fmt}" is not valid; expected normal or json`);
  if (!LEVELS.includes(level)) throw new InputError('EBADFLAG', `${levelWhat}: "${level}" is not valid; expected one of ${LEVELS.join(', ')}`);
  if (f.has('swiotlb') && f.has('cmdline')) {
    throw new InputError('EBADFLAG', '--swiotlb and --cmdline both size the pool; give one of them');
  }
  const memBytes = parseSize(mem, memWhat);
  if (memBytes < 256 * 1024 * 1024) throw new InputError('EBADSIZE', `${memWhat}: "${mem}" is too small; expected at least 256M`);
  const runtimeMs = parseDuration(runtime, rtWhat);
  if (!(runtimeMs > 0)) throw new InputError('EBADDURATION', `${rtWhat}: "${runtime}" must be longer than 0; expected e.g. 10s`);
  const nvcpus = parseIntInRange(vcpus, vcpusWhat, 1, 256);
  return {
    vcpus: nvcpus,
    memBytes,
    swiotlbBytes: swiotlb === '' ? undefined : parseSize(swiotlb, swWhat),
    cmdline,
    runtimeMs,
    sizeCapBytes: f.has('size') ? parseSize(f.get('size')!, '--size', 1) : Infinity,
    jobFile: f.get('job'),
    seed: parseIntInRange(seed, seedWhat, 0, 2 ** 31 - 1),
    outputFormat: fmt,
    logFile: logFile === '' ? undefined : logFile,
    logLevel: level,
    sampleIntervalMs: parseDuration(sample, sampleWhat),
    nvmeLatencyUs: f.has('nvme-latency') ? parseDuration(f.get('nvme-latency')!, '--nvme-latency', 1) * 1000 : 20,
    nvmeBandwidth: f.has('nvme-bandwidth') ? parseSize(f.get('nvme-bandwidth')!, '--nvme-bandwidth') : 2 * 1024 ** 3,
    stallMs: parseDuration(stall, stallWhat),
    tune: parseTuneSteps(f.all('tune'), '--tune'),
    injectFault: f.has('inject-fault') ? parseFault(f.get('inject-fault')!, nvcpus) : undefined,
    policy: policyName,
    throttle: policyName === 'throttle',
    exactNslabs: f.has('exact-nslabs') ? parseExactNslabs(f.get('exact-nslabs')!, f.has('swiotlb') || f.has('cmdline')) : undefined,
    highThrottle: high === '' ? undefined : parseThreshold(high, highWhat),
    lowThrottle: low === '' ? undefined : parseThreshold(low, lowWhat),
    throttleStallMs: parseDuration(tstall, tstallWhat),
    swiotlbDynamic: parseOnOff(dynamic, dynamicWhat),
    timeScale: parseIntInRange(tscale, tscaleWhat, 1, 10_000),
    buddyinfo: buddyinfo === '' ? undefined : { lines: readBuddyinfoFile(buddyinfo, buddyinfoWhat), source: buddyinfo },
    fragmentation: parseFragmentation(frag, fragWhat),
    decryptLatencyNsPerMiB: parseDuration(decrypt, decryptWhat, 1e-6) * 1e6,
    decryptedArenaBytes: arena === '' ? undefined : parseArenaSize(arena, arenaWhat),
    churn: parseChurn(churn, churnWhat, memBytes),
  };
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
    throw new InputError('EBADFLAG', `${what}: "${text}" is not valid; expected off or ${CHURN_FORM}`);
  }
  const ratePagesPerSec = parseIntInRange(rate, what, 1, 10_000_000);
  const holdBytes = hold === undefined ? Math.floor(memBytes / 4) : parseSize(hold, what);
  if (holdBytes < PAGE_SIZE || holdBytes > memBytes) {
    throw new InputError('EBADFLAG', `${what}: "${text}": the cache must hold from 4k to --mem (${memBytes} bytes); expected ${CHURN_FORM}`);
  }
  return { ratePagesPerSec, holdBytes };
}

function parseArenaSize(text: string, what: string): number {
  const bytes = parseSize(text, what);
  if (bytes < PAGE_SIZE || bytes > MAX_ARENA_BYTES || bytes % PAGE_SIZE !== 0) {
    throw new InputError('EBADSIZE', `${what}: "${text}" is not valid; expected a whole number of 4 KiB pages from 4k to 4G`);
  }
  return bytes;
}

const FAULT_FORM = 'THREAD@TIME with THREAD one of vcpuN, nvme0, eth0, e.g. vcpu3@500ms';

function parseFault(text: string, vcpus: number): { thread: string; atMs: number } {
  const at = text.indexOf('@');
  const thread = at < 0 ? text : text.slice(0, at);
  const m = /^vcpu(\d+)$/.exec(thread);
  if (at < 0 || !(thread === 'nvme0' || thread === 'eth0' || (m !== null && Number(m[1]) < vcpus))) {
    throw new InputError('EBADFLAG', `--inject-fault: "${text}" is not valid; expected ${FAULT_FORM} (vCPUs 0..${vcpus - 1})`);
  }
  return { thread, atMs: parseDuration(text.slice(at + 1), '--inject-fault') };
}
