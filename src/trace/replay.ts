// `npm run replay -- TRACE [flags] [vm flags]`: a kernel DMA trace (tracefs.ts) as the VM's workload.
// The VM boots as `npm run vm` does (pool, policy, devices' threads, report, log); its vCPUs, instead
// of fio jobs, perform the trace's maps and unmaps at their trace times (replay-vcpu.ts), fed from
// the file as it streams (replay-ring.ts: bounded rings with backpressure).
//
// Two passes over the file, both streaming: the first (before boot) summarises the trace
// (replay-trace.ts: devices, sizes, the peak concurrent slots, the trace CPUs) and finds bad lines
// before any thread starts; the second feeds the vCPUs while they run. Trace CPU c runs on vCPU
// c mod --vcpus; --vcpus defaults to the trace's CPU count (its highest CPU + 1).
import { createReadStream, existsSync, statSync } from 'node:fs';
import { HelpRequested, InputError } from '../errors.js';
import { type FlagSpec, parseFlags, parseOnOff, usage } from '../cli/flags.js';
import { IO_TLB_SIZE, PAGE_SIZE, alignUp } from '../swiotlb/constants.js';
import { quote } from '../util/quote.js';
import { formatBytes, parseDuration } from '../util/units.js';
import { VM_FLAGS, type VmOptions } from '../vm/options.js';
import type { RunReport } from '../vm/report.js';
import type { VmReplayHook } from '../vm/vm.js';
import { TraceParser } from './tracefs.js';
import { type ReplayMode, SIZE_BUCKETS, type TraceSummary, TraceMatcher } from './replay-trace.js';
import { ReplayRingWriter, createReplayRing } from './replay-ring.js';
import {
  RESULT_FIELDS, RS_EARLY_UNMAPS, RS_HELD_TO_END, RS_LATE, RS_LATE_MAX_MS, RS_LIVE_PEAK, RS_MAPS_FAILED, RS_MAPS_OK, RS_OPS,
  RS_SG_FAILED, RS_SG_OK, RS_UNMAPS, RS_UNMAPS_SKIPPED, replayResults, replaySharedBytes,
} from './replay-vcpu.js';

export const DEFAULT_BOUNCED_LIFETIME = '100us';

export const REPLAY_FLAGS: readonly FlagSpec[] = [
  { name: 'speed', kind: 'string', form: 'X', default: '1 (trace time)', help: 'replay X times faster than the trace\'s own times (0.001..1000000)' },
  { name: 'skip-bad-lines', kind: 'boolean', default: 'off', help: 'count malformed trace lines instead of stopping at the first one' },
  { name: 'bounced-lifetime', kind: 'string', form: 'DURATION', default: DEFAULT_BOUNCED_LIFETIME, help: 'a trace of only swiotlb_bounced events: how long each bounce holds its slots (a modelled service time, trace time)' },
  { name: 'min-align-mask', kind: 'string', form: 'DEV=MASK', repeatable: true, default: '0xfff for nvme* devices, 0 for others', help: 'a trace device\'s min_align_mask (dma_set_min_align_mask), e.g. 0000:00:04.0=0xfff' },
];

const NVME_MIN_ALIGN_MASK = 0xfff;
const BOOL_WORDS = ['on', 'off', 'true', 'false', '1', '0', 'yes', 'no'];

export interface ReplaySettings {
  trace: string;
  speed: number;
  skipBadLines: boolean;
  bouncedLifetimeUs: number;
  minAlignMask: (device: string) => number;
  /** The VM's flags, as given (without the replay's). */
  vmArgv: string[];
  vcpusGiven: boolean;
}

/** Split TRACE and the replay's flags from the VM's; the VM's are parsed by parseVmOptions. */
export function parseReplayArgs(argv: readonly string[], vmUsage: () => string): ReplaySettings {
  if (argv.includes('--help') || argv.includes('-h')) {
    throw new HelpRequested(usage(REPLAY_FLAGS, 'replay', 'npm run replay -- TRACE [flags] [vm flags]: replay a kernel DMA trace in the VM. Replay flags:') + 'VM flags:\n' + vmUsage());
  }
  const names = new Set(REPLAY_FLAGS.map((s) => s.name));
  const own: string[] = [];
  const vm: string[] = [];
  let trace: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) {
      if (trace !== undefined) throw new InputError('EBADFLAG', `unexpected argument ${quote(a)}; replay takes one TRACE file (${quote(trace)}) then flags`);
      trace = a;
      continue;
    }
    const name = a.slice(2, a.includes('=') ? a.indexOf('=') : undefined);
    const target = names.has(name) ? own : vm;
    target.push(a);
    if (a.includes('=')) continue;
    // The flag's value, as parseFlags takes it: a boolean's only when it is an on|off word.
    const spec = REPLAY_FLAGS.find((x) => x.name === name) ?? VM_FLAGS.find((x) => x.name === name);
    const next = argv[i + 1];
    if (next === undefined) continue;
    if (spec?.kind === 'boolean' ? BOOL_WORDS.includes(next.trim().toLowerCase()) : !next.startsWith('--')) target.push(argv[++i]!);
  }
  if (trace === undefined) throw new InputError('EBADFLAG', 'replay needs a TRACE file: npm run replay -- TRACE [flags] (the text of /sys/kernel/tracing/trace or trace-cmd report)');
  if (!existsSync(trace) || !statSync(trace).isFile()) throw new InputError('ENOENT', `${quote(trace)} is not a file; expected a kernel trace (the text of /sys/kernel/tracing/trace or trace-cmd report)`);
  if (vm.some((a) => a === '--job' || a.startsWith('--job='))) throw new InputError('EBADFLAG', '--job: replay\'s workload is the trace; drop --job (or run npm run vm for a job file)');
  const f = parseFlags(own, REPLAY_FLAGS, 'replay');
  const speedText = f.get('speed') ?? '1';
  const speed = Number(speedText);
  if (!/^\d+(\.\d+)?$/.test(speedText.trim()) || !(speed >= 0.001 && speed <= 1_000_000)) {
    throw new InputError('EBADFLAG', `--speed: ${quote(speedText)} is not valid; expected a number from 0.001 to 1000000 (2 replays twice as fast)`);
  }
  const masks = new Map<string, number>();
  for (const m of f.all('min-align-mask')) {
    const mm = /^([^=\s]+)=(0x[0-9a-f]+|\d+)$/i.exec(m.trim());
    const v = mm === null ? NaN : Number(mm[2]);
    if (mm === null || !Number.isSafeInteger(v) || v >= 2 ** 31 || (v & (v + 1)) !== 0) {
      throw new InputError('EBADFLAG', `--min-align-mask: ${quote(m)} is not valid; expected DEV=MASK with MASK of the form 2^k-1, e.g. 0000:00:04.0=0xfff`);
    }
    masks.set(mm[1]!, v);
  }
  return {
    trace, speed, skipBadLines: f.has('skip-bad-lines') ? parseOnOff(f.get('skip-bad-lines')!, '--skip-bad-lines') : false,
    bouncedLifetimeUs: parseDuration(f.get('bounced-lifetime') ?? DEFAULT_BOUNCED_LIFETIME, '--bounced-lifetime', 1000) * 1000,
    minAlignMask: (d) => masks.get(d) ?? (/^nvme\d+$/.test(d) ? NVME_MIN_ALIGN_MASK : 0),
    vmArgv: vm, vcpusGiven: vm.some((a) => a === '--vcpus' || a.startsWith('--vcpus=')),
  };
}

/** The first pass: the trace's summary in both modes; bounced mode when it has no dma map events but bounces. */
export async function summarizeTrace(s: Pick<ReplaySettings, 'trace' | 'skipBadLines' | 'bouncedLifetimeUs' | 'minAlignMask'>): Promise<TraceSummary> {
  const parser = new TraceParser({ skipBadLines: s.skipBadLines });
  const dma = new TraceMatcher({ mode: 'dma', bouncedLifetimeUs: s.bouncedLifetimeUs, minAlignMask: s.minAlignMask });
  const bounced = new TraceMatcher({ mode: 'bounced', bouncedLifetimeUs: s.bouncedLifetimeUs, minAlignMask: s.minAlignMask });
  const none = () => {};
  let maps = 0;
  let bounces = 0;
  for await (const batch of parser.readBatches(createReadStream(s.trace, { highWaterMark: 1 << 20 }))) {
    for (const r of batch) {
      const k = r.fields.kind;
      if (k === 'map' || k === 'map_sg') maps++;
      if (k === 'bounced') bounces++;
      dma.record(r, none);
      bounced.record(r, none);
    }
  }
  const mode: ReplayMode = maps === 0 && bounces > 0 ? 'bounced' : 'dma';
  (mode === 'dma' ? dma : bounced).end(none);
  return (mode === 'dma' ? dma : bounced).summary(parser.stats);
}

/** The second pass: feed every vCPU's ring, waiting for room; ends every ring. Returns the lines read. */
export async function feedTrace(s: ReplaySettings, mode: ReplayMode, rings: ReplayRingWriter[], stop: () => boolean): Promise<void> {
  const parser = new TraceParser({ skipBadLines: s.skipBadLines });
  const m = new TraceMatcher({ mode, bouncedLifetimeUs: s.bouncedLifetimeUs, minAlignMask: s.minAlignMask });
  const queue: { cpu: number; words: number[] }[] = [];
  const emit = (cpu: number, words: number[]) => queue.push({ cpu, words });
  const n = rings.length;
  // Push the queued operations; false when a ring is full (the rest stay queued, in order).
  const tryFlush = (): boolean => {
    let i = 0;
    for (; i < queue.length; i++) {
      const q = queue[i]!;
      if (!rings[q.cpu % n]!.tryPush(q.words, q.words.length)) break;
    }
    queue.splice(0, i);
    return queue.length === 0;
  };
  // Wait for room until everything queued is pushed (false: the run stopped).
  const flush = async (): Promise<boolean> => {
    while (!tryFlush()) {
      if (stop()) return false;
      await rings[queue[0]!.cpu % n]!.waitForRoom(50);
    }
    return true;
  };
  try {
    for await (const batch of parser.readBatches(createReadStream(s.trace, { highWaterMark: 1 << 20 }))) {
      for (const r of batch) {
        m.record(r, emit);
        // An await only when a ring is full.
        if (queue.length > 0 && !tryFlush() && !(await flush())) return;
      }
    }
    m.end(emit);
    await flush();
  } finally {
    for (const w of rings) w.end();
  }
}

/** The vCPUs' share of the replay: rings, the shared region, and the VM hook. */
export interface ReplayRun {
  hook: VmReplayHook;
  rings: ReplayRingWriter[];
  shared: SharedArrayBuffer;
}

export function replayRun(s: ReplaySettings, summary: TraceSummary, deviceNames: readonly string[], vcpus: number): ReplayRun {
  const ringSabs = Array.from({ length: vcpus }, () => createReplayRing());
  const shared = new SharedArrayBuffer(replaySharedBytes(vcpus));
  const devices = deviceNames.map((name) => ({ name, minAlignMask: s.minAlignMask(name) }));
  // The largest original a mapping copies from: its traced page offset plus its size, at most the
  // largest mapping (a larger one fails before any copy).
  const scratchBytes = alignUp(Math.min(summary.max_size, 128 * IO_TLB_SIZE) + PAGE_SIZE, PAGE_SIZE);
  return {
    rings: ringSabs.map((r) => new ReplayRingWriter(r)),
    shared,
    hook: {
      bufferBytes: scratchBytes,
      task: (cpu, guestOffset) => ({
        ring: ringSabs[cpu]!, shared, devices, firstUs: summary.first_us, lastUs: summary.last_us, speed: s.speed,
        scratchOffset: guestOffset, scratchBytes,
      }),
    },
  };
}

/** The replay's own figures, from the vCPUs' results. */
export interface ReplayReport {
  trace_file: string;
  mode: ReplayMode;
  /** In bounced mode: the lifetime model, said in words. */
  lifetime_model: string | null;
  speed: number;
  vcpus: number;
  cpu_mapping: string;
  ops: number;
  maps_ok: number;
  maps_failed: number;
  sg_maps_ok: number;
  sg_maps_failed: number;
  unmaps: number;
  unmaps_skipped: number;
  held_to_end: number;
  late_ops: number;
  late_ms_max: number;
  early_unmaps: number;
  /** How the real run may have gone differently, when the replay failed maps. */
  notes: string[];
}

export function replayReport(s: ReplaySettings, summary: TraceSummary, shared: SharedArrayBuffer, vcpus: number): ReplayReport {
  const sum = (f: number) => {
    let t = 0;
    for (let c = 0; c < vcpus; c++) t += replayResults(shared, c)[f]!;
    return t;
  };
  let lateMax = 0;
  for (let c = 0; c < vcpus; c++) lateMax = Math.max(lateMax, replayResults(shared, c)[RS_LATE_MAX_MS]!);
  const failed = sum(RS_MAPS_FAILED) + sum(RS_SG_FAILED);
  const notes: string[] = [];
  if (failed > 0) {
    notes.push(`${failed} maps failed in the replay and their unmaps were skipped (${sum(RS_UNMAPS_SKIPPED)}); the traced kernel's driver saw them succeed. A real driver would have failed that I/O (NVMe: an I/O error; a NIC: a dropped packet) or retried it later, so the real run's later maps would have differed; the replay keeps the trace's times regardless.`);
  }
  if (summary.failed_in_trace > 0) notes.push(`${summary.failed_in_trace} maps had failed in the traced kernel (dma_addr=DMA_MAPPING_ERROR): replayed as attempts released at once, not counted in the trace's peak.`);
  if (summary.truncated_sg.lists > 0) notes.push(`${summary.truncated_sg.lists} dma_map_sg lines were [TRUNCATED] at 128 entries: ${summary.truncated_sg.entries_missing} entries are not in the trace and not replayed.`);
  if (summary.lost_events > 0) notes.push(`the trace lost ${summary.lost_events} events (ring buffer overflow): maps or unmaps may be missing.`);
  if (sum(RS_LATE) > 0) notes.push(`${sum(RS_LATE)} operations ran more than 1 ms after their (scaled) trace time (largest ${lateMax.toFixed(2)} ms): the host could not keep up; lower --speed for a faithful timeline.`);
  return {
    trace_file: s.trace, mode: summary.mode,
    lifetime_model: summary.mode === 'bounced' ? `modelled: each swiotlb_bounced holds its slots for ${s.bouncedLifetimeUs} us of trace time (--bounced-lifetime), as the trace has no unmaps` : null,
    speed: s.speed, vcpus, cpu_mapping: `trace CPU c runs on vCPU c mod ${vcpus}`,
    ops: sum(RS_OPS), maps_ok: sum(RS_MAPS_OK), maps_failed: sum(RS_MAPS_FAILED), sg_maps_ok: sum(RS_SG_OK), sg_maps_failed: sum(RS_SG_FAILED),
    unmaps: sum(RS_UNMAPS), unmaps_skipped: sum(RS_UNMAPS_SKIPPED), held_to_end: sum(RS_HELD_TO_END), late_ops: sum(RS_LATE),
    late_ms_max: Math.round(lateMax * 1000) / 1000, early_unmaps: sum(RS_EARLY_UNMAPS), notes,
  };
}

void RESULT_FIELDS;
void RS_LIVE_PEAK;

/** The trace section and the replay section of the text report. */
export function formatReplay(t: TraceSummary, r: ReplayReport, rep: RunReport): string {
  const out: string[] = [];
  out.push('', `trace ${r.trace_file}: ${t.lines} lines (${t.header_lines} header), ${Object.values(t.events).reduce((a, b) => a + b, 0)} DMA events, ${((t.last_us - t.first_us) / 1e6).toFixed(6)} s, CPUs ${t.cpus.join(',') || 'none'}`);
  out.push(`  events: ${Object.entries(t.events).sort().map(([e, n]) => `${e}=${n}`).join(' ') || 'none'}; dma_alloc*=${t.dma_alloc_events} dma_free*=${t.dma_free_events} (counted, not streaming maps); other events skipped=${t.other_events}; bad lines skipped=${t.bad_lines}; lost events=${t.lost_events}`);
  for (const [name, d] of Object.entries(t.devices)) {
    out.push(`  device ${name} (min_align_mask 0x${d.min_align_mask.toString(16)}): ${d.maps} maps, ${d.sg_maps} SG maps (${d.sg_entries} entries), ${d.unmaps} unmaps, ${formatBytes(d.bytes)} mapped, peak ${d.peak_slots} slots`);
  }
  const hist = t.size_histogram.filter((b) => b.count > 0).map((b) => `${b.le === null ? `>${formatBytes(SIZE_BUCKETS.at(-1)!)}` : `<=${formatBytes(b.le)}`}:${b.count}`);
  out.push(`  sizes: ${hist.join(' ') || 'none'}`);
  out.push(`  peak in the trace (the lower bound of any pool): ${t.peak.slots} slots (${formatBytes(t.peak.slots * IO_TLB_SIZE)}) at ${((t.peak.at_us - t.first_us) / 1e6).toFixed(6)} s, ${t.peak.mappings} mappings, ${formatBytes(t.peak.bytes)} mapped`);
  out.push(`  unmatched unmaps ${t.unmatched_unmaps}, held to the end ${t.held_to_end.mappings} (${t.held_to_end.slots} slots), failed in the traced kernel ${t.failed_in_trace} (+${t.map_sg_err} dma_map_sg_err), oversize ${t.oversize}, dir=NONE ${t.dir_none}${t.bounced_not_replayed > 0 ? `, swiotlb_bounced not replayed ${t.bounced_not_replayed} (the dma_* events carry them)` : ''}${t.out_of_order > 0 ? `, out of time order ${t.out_of_order}` : ''}`);
  out.push('', `replay (${r.cpu_mapping}, speed ${r.speed}${r.lifetime_model !== null ? `; ${r.lifetime_model}` : ''}):`);
  out.push(`  maps ok ${r.maps_ok}, failed ${r.maps_failed}; SG maps ok ${r.sg_maps_ok}, failed ${r.sg_maps_failed}; unmaps ${r.unmaps}, skipped (map failed) ${r.unmaps_skipped}; held to the end ${r.held_to_end}; late ${r.late_ops} (max ${r.late_ms_max} ms)${r.early_unmaps > 0 ? `; unmaps taken during throttle waits ${r.early_unmaps}` : ''}`);
  const s = rep.swiotlb;
  out.push(`  pool ${s.io_tlb_nslabs} slots against the trace's peak ${t.peak.slots}: ${s.io_tlb_nslabs < t.peak.slots ? 'SMALLER than the peak, maps must fail' : `${s.io_tlb_nslabs - t.peak.slots} slots above it`}; io_tlb_used_hiwater ${s.io_tlb_used_hiwater}, map failures ${s.map_failures}`);
  for (const n of r.notes) out.push(`  note: ${n}`);
  return out.join('\n') + '\n';
}

/** The VM options for a replay: --vcpus from the trace unless given. */
export function replayVmArgv(s: ReplaySettings, summary: TraceSummary): string[] {
  if (s.vcpusGiven) return s.vmArgv;
  return [...s.vmArgv, '--vcpus', String(Math.min(256, Math.max(1, summary.cpu_count)))];
}

export type { VmOptions };

/** The replay command: parse, summarise the trace, boot the VM with the trace as its workload, report. */
export async function replayMain(argv: readonly string[]): Promise<number> {
  const { parseVmOptions } = await import('../vm/options.js');
  const { vmCommand } = await import('../vm/command.js');
  const s = parseReplayArgs(argv, () => usage(VM_FLAGS, 'vm'));
  parseVmOptions(s.vmArgv); // the VM's flags are checked before the trace is read
  const summary = await summarizeTrace(s);
  const opts = parseVmOptions(replayVmArgv(s, summary));
  if (Object.keys(summary.devices).length === 0) {
    throw new InputError('EBADTRACE', `${quote(s.trace)} has no DMA map events to replay (dma_map_phys/page/resource, dma_map_sg, or only swiotlb_bounced); enable the dma events and swiotlb:swiotlb_bounced when recording`);
  }
  const run = replayRun(s, summary, Object.keys(summary.devices), opts.vcpus);
  return vmCommand(opts, {
    jobs: [],
    replay: run.hook,
    config: { replay: { trace_file: s.trace, mode: summary.mode, speed: s.speed, trace_cpus: summary.cpu_count } },
    beside: (stop) => feedTrace(s, summary.mode, run.rings, stop),
    extra: (_result, report) => {
      const r = replayReport(s, summary, run.shared, opts.vcpus);
      return { json: { trace: summary, replay: r }, text: formatReplay(summary, r, report) };
    },
  });
}
