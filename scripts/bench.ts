// npm run bench: the core's throughput figures, printed as a table and as one JSON line.
// Targets (read from here, never asserted in tests): allocator alone >= 5M pairs/s on 1 thread;
// 4 KiB bounce on 1 thread >= 70% of the copy-only ceiling; 32 threads >= 80% of the 2-thread total
// with the slowest thread >= 25% of the fastest; logging at the default level costs the map/unmap
// path < 5%, and so does --trace-file (trace_file_cost, issue 14: no more than logging; printed with
// its floor, a tracer that only reads the clock). [RFC] may_block_throttle_on_over_off: MAY_BLOCK maps below the threshold with throttling
// on over the same maps with it off (the cost of the check).
import { quote } from '../src/util/quote.js';
import {
  ARM_PHASE_MS, ARM_WINDOW_FACTOR, CONTROL_INTS, type CoreBenchMode, type CoreBenchThreadConfig, type TraceFloor, runCoreBenchWindow,
} from '../src/bench/core-bench.js';
import { configValue } from '../src/config.js';
import { measureInstrumentationCost } from '../src/bench/instrument-bench.js';
import { type AgainstRow, againstMemModule, measureAgainst } from '../src/bench/against-bench.js';
import { buildNativeRef } from '../src/bench/native.js';
import { dynamicPoolsRate, transientRates } from '../src/bench/dynamic-bench.js';
import { runMain } from '../src/cli/main.js';
import { parseFlags } from '../src/cli/flags.js';
import { InputError } from '../src/errors.js';
import { DMA_ATTR_MAY_BLOCK, POOL_START } from '../src/swiotlb/constants.js';
import { GUEST_BASE } from '../src/memory/guest.js';
import { copyPath } from '../src/memory/copy.js';
import { IoTlbMem } from '../src/swiotlb/mem.js';
import { durationBoundsText, parseDurationInRange } from '../src/util/units.js';
import { BENCH_WINDOW } from '../src/bench/core-bench.js';
import { createRunLogger, type RunLogger } from '../src/log/index.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { DmaTraceFile, MAP_PHYS_RECORD_BYTES, UNMAP_PHYS_RECORD_BYTES } from '../src/trace/writer.js';
import { nowMs } from '../src/util/clock.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Native comparisons: JS window and native run alternated this many times. */
const NATIVE_REPS = 3;

/** logging_cost's target, which --trace-file's cost is held to as well (issue 14: no more than logging). */
const LOGGING_COST_TARGET = 0.05;

/** The logging comparison's failure rate. */
const FAIL_EVERY = 64;

const SIZE = 4096;

interface Row {
  name: string;
  threads: number;
  nareas: number;
  mode: CoreBenchMode;
  pairs_per_s: number;
  slowest_over_fastest: number;
  failures: number;
}

interface LogSetup {
  failEvery: number;
  logger: RunLogger;
}

/** Pairs per second of each arm of a two-arm comparison. */
interface Arms {
  aPerS: number;
  bPerS: number;
  /** Pairs arm B made in the window, and in all (with the warm-up's: what a trace's lines count). */
  bPairs: number;
  bPairsAll: number;
}

/** Wall ns that arm B adds to a pair, on the whole run (all its threads): 1/bPerS - 1/aPerS. */
const addedNsPerPair = (a: Arms): number => 1e9 / a.bPerS - 1e9 / a.aPerS;

/**
 * MAY_BLOCK on the bounce maps. Two-arm comparisons, alternated within one window on the same
 * threads (CONTROL_ARM_B): `logging` (arm B logs, arm A does not), `throttleArm` ([RFC] arm B maps
 * from a second pool with throttling on, arm A from one with it off).
 */
interface Variant {
  mayBlock?: boolean;
  /** --trace-file on (arm B) and off (arm A): every call traced into the vCPUs' rings, drained to a file. */
  trace?: DmaTraceFile;
  /** The trace's floor (arm B: a tracer that only reads the clock, or only is called), against none. */
  traceFloor?: TraceFloor;
  logging?: LogSetup;
  throttleArm?: boolean;
}

/** Run one configuration: start its threads, let each warm up, open the window for `seconds`, count pairs (per arm for a two-arm comparison). */
async function measure(name: string, mode: CoreBenchMode, threads: number, nareas: number, seconds: number, v: Variant = {}): Promise<Row & { arms?: Arms }> {
  const logging = v.logging;
  const twoArms = logging !== undefined || v.throttleArm === true || v.trace !== undefined || v.traceFloor !== undefined || mode === 'copy-vs-memmove';
  const nslabs = Math.max(nareas * 128, 4096);
  const create = (throttle: boolean) => IoTlbMem.create({ nslabs, nareas, start: POOL_START, forceBounce: true, throttle: { enabled: throttle } });
  const mem = create(false);
  // Default thresholds (70% / 65% of nslabs): 2 slots per thread stay far below them.
  const memB = v.throttleArm === true ? create(true) : null;
  const guest = new SharedArrayBuffer(threads * 2 * SIZE + SIZE);
  const control = new SharedArrayBuffer(CONTROL_INTS * 4);
  const cfgs: CoreBenchThreadConfig[] = Array.from({ length: threads }, (_, cpu) => ({
    mode, shared: mem.shared(), guest, guestBase: GUEST_BASE, cpu, control, sizeBytes: SIZE, attrs: v.mayBlock ? DMA_ATTR_MAY_BLOCK : 0,
    ...(logging === undefined ? {} : { failEvery: logging.failEvery, log: logging.logger.workerChannel(`vcpu${cpu}`) }),
    ...(memB === null ? {} : { sharedB: memB.shared() }),
    ...(v.trace === undefined ? {} : { trace: v.trace.channel(cpu) }),
    ...(v.traceFloor === undefined ? {} : { traceFloor: v.traceFloor }),
  }));
  const { results, elapsedS, armMs } = await runCoreBenchWindow(cfgs, seconds, twoArms ? ARM_PHASE_MS : undefined);
  const per = results.map((r) => r.pairs);
  const total = per.reduce((a, b) => a + b, 0);
  const row = {
    name, threads, nareas, mode,
    pairs_per_s: Math.round(total / elapsedS),
    slowest_over_fastest: Math.min(...per) / Math.max(...per),
    failures: results.reduce((a, r) => a + r.failures, 0),
  };
  if (!twoArms) return row;
  const b = results.reduce((a, r) => a + r.pairsArmB, 0);
  const bAll = b + results.reduce((a, r) => a + r.warmupPairsArmB, 0);
  return { ...row, arms: { aPerS: (total - b) / (armMs.a / 1000), bPerS: b / (armMs.b / 1000), bPairs: b, bPairsAll: bAll } };
}

/**
 * The native reference (src/bench/native.ts): the same search and release in C, and memcpy, each
 * run alternated NATIVE_REPS times with the JS row it is the reference of, so both see the same host.
 */
async function nativeComparison(seconds: number): Promise<{ lines: string[]; rows: Row[]; ratios: Record<string, number>; targets: Record<string, boolean> }> {
  const native = buildNativeRef();
  const lines: string[] = [];
  const rows: Row[] = [];
  const ratios: Record<string, number> = {};
  const targets: Record<string, boolean> = {};
  if ('missing' in native) {
    lines.push(`native reference: none (${native.missing})`);
    return { lines, rows, ratios, targets };
  }
  try {
    // The copy is measured on the VM's path (memory/copy.ts copyBytes) and on the TypedArray.set path.
    const pairs: Record<'alloc' | 'copy', { js: number; set?: number; c: number }[]> = { alloc: [], copy: [] };
    for (let i = 0; i < NATIVE_REPS; i++) {
      for (const mode of ['alloc', 'copy'] as const) {
        const js = (await measure(`${mode} vs native`, mode, 1, 1, seconds)).pairs_per_s;
        const set = mode === 'copy' ? (await measure('copy-set vs native', 'copy-set', 1, 1, seconds)).pairs_per_s : undefined;
        pairs[mode].push({ js, ...(set === undefined ? {} : { set }), c: await native.rate(mode, seconds) });
      }
    }
    lines.push(`native reference: src/bench/native/swiotlb-alloc.c built with ${native.compiler}, alternated ${NATIVE_REPS}x with the JS rows`);
    lines.push(`bounce copy path (the VM's): ${copyPath.what}`);
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const fmt = (v: number) => `${Math.round(v).toLocaleString('en-US')}/s`;
    for (const p of pairs.alloc) lines.push(`  alloc only (search + release), 1 thread: JS ${fmt(p.js)}, C ${fmt(p.c)}, JS/C ${(p.js / p.c).toFixed(2)}`);
    for (const p of pairs.copy) {
      lines.push(`  4 KiB copy, private -> pool: bounce copy (${copyPath.kind}) ${fmt(p.js)}, TypedArray.set ${fmt(p.set!)}, C memcpy ${fmt(p.c)}; ${copyPath.kind}/C ${(p.js / p.c).toFixed(2)}, set/C ${(p.set! / p.c).toFixed(2)}`);
    }
    ratios['alloc_1t_over_native'] = med(pairs.alloc.map((p) => p.js / p.c));
    ratios['copy_over_native'] = med(pairs.copy.map((p) => p.js / p.c));
    ratios['copy_set_over_native'] = med(pairs.copy.map((p) => p.set! / p.c));
    targets['alloc_1t_over_native'] = ratios['alloc_1t_over_native'] >= 0.5;
    targets['copy_over_native'] = ratios['copy_over_native'] >= 0.5;
    for (const mode of ['alloc', 'copy'] as const) {
      rows.push({ name: `${mode === 'alloc' ? 'alloc only' : 'copy only'}, 1 thread, native C (median of ${NATIVE_REPS})`, threads: 1, nareas: 1, mode, pairs_per_s: Math.round(med(pairs[mode].map((p) => p.c))), slowest_over_fastest: 1, failures: 0 });
    }
    rows.push({ name: `copy only, 1 thread, TypedArray.set path (median of ${NATIVE_REPS})`, threads: 1, nareas: 1, mode: 'copy-set', pairs_per_s: Math.round(med(pairs.copy.map((p) => p.set!))), slowest_over_fastest: 1, failures: 0 });
    // The same comparison inside one thread, immune to the host's drift between windows: copyBytes
    // against the addon's memmove of the same bytes, alternated every ARM_PHASE_MS (core-bench.ts).
    if (copyPath.kind === 'memcpy') {
      const arms = (await measure('copy vs memmove', 'copy-vs-memmove', 1, 1, seconds * ARM_WINDOW_FACTOR)).arms!;
      lines.push(`  4 KiB copy, one thread, alternated every ${ARM_PHASE_MS} ms: copyBytes ${fmt(arms.aPerS)}, the addon's memmove of the same bytes in a loop ${fmt(arms.bPerS)}`);
      ratios['copy_over_memmove_one_thread'] = arms.aPerS / arms.bPerS;
      targets['copy_over_memmove_one_thread'] = ratios['copy_over_memmove_one_thread'] >= 0.5;
      rows.push({ name: 'copy only, 1 thread, copyBytes (alternated with the memmove loop)', threads: 1, nareas: 1, mode: 'copy', pairs_per_s: Math.round(arms.aPerS), slowest_over_fastest: 1, failures: 0 });
      rows.push({ name: 'copy only, 1 thread, memmove loop in the addon (alternated)', threads: 1, nareas: 1, mode: 'copy-vs-memmove', pairs_per_s: Math.round(arms.bPerS), slowest_over_fastest: 1, failures: 0 });
    } else {
      lines.push(`  4 KiB copy, one thread, against the addon's memmove: not measured (${copyPath.what})`);
    }
  } finally {
    native.close();
  }
  return { lines, rows, ratios, targets };
}

/** What traceFileRows measured: its rows, and the figures `npm run bench` prints next to logging_cost. */
interface TraceFigures {
  rows: Row[];
  /** 1 - on/off for --trace-file (the figure, next to logging_cost). */
  cost: number;
  /** Wall ns --trace-file adds to a pair, and to each record (2 a pair), on the whole 8-thread run. */
  nsPerPair: number;
  nsPerRecord: number;
  /** The floor: 1 - on/off for a tracer that only reads the clock where the writer does (2 reads a pair), and for one that is only called. */
  clockFloorCost: number;
  callFloorCost: number;
}

/**
 * --trace-file on and off around the same path (src/trace/writer.ts): every map and unmap (and the
 * swiotlb_bounced before each search) written on its thread into that thread's ring, drained to a
 * file by this thread; 8 threads, the arms alternated as for logging. Then the floor, the same way:
 * arm B a tracer that only reads the run's clock once per map and once per unmap (what any record
 * with a timestamp costs at least), and one whose tracepoints return at once (what installing a
 * tracer costs the path).
 */
async function traceFileRows(seconds: number): Promise<TraceFigures> {
  let traceArms: Arms;
  let traced: { events: number; lost: number };
  let waits = 0;
  const traceDir = mkdtempSync(join(tmpdir(), 'coco-bench-trace-'));
  try {
    const file = new DmaTraceFile(join(traceDir, 'bench.trace'), 8, nowMs());
    file.start();
    traceArms = (await measure('trace file', 'bounce', 8, 8, seconds * ARM_WINDOW_FACTOR, { trace: file })).arms!;
    waits = file.fullWaits();
    traced = file.close();
    if (traced.events === 0) throw new Error('bench: the trace arm wrote no trace line');
  } finally {
    rmSync(traceDir, { recursive: true, force: true });
  }
  const clock = (await measure('trace floor, clock', 'bounce', 8, 8, seconds * ARM_WINDOW_FACTOR, { traceFloor: 'clock' })).arms!;
  const call = (await measure('trace floor, call', 'bounce', 8, 8, seconds * ARM_WINDOW_FACTOR, { traceFloor: 'call' })).arms!;
  const row = (name: string, pps: number): Row => ({ name, threads: 8, nareas: 8, mode: 'bounce', pairs_per_s: Math.round(pps), slowest_over_fastest: NaN, failures: 0 });
  const pairBytes = MAP_PHYS_RECORD_BYTES + UNMAP_PHYS_RECORD_BYTES;
  const perPair = (traced.events + traced.lost) / traceArms.bPairsAll;
  const nsPerPair = addedNsPerPair(traceArms);
  return {
    rows: [
      row('4K bounce, 8 threads, --trace-file off', traceArms.aPerS),
      row(`4K bounce, 8 threads, --trace-file on (${perPair.toFixed(2)} lines, 2 records, ${pairBytes} B a pair; ${traced.events} lines written, ${traced.lost} lost, ${waits} waits for a full ring)`, traceArms.bPerS),
      row('4K bounce, 8 threads, no tracer (floor: clock)', clock.aPerS),
      row('4K bounce, 8 threads, a tracer that only reads the clock, 2 reads a pair', clock.bPerS),
      row('4K bounce, 8 threads, no tracer (floor: call)', call.aPerS),
      row('4K bounce, 8 threads, a tracer that only returns', call.bPerS),
    ],
    cost: 1 - traceArms.bPerS / traceArms.aPerS,
    nsPerPair,
    nsPerRecord: nsPerPair / 2,
    clockFloorCost: 1 - clock.bPerS / clock.aPerS,
    callFloorCost: 1 - call.bPerS / call.aPerS,
  };
}

/** The trace's figures as ratios (printed next to logging_cost), and its target: no more than logging's. */
function traceRatios(t: TraceFigures): { trace_file_cost: number; trace_ns_per_pair: number; trace_ns_per_record: number; trace_clock_floor_cost: number; trace_call_floor_cost: number } {
  return {
    trace_file_cost: t.cost,
    trace_ns_per_pair: Math.round(t.nsPerPair),
    trace_ns_per_record: Math.round(t.nsPerRecord),
    trace_clock_floor_cost: t.clockFloorCost,
    trace_call_floor_cost: t.callFloorCost,
  };
}

/** The --against rows: each configuration's pairs/s with this build's core and with DIR's, alternated in one window. */
function printAgainst(dir: string, rows: AgainstRow[]): void {
  console.log(`this build's core against ${dir}'s, alternated every ${ARM_PHASE_MS} ms in one window per row:`);
  for (const r of rows) {
    const what = `${r.mode === 'alloc' ? 'alloc only' : '4K bounce'}, ${r.threads} thread${r.threads === 1 ? '' : 's'}`;
    console.log(`  ${what.padEnd(22)} this ${r.thisPerS.toLocaleString('en-US').padStart(11)}/s, against ${r.againstPerS.toLocaleString('en-US').padStart(11)}/s, this/against ${(r.thisPerS / r.againstPerS).toFixed(2)}`);
  }
}

async function main(): Promise<number> {
  const flags = parseFlags(process.argv.slice(2), [
    { name: 'seconds', kind: 'string', form: 'DURATION', env: 'COCO_BENCH_SECONDS', help: `measurement window of each row, ${durationBoundsText(BENCH_WINDOW)} (bare numbers are seconds)` },
    { name: 'only', kind: 'string', form: 'native|trace', default: 'every row', help: 'native: only the JS rows against their native reference; trace: only the --trace-file rows' },
    { name: 'against', kind: 'string', form: 'DIR', default: 'none', help: 'a built checkout whose core (dist/src/swiotlb/mem.js) runs alloc and bounce rows at 1 and 4 threads too, alternated with this one (before/after)' },
  ], 'bench', 'The core\'s throughput rows (allocator, copy, bounce at 1-32 threads, logging, [RFC] throttle check, native reference), as a table and one JSON line.');
  const only = flags.get('only');
  if (only !== undefined && only !== 'native' && only !== 'trace') throw new InputError('EBADFLAG', `--only: ${quote(only)} is not valid; expected native or trace`);
  const window = flags.setting('seconds');
  const seconds = parseDurationInRange(window.value, window.what, BENCH_WINDOW) / 1000;
  const against = flags.get('against');
  if (against !== undefined) againstMemModule(against); // checked before any row runs
  if (only === 'trace') {
    const t = await traceFileRows(seconds);
    for (const r of t.rows) console.log(`${r.name}  ${r.pairs_per_s.toLocaleString('en-US')}/s`);
    const ratios = traceRatios(t);
    const targets = { trace_file_cost: t.cost < LOGGING_COST_TARGET };
    for (const [k, v] of Object.entries(ratios)) {
      console.log(`${k.padEnd(30)} ${Number.isInteger(v) ? v.toLocaleString('en-US') : v.toFixed(3)}${k === 'trace_file_cost' ? (targets.trace_file_cost ? '  (target met)' : '  (TARGET MISSED)') : ''}`);
    }
    console.log(JSON.stringify({ bench: 'core-trace', seconds_per_config: seconds, rows: t.rows, ratios, targets }));
    return 0;
  }
  if (only === 'native') {
    const nat = await nativeComparison(seconds);
    for (const r of nat.rows) console.log(`${r.name}  ${r.pairs_per_s.toLocaleString('en-US')}/s`);
    for (const l of nat.lines) console.log(l);
    for (const [k, v] of Object.entries(nat.ratios)) {
      const t = nat.targets[k];
      console.log(`${k.padEnd(30)} ${v.toFixed(2)}${t === undefined ? '' : t ? '  (target met)' : '  (TARGET MISSED)'}`);
    }
    const vs = against === undefined ? undefined : await measureAgainst(against, seconds);
    if (vs !== undefined) printAgainst(against!, vs);
    console.log(JSON.stringify({ bench: 'core-native', seconds_per_config: seconds, rows: nat.rows, ratios: nat.ratios, targets: nat.targets, ...(vs === undefined ? {} : { against: { dir: against, rows: vs } }) }));
    return 0;
  }
  const rows: Row[] = [];
  const plan: [string, CoreBenchMode, number, number, Variant?][] = [
    ['alloc only, 1 thread', 'alloc', 1, 1],
    [`copy only (ceiling, ${copyPath.kind}), 1 thread`, 'copy', 1, 1],
    ['4K bounce, 1 thread', 'bounce', 1, 1],
    ['4K bounce, 2 threads', 'bounce', 2, 2],
    ['4K bounce, 8 threads', 'bounce', 8, 8],
    ['4K bounce, 32 threads', 'bounce', 32, 32],
    ['4K bounce, 32 threads, 1 area', 'bounce', 32, 1],
  ];
  for (const [name, mode, threads, nareas, variant] of plan) {
    const row = await measure(name, mode, threads, nareas, seconds, variant);
    rows.push(row);
    if (process.stdout.isTTY) process.stderr.write(`  ${name}: ${row.pairs_per_s.toLocaleString()} pairs/s\n`);
  }
  // [RFC] The cost of the throttle check when it admits everything: MAY_BLOCK maps below the
  // threshold, from a pool with throttling off (arm A) and one with it on (arm B), alternated.
  const thr = (await measure('throttle', 'bounce', 1, 1, seconds * ARM_WINDOW_FACTOR, { mayBlock: true, throttleArm: true })).arms!;
  rows.push({ name: '4K bounce MAY_BLOCK, throttling off, 1 thread', threads: 1, nareas: 1, mode: 'bounce', pairs_per_s: Math.round(thr.aPerS), slowest_over_fastest: 1, failures: 0 });
  rows.push({ name: '4K bounce MAY_BLOCK, throttling on, below threshold, 1 thread', threads: 1, nareas: 1, mode: 'bounce', pairs_per_s: Math.round(thr.bPerS), slowest_over_fastest: 1, failures: 0 });

  // Logging on and off around the same map/unmap path: 8 threads, one failed (oversize) map every
  // FAIL_EVERY pairs reported through the VM's ratelimited vCPU log, either at the default level to a
  // file or with logging off; the two arms alternate every ARM_PHASE_MS in one window of
  // ARM_WINDOW_FACTOR x the configuration time (src/bench/core-bench.ts says why).
  const logDir = mkdtempSync(join(tmpdir(), 'coco-bench-log-'));
  let arms: Arms;
  let logRecords = 0;
  try {
    const file = join(logDir, 'bench.ndjson');
    const logger = createRunLogger({ file, level: configValue('COCO_LOG_LEVEL'), exitHandlers: false });
    const r = await measure('logging', 'bounce', 8, 8, seconds * ARM_WINDOW_FACTOR, { logging: { failEvery: FAIL_EVERY, logger } });
    await logger.close();
    arms = r.arms!;
    // The "on" arm must really have logged, or the comparison measures nothing.
    const records = readFileSync(file, 'utf8').split('\n').filter((l) => l.includes('"event":"map_failure"')).length;
    logRecords = records;
    if (records === 0 && configValue('COCO_LOG_LEVEL') !== 'silent') throw new Error('bench: the logging arm wrote no map_failure record');
  } finally {
    rmSync(logDir, { recursive: true, force: true });
  }
  rows.push({ name: `4K bounce, 8 threads, 1 failed map per ${FAIL_EVERY}, logging off`, threads: 8, nareas: 8, mode: 'bounce', pairs_per_s: Math.round(arms.aPerS), slowest_over_fastest: NaN, failures: 0 });
  rows.push({ name: `4K bounce, 8 threads, 1 failed map per ${FAIL_EVERY}, logging on (${configValue('COCO_LOG_LEVEL')}, file; ${logRecords} map_failure records written, warm-up included, the rest ratelimited)`, threads: 8, nareas: 8, mode: 'bounce', pairs_per_s: Math.round(arms.bPerS), slowest_over_fastest: NaN, failures: 0 });

  const traceRows = await traceFileRows(seconds);
  rows.push(...traceRows.rows);

  // Dynamic swiotlb (src/bench/dynamic-bench.ts): the pool-list lookup with full dynamic pools in
  // front of the default pool, and a transient pool's map against a normal one (one thread each).
  for (const n of [1, 16, 256]) {
    const pps = dynamicPoolsRate(n, seconds);
    rows.push({ name: `4K bounce, 1 thread, ${n} full dynamic pool${n === 1 ? '' : 's'} in front of the default pool`, threads: 1, nareas: 1, mode: 'bounce', pairs_per_s: Math.round(pps), slowest_over_fastest: 1, failures: 0 });
  }
  const tr = transientRates(seconds);
  rows.push({ name: '4K bounce, 1 thread, through a transient pool (default pool full)', threads: 1, nareas: 1, mode: 'bounce', pairs_per_s: Math.round(tr.transient), slowest_over_fastest: 1, failures: 0 });
  rows.push({ name: '4K bounce, 1 thread, dynamic build, pool with room', threads: 1, nareas: 1, mode: 'bounce', pairs_per_s: Math.round(tr.normal), slowest_over_fastest: 1, failures: 0 });

  const by = (n: string) => rows.find((r) => r.name === n)!;
  const ratios = {
    alloc_1t_pairs_per_s: by('alloc only, 1 thread').pairs_per_s,
    bounce_1t_over_copy_ceiling: by('4K bounce, 1 thread').pairs_per_s / by(`copy only (ceiling, ${copyPath.kind}), 1 thread`).pairs_per_s,
    bounce_32t_over_2t: by('4K bounce, 32 threads').pairs_per_s / by('4K bounce, 2 threads').pairs_per_s,
    slowest_over_fastest_32t: by('4K bounce, 32 threads').slowest_over_fastest,
    one_area_32t_over_2t: by('4K bounce, 32 threads, 1 area').pairs_per_s / by('4K bounce, 2 threads').pairs_per_s,
    logging_cost: 1 - arms.bPerS / arms.aPerS,
    ...traceRatios(traceRows),
    dynamic_256_over_1_pools: by('4K bounce, 1 thread, 256 full dynamic pools in front of the default pool').pairs_per_s
      / by('4K bounce, 1 thread, 1 full dynamic pool in front of the default pool').pairs_per_s,
    transient_over_normal: by('4K bounce, 1 thread, through a transient pool (default pool full)').pairs_per_s
      / by('4K bounce, 1 thread, dynamic build, pool with room').pairs_per_s,
    may_block_throttle_on_over_off: by('4K bounce MAY_BLOCK, throttling on, below threshold, 1 thread').pairs_per_s
      / by('4K bounce MAY_BLOCK, throttling off, 1 thread').pairs_per_s,
  };
  const targets = {
    alloc_1t_pairs_per_s: ratios.alloc_1t_pairs_per_s >= 5e6,
    bounce_1t_over_copy_ceiling: ratios.bounce_1t_over_copy_ceiling >= 0.7,
    bounce_32t_over_2t: ratios.bounce_32t_over_2t >= 0.8,
    slowest_over_fastest_32t: ratios.slowest_over_fastest_32t >= 0.25,
    logging_cost: ratios.logging_cost < LOGGING_COST_TARGET,
    trace_file_cost: ratios.trace_file_cost < LOGGING_COST_TARGET,
  };

  // The stress harness's instrumentation points with no hook installed (src/bench/instrument-bench.ts).
  const instr = await measureInstrumentationCost(seconds);
  rows.push({ name: 'alloc only, 1 thread, points in (alternated)', threads: 1, nareas: 1, mode: 'alloc', pairs_per_s: instr.withPoints, slowest_over_fastest: 1, failures: 0 });
  rows.push({ name: 'alloc only, 1 thread, points compiled out (alternated)', threads: 1, nareas: 1, mode: 'alloc', pairs_per_s: instr.withoutPoints, slowest_over_fastest: 1, failures: 0 });
  Object.assign(ratios, { instrumented_over_uninstrumented: instr.ratio });
  Object.assign(targets, { instrumented_over_uninstrumented: instr.ratio >= 0.97 });

  const nat = await nativeComparison(seconds);
  rows.push(...nat.rows);
  Object.assign(ratios, nat.ratios);
  Object.assign(targets, nat.targets);
  const nativeLines = nat.lines;
  const vs = against === undefined ? undefined : await measureAgainst(against, seconds);
  const w = Math.max(...rows.map((r) => r.name.length));
  console.log(`${'configuration'.padEnd(w)}  ${'pairs/s'.padStart(12)}  ${'slowest/fastest'.padStart(15)}  failures`);
  for (const r of rows) {
    console.log(`${r.name.padEnd(w)}  ${r.pairs_per_s.toLocaleString('en-US').padStart(12)}  ${(Number.isNaN(r.slowest_over_fastest) ? "-" : r.slowest_over_fastest.toFixed(2)).padStart(15)}  ${r.failures}`);
  }
  console.log('');
  for (const l of nativeLines) console.log(l);
  for (const [k, v] of Object.entries(ratios)) {
    const t = (targets as Record<string, boolean>)[k];
    console.log(`${k.padEnd(30)} ${Number.isInteger(v) ? v.toLocaleString('en-US') : v.toFixed(2)}${t === undefined ? '' : t ? '  (target met)' : '  (TARGET MISSED)'}`);
  }
  if (vs !== undefined) printAgainst(against!, vs);
  console.log(JSON.stringify({ bench: 'core', seconds_per_config: seconds, size_bytes: SIZE, rows, ratios, targets, ...(vs === undefined ? {} : { against: { dir: against, rows: vs } }) }));
  return 0;
}

runMain(main);
