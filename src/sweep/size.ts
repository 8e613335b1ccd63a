// `npm run size`: the smallest pool that meets every target for a workload, and the inverse (the
// largest load a given pool serves). A loop over result records (run.ts): each probe is --repeat runs
// of one configuration, judged on its worst run, so noise cannot pass a size that fails sometimes.
//
// Probes are exact slot counts (--exact-nslabs: the kernel's areas, whole segments per area), so the
// search is not limited to powers of two; the answer is then the pool a kernel really boots for it:
// round_up_default_nslabs rounds swiotlb=<nslabs> up to a power of two whenever there are areas, and
// swiotlb_init_remap always sets them (swiotlb_adjust_nareas(num_possible_cpus())). The last step
// runs that pool through the kernel's own boot path (--cmdline swiotlb=<nslabs>,<nareas>) to give the
// high-water mark and margin there.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { type ParsedFlags, parseFlags } from '../cli/flags.js';
import { IO_TLB_SEGSIZE, IO_TLB_SIZE, roundupPowOfTwo } from '../swiotlb/constants.js';
import { planDefaultPool } from '../swiotlb/sizing.js';
import { THROTTLE_HIGH_PERCENT, THROTTLE_LOW_PERCENT } from '../swiotlb/throttle.js';
import { quote } from '../util/quote.js';
import { formatBytes, parseDuration, parseSize } from '../util/units.js';
import { type PolicyName, POLICIES, checkPolicyAvailable, parsePolicy } from '../vm/policy.js';
import { parseThreshold, thresholdSlots } from '../vm/options.js';
import { SWEEP_FLAGS, type SweepBase, parseSweepBase, runAll } from './compare.js';
import { runErrors } from '../vm/report.js';
import type { RunConfig, RunRecord } from './run.js';
import { parseReplayArgs, summarizeTrace } from '../trace/replay.js';

export const SIZE_FLAGS = [
  ...SWEEP_FLAGS,
  { name: 'policy', kind: 'string', form: 'static|throttle', default: 'static', help: 'the policy to size for' },
  { name: 'target', kind: 'string', form: 'FIGURE=MAX', default: 'failures=0', repeatable: true, help: 'a target every repeat must meet: failures=N, io_errors=N, p99=DUR, p999=DUR' },
  { name: 'swiotlb', kind: 'string', form: 'SIZE', default: 'none', help: 'with --find: the pool size to find the largest load for, e.g. 8M' },
  { name: 'find', kind: 'string', form: 'max-iodepth|max-vcpus', default: 'none (size the pool)', help: 'the inverse question for --swiotlb: max-iodepth or max-vcpus' },
  { name: 'trace', kind: 'string', form: 'FILE', default: 'none', help: 'size the pool for a kernel DMA trace (each probe replays it, as npm run replay) instead of --job; --vcpus defaults to its CPU count' },
  { name: 'speed', kind: 'string', form: 'X', default: '1', help: 'with --trace: replay X times faster than the trace\'s times' },
  { name: 'skip-bad-lines', kind: 'boolean', default: 'off', help: 'with --trace: count malformed trace lines instead of stopping' },
] as const;

/** A target: a figure of every run at most a bound. */
export interface Target {
  text: string;
  figure: 'failures' | 'io_errors' | 'p99' | 'p999';
  max: number;
}

const TARGET_FORM = 'failures=N, io_errors=N, p99=DUR or p999=DUR (e.g. failures=0, p99=5ms)';

export function parseTarget(text: string): Target {
  const m = /^\s*(failures|io_errors|p99|p999|p99\.9)\s*=\s*(\S+)\s*$/.exec(text);
  if (!m) throw new InputError('EBADFLAG', `--target: ${quote(text)} is not valid; expected ${TARGET_FORM}`);
  const name = m[1] === 'p99.9' ? 'p999' : (m[1] as Target['figure']);
  if (name === 'p99' || name === 'p999') return { text, figure: name, max: parseDuration(m[2]!, `--target ${name}`) * 1000 };
  if (!/^\d+$/.test(m[2]!)) throw new InputError('EBADFLAG', `--target: ${quote(text)}: ${name} takes a whole number; expected ${TARGET_FORM}`);
  return { text, figure: name, max: Number(m[2]) };
}

/** Why a run misses the targets; undefined when it meets them all. A run that did not end ok misses them. */
export function missed(r: RunRecord, targets: readonly Target[]): string | undefined {
  if (r.status !== 'ok' || r.report === undefined) return `${r.status}: ${r.reason ?? ''}`;
  const rep = r.report;
  const value = (t: Target): number | null => {
    switch (t.figure) {
      case 'failures': return rep.swiotlb.map_failures;
      case 'io_errors': return runErrors(rep).io_errors;
      case 'p99': return rep.storage_clat.ios === 0 ? null : rep.storage_clat.p99_us;
      case 'p999': return rep.storage_clat.ios === 0 ? null : rep.storage_clat.p999_us;
    }
  };
  const misses = targets.flatMap((t) => {
    const v = value(t);
    if (v === null) return [`${t.text}: the run has no storage requests to measure`];
    return v > t.max ? [`${t.figure} ${t.figure.startsWith('p') ? `${(v / 1000).toFixed(2)}ms` : v} > ${t.figure.startsWith('p') ? `${(t.max / 1000).toFixed(2)}ms` : t.max}`] : [];
  });
  return misses.length > 0 ? misses.join(', ') : undefined;
}

/** One probe: a configuration's repeats and the verdict on its worst. */
export interface Probe {
  /** What was varied: nslabs, iodepth or vcpus. */
  value: number;
  runs: RunRecord[];
  pass: boolean;
  /** The first failing run's reason. */
  why?: string;
  hiwater_max: number | null;
}

async function probe(configs: RunConfig[], value: number, targets: readonly Target[], base: SweepBase): Promise<Probe> {
  const runs = await runAll(configs, base.parallel);
  const why = runs.map((r) => missed(r, targets)).find((w) => w !== undefined);
  const hw = runs.flatMap((r) => (r.report !== undefined ? [r.report.swiotlb.io_tlb_used_hiwater] : []));
  return { value, runs, pass: why === undefined, ...(why !== undefined ? { why } : {}), hiwater_max: hw.length > 0 ? Math.max(...hw) : null };
}

/**
 * The smallest k in [lo, hi] with pass(k), assuming pass is monotone (a larger pool never does worse):
 * doubling from lo until a pass, then bisection between the last failure and that pass.
 */
export async function searchSmallest(lo: number, hi: number, pass: (k: number) => Promise<boolean>): Promise<number | null> {
  let fail = lo - 1;
  let k = lo;
  for (;;) {
    if (await pass(k)) break;
    fail = k;
    if (k >= hi) return null;
    k = Math.min(hi, k * 2);
  }
  let ok = k;
  while (ok - fail > 1) {
    const mid = Math.floor((ok + fail) / 2);
    if (await pass(mid)) ok = mid;
    else fail = mid;
  }
  return ok;
}

/** The largest k in [lo, hi] with pass(k), pass monotone decreasing: doubling up, then bisection. */
export async function searchLargest(lo: number, hi: number, pass: (k: number) => Promise<boolean>): Promise<number | null> {
  if (!(await pass(lo))) return null;
  let ok = lo;
  let fail = hi + 1;
  let k = Math.min(hi, lo * 2);
  while (k > ok) {
    if (await pass(k)) {
      ok = k;
      if (k >= hi) break;
      k = Math.min(hi, k * 2);
    } else {
      fail = k;
      break;
    }
  }
  while (fail - ok > 1) {
    const mid = Math.floor((ok + fail) / 2);
    if (await pass(mid)) ok = mid;
    else fail = mid;
  }
  return ok;
}

/**
 * A job file with every section's iodepth (and for max-vcpus numjobs) set: the line is put right after
 * each section header, after removing the file's own, so it holds whatever [global] said.
 */
export function overrideJob(text: string, set: Record<string, number>): string {
  const names = Object.keys(set);
  const out: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    const t = line.trim();
    const key = /^([a-z_]+)\s*(=|$)/i.exec(t)?.[1]?.toLowerCase();
    if (key !== undefined && names.includes(key)) continue;
    out.push(line);
    const header = /^\[(.+)\]$/.exec(t);
    if (header && header[1]!.trim().toLowerCase() !== 'global') for (const n of names) out.push(`${n}=${set[n]}`);
  }
  return out.join('\n') + '\n';
}

function probeDoc(p: Probe): Record<string, unknown> {
  return { value: p.value, pass: p.pass, ...(p.why !== undefined ? { why: p.why } : {}), hiwater_max: p.hiwater_max, runs: p.runs.map((r) => ({ seed: r.seed, repeat: r.config.repeat, status: r.status, ...(r.reason !== undefined ? { reason: r.reason } : {}) })) };
}

function out(c: Common, lines: string[], doc: Record<string, unknown>, status: number): SizeOutcome {
  return { text: c.base.outputFormat === 'json' ? JSON.stringify(doc) + '\n' : lines.join('\n') + '\n', status };
}

export interface SizeOutcome {
  text: string;
  status: number;
}

interface Common {
  base: SweepBase;
  policy: PolicyName;
  targets: Target[];
  /** --trace: the trace, its peak slots (the lower bound of any pool), and the runs' length. */
  trace?: { file: string; peakSlots: number; runtime: string; knobs: Record<string, string> };
}

async function parseCommon(f: ParsedFlags): Promise<Common> {
  const base = parseSweepBase(f);
  const policy = parsePolicy(f.get('policy') ?? 'static', '--policy');
  checkPolicyAvailable(policy, '--policy');
  const targets = (f.all('target').length > 0 ? f.all('target') : ['failures=0']).map(parseTarget);
  if (!f.has('trace')) return { base, policy, targets };
  // A trace as the workload: the same checks and first pass as npm run replay (src/trace/replay.ts).
  if (f.has('job')) throw new InputError('EBADFLAG', '--trace and --job are both a workload; give one of them');
  if (f.has('find')) throw new InputError('EBADFLAG', '--find with --trace: the inverse question needs a job file whose iodepth or numjobs can vary; size the pool for the trace instead');
  const bad = targets.find((t) => t.figure !== 'failures');
  if (bad !== undefined) throw new InputError('EBADFLAG', `--target ${bad.text}: a replayed trace has no I/O to measure; with --trace use failures=N`);
  const own = ['speed', 'skip-bad-lines'].flatMap((k) => (f.has(k) ? [`--${k}`, f.get(k)!] : []));
  const settings = parseReplayArgs([f.get('trace')!, ...own], () => '');
  const summary = await summarizeTrace(settings);
  if (!f.has('vcpus')) base.vcpus = Math.min(256, Math.max(1, summary.cpu_count));
  const runMs = Math.ceil((summary.last_us - summary.first_us) / 1000 / settings.speed) + 1000;
  const knobs: Record<string, string> = {};
  for (let i = 0; i < own.length; i += 2) knobs[own[i]!.slice(2)] = own[i + 1]!;
  return { base, policy, targets, trace: { file: settings.trace, peakSlots: summary.peak.slots, runtime: `${runMs}ms`, knobs } };
}

function config(c: Common, pool: RunConfig['pool'], repeat: number, over: Partial<RunConfig> = {}): RunConfig {
  const b = c.base;
  // A trace run's length is the trace's (its runtime only bounds the driver's timeout: replay does not cut it).
  const t = c.trace;
  return {
    job: b.job, ...(t !== undefined ? { trace: t.file } : {}), vcpus: b.vcpus, mem: b.mem, pool, policy: c.policy,
    knobs: { ...b.knobs(c.policy), ...t?.knobs }, seed: b.seed,
    ...(t !== undefined ? { runtime: t.runtime } : b.runtime !== undefined ? { runtime: b.runtime } : {}), repeat, ...over,
  };
}

const repeats = (c: Common, make: (repeat: number) => RunConfig): RunConfig[] => Array.from({ length: c.base.repeat }, (_, i) => make(i));

/** The throttle thresholds a throttle run assumes, in words and in slots of a pool. */
function thresholdText(c: Common, nslabs: number): string | undefined {
  if (c.policy !== 'throttle') return undefined;
  const k = c.base.knobText;
  const high = k['high-throttle'] !== undefined ? parseThreshold(k['high-throttle'], '--high-throttle') : { percent: THROTTLE_HIGH_PERCENT };
  const low = k['low-throttle'] !== undefined ? parseThreshold(k['low-throttle'], '--low-throttle') : { percent: THROTTLE_LOW_PERCENT };
  const words = (t: typeof high, dflt: boolean) => ('percent' in t ? `${t.percent}% of nslabs` : `${t.slots} slots`) + (dflt ? " (the RFC's default)" : '');
  return `high_throttle ${words(high, k['high-throttle'] === undefined)} = ${thresholdSlots(high, nslabs)} slots, low_throttle ${words(low, k['low-throttle'] === undefined)} = ${thresholdSlots(low, nslabs)} slots at ${nslabs} slots`;
}

/** The smallest pool for the targets. */
async function smallestPool(c: Common): Promise<SizeOutcome> {
  const nareas = roundupPowOfTwo(c.base.vcpus);
  const step = IO_TLB_SEGSIZE * nareas;
  const maxSteps = Math.floor((1 << 19) / step); // 1 GiB: the static pool's limit
  const probes: Probe[] = [];
  const pass = async (k: number): Promise<boolean> => {
    const p = await probe(repeats(c, (i) => config(c, { nslabs: k * step }, i)), k * step, c.targets, c.base);
    probes.push(p);
    return p.pass;
  };
  // A trace's peak concurrent slots is a lower bound: a smaller pool cannot hold what the trace holds
  // at once, so with failures=0 the probes start there.
  const failuresZero = c.targets.every((t) => t.figure === 'failures' && t.max === 0);
  const lo = c.trace !== undefined && failuresZero ? Math.min(maxSteps, Math.max(1, Math.ceil(c.trace.peakSlots / step))) : 1;
  const k = await searchSmallest(lo, maxSteps, pass);
  const runs = probes.reduce((s, p) => s + p.runs.length, 0);
  const workload = c.trace !== undefined ? `trace ${c.trace.file}` : c.base.job;
  const lines = [`size: ${workload}, ${c.base.vcpus} vCPUs (${nareas} areas), ${c.base.mem}, policy ${c.policy} (${POLICIES[c.policy].status}), seed ${c.base.seed}, targets ${c.targets.map((t) => t.text).join(', ')}, each probe ${c.base.repeat} runs judged on the worst`];
  if (c.trace !== undefined) {
    lines.push(`  the trace holds at most ${c.trace.peakSlots} slots at once (its lower bound)${lo > 1 ? `: probes start at ${lo * step} slots, the first multiple of ${step} at or above it` : ''}`);
  }
  lines.push(...probes.map((p) => `  probe ${String(p.value).padStart(6)} slots (${formatBytes(p.value * IO_TLB_SIZE).padStart(7)}): ${p.pass ? 'pass' : `fail (${p.why})`}${p.hiwater_max !== null ? `, hiwater max ${p.hiwater_max}` : ''}`));
  const doc: Record<string, unknown> = {
    command: 'size', job: c.base.job, ...(c.trace !== undefined ? { trace: c.trace.file, trace_peak_slots: c.trace.peakSlots } : {}), vcpus: c.base.vcpus, mem: c.base.mem, policy: c.policy, seed: c.base.seed, repeat: c.base.repeat,
    targets: c.targets.map((t) => t.text), nareas, step_slots: step, probes: probes.map(probeDoc), probe_count: probes.length, runs,
  };
  if (k === null) {
    lines.push(`No pool up to 1 GiB meets the targets: the largest probe failed (${probes.at(-1)?.why}). ${probes.length} probes, ${runs} runs.`);
    return out(c, lines, { ...doc, nslabs: null }, 1);
  }
  const need = k * step;
  // What a kernel boots for swiotlb=<need>: the same sizing code the VM boots with.
  const memBytes = parseSize(c.base.mem, '--mem');
  const kernel = planDefaultPool({ cpus: c.base.vcpus, memBytes, coco: true, bootParam: { nslabs: need, force: false, noforce: false } });
  const coco = planDefaultPool({ cpus: c.base.vcpus, memBytes, coco: true });
  const cmdline = `swiotlb=${kernel.nslabs},${kernel.nareas}`;
  const confirm = await probe(repeats(c, (i) => config(c, { cmdline }, i)), kernel.nslabs, c.targets, c.base);
  const hw = confirm.hiwater_max;
  lines.push('');
  lines.push(`Smallest pool that meets the targets: ${need} slots (${formatBytes(need * IO_TLB_SIZE)}), ${probes.length} probes of ${c.base.repeat} runs (${runs} runs).`);
  lines.push(kernel.nslabs === need
    ? `The kernel boots swiotlb=${need} as it is (a power of two).`
    : `The kernel rounds swiotlb=${need} up to ${kernel.nslabs} slots (${formatBytes(kernel.nslabs * IO_TLB_SIZE)}): with areas (${kernel.nareas}, one per vCPU rounded up to a power of two) round_up_default_nslabs makes nslabs a power of two.`);
  lines.push(`Recommended kernel command line: ${cmdline}`);
  const saved = coco.nslabs * IO_TLB_SIZE - kernel.nslabs * IO_TLB_SIZE;
  lines.push(`CoCo default for ${c.base.mem}: ${coco.nslabs} slots (${formatBytes(coco.nslabs * IO_TLB_SIZE)}: 6% of memory, 64 MiB..1 GiB, rounded up to a power of two); ${saved >= 0 ? `saved ${formatBytes(saved)}` : `${formatBytes(-saved)} more than the default`}.`);
  lines.push(`At ${kernel.nslabs} slots (${c.base.repeat} runs, booted with ${cmdline}): ${confirm.pass ? 'meets the targets' : `MISSES the targets (${confirm.why})`}${hw !== null ? `; io_tlb_used_hiwater max ${hw}, margin ${kernel.nslabs - hw} slots (${(((kernel.nslabs - hw) / kernel.nslabs) * 100).toFixed(1)}%)` : ''}.`);
  const thr = thresholdText(c, kernel.nslabs);
  if (thr !== undefined) lines.push(`Threshold assumed: ${thr}.`);
  lines.push('Assumes a larger pool never does worse (the search is a bisection); the figures are this emulator\'s, on this machine.');
  return out(c, lines, {
    ...doc, nslabs: need, bytes: need * IO_TLB_SIZE, kernel_nslabs: kernel.nslabs, kernel_nareas: kernel.nareas, rounded_up: kernel.nslabs !== need,
    cmdline, coco_default_nslabs: coco.nslabs, saved_bytes: saved,
    at_kernel_size: { ...probeDoc(confirm), margin_slots: hw === null ? null : kernel.nslabs - hw },
    ...(thr !== undefined ? { threshold: thr } : {}),
  }, confirm.pass ? 0 : 1);
}

/** The largest iodepth or vCPU count a given pool serves within the targets. */
async function largestLoad(c: Common, swiotlb: string, find: 'max-iodepth' | 'max-vcpus'): Promise<SizeOutcome> {
  parseSize(swiotlb, '--swiotlb');
  const text = readFileSync(c.base.job, 'utf8');
  const dir = join(tmpdir(), `coco-size-${process.pid}`);
  const probes: Probe[] = [];
  const pass = async (k: number): Promise<boolean> => {
    const file = join(dir, `${find}-${k}.fio`);
    writeFileSync(file, overrideJob(text, find === 'max-iodepth' ? { iodepth: k } : { numjobs: k }));
    const over: Partial<RunConfig> = find === 'max-iodepth' ? { job: file } : { job: file, vcpus: k };
    const p = await probe(repeats(c, (i) => config(c, { swiotlb }, i, over)), k, c.targets, c.base);
    probes.push(p);
    return p.pass;
  };
  mkdirSync(dir, { recursive: true });
  let k: number | null;
  try {
    k = await searchLargest(1, find === 'max-iodepth' ? 4096 : 256, pass);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const what = find === 'max-iodepth' ? 'iodepth (every job section)' : 'vCPUs (numjobs = vCPUs in every job section)';
  const lines = [`size: ${c.base.job}, --swiotlb ${swiotlb}, policy ${c.policy}, seed ${c.base.seed}, targets ${c.targets.map((t) => t.text).join(', ')}: the largest ${what}, each probe ${c.base.repeat} runs judged on the worst`];
  lines.push(...probes.map((p) => `  probe ${String(p.value).padStart(5)}: ${p.pass ? 'pass' : `fail (${p.why})`}${p.hiwater_max !== null ? `, hiwater max ${p.hiwater_max}` : ''}`));
  const runs = probes.reduce((s, p) => s + p.runs.length, 0);
  lines.push('');
  lines.push(k === null ? `Even ${find === 'max-iodepth' ? 'iodepth' : 'vCPUs'} 1 misses the targets. ${probes.length} probes, ${runs} runs.` : `Largest ${what} that meets the targets: ${k} (${probes.length} probes, ${runs} runs).`);
  return out(c, lines, {
    command: 'size', find, job: c.base.job, swiotlb, policy: c.policy, seed: c.base.seed, repeat: c.base.repeat, targets: c.targets.map((t) => t.text),
    probes: probes.map(probeDoc), probe_count: probes.length, runs, [find === 'max-iodepth' ? 'max_iodepth' : 'max_vcpus']: k,
  }, k === null ? 1 : 0);
}

export async function sizeMain(argv: readonly string[]): Promise<SizeOutcome> {
  const f = parseFlags(argv, SIZE_FLAGS, 'size');
  const c = await parseCommon(f);
  if (f.has('find') !== f.has('swiotlb')) throw new InputError('EBADFLAG', '--find and --swiotlb go together: --swiotlb SIZE --find max-iodepth|max-vcpus');
  if (f.has('find')) {
    const find = f.get('find')!;
    if (find !== 'max-iodepth' && find !== 'max-vcpus') throw new InputError('EBADFLAG', `--find: ${quote(find)} is not valid; expected max-iodepth or max-vcpus`);
    return largestLoad(c, f.get('swiotlb')!, find);
  }
  return smallestPool(c);
}
