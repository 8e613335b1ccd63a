// What a kernel DMA trace asks of a pool, and the replay operations it becomes. One pass over the
// parser's records (tracefs.ts) matches each unmap to its map, keeps the live mappings (only those:
// memory is bounded by the trace's concurrency, not its length) and counts what the trace was:
// devices, maps per device, a size histogram, the peak concurrent mappings, bytes and slots. The
// replay command runs this pass twice over the file: once before boot for the summary (and the
// vCPU count, and bad lines before any thread starts), once during the run to feed the vCPUs the
// same operations, numbered the same.
//
// Matching, as the events allow:
// - dma_map_phys/page/resource -> dma_unmap_* of the same device and dma_addr;
// - dma_map_sg -> dma_unmap_sg of the same device and the same phys_addrs (dma_unmap_sg has no
//   sizes or DMA addresses: sg_phys() of each entry, the list the map was given);
// - swiotlb_bounced has no unmap: in a trace of only these events each bounce is a mapping held for
//   a modelled service time (bouncedLifetimeUs); with dma_* events present they are counted and not
//   replayed (each bounce is one of the maps already replayed).
//
// Slots, as swiotlb_tbl_map_single counts them: nr_slots(size + offset), the offset being
// swiotlb_align_offset(dev, 0, orig) = orig & min_align_mask & (IO_TLB_SIZE - 1) (mem.ts
// alignOffset), with the orig address the trace's phys_addr (dev_addr for swiotlb_bounced) and the
// device's min_align_mask from minAlignMask(). A mapping above IO_TLB_SEGSIZE slots fails in any pool
// ("oversize") and holds none.
import { IO_TLB_SEGSIZE, IO_TLB_SIZE, DMA_ATTR_SKIP_CPU_SYNC, DMA_BIDIRECTIONAL, nrSlots } from '../swiotlb/constants.js';
import { DMA_ATTR_NAMES, DMA_DIR_NAMES, DMA_TRACE_MAX_ENTRIES, type DmaDir, type TraceRecord, type TraceStats } from './tracefs.js';
import { OP_MAP, OP_MAP_SG, OP_UNMAP, REC_HEADER } from './replay-ring.js';

const SLOT_MASK = IO_TLB_SIZE - 1;
const MAX_MAP_BYTES = IO_TLB_SEGSIZE * IO_TLB_SIZE;
/** DMA_MAPPING_ERROR as a traced dma_addr (~(dma_addr_t)0). */
const TRACE_MAPPING_ERROR = 0xffffffffffffffffn;

const DIR_CODE = Object.fromEntries(DMA_DIR_NAMES.map((n, code) => [n, code])) as Record<DmaDir, number>;

/** decode_dma_attrs names -> DMA_ATTR_* bits (include/linux/dma-mapping.h). */
const ATTR_BITS: Record<string, number> = Object.fromEntries(DMA_ATTR_NAMES.map(([bit, name]) => [name, bit]));

/** The size histogram's buckets: up to 512 bytes, then powers of two up to 256 KiB, then above. */
export const SIZE_BUCKETS = [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144] as const;

export type ReplayMode = 'dma' | 'bounced';

export interface MatcherOptions {
  mode: ReplayMode;
  /** bounced mode: how long each bounce holds its slots (trace microseconds). */
  bouncedLifetimeUs: number;
  /** A device's min_align_mask (dma_get_min_align_mask). */
  minAlignMask(device: string): number;
}

export interface DeviceSummary {
  /** dma_map_phys/page/resource calls (or bounces, in bounced mode). */
  maps: number;
  /** dma_map_sg calls, and the entries they mapped. */
  sg_maps: number;
  sg_entries: number;
  unmaps: number;
  bytes: number;
  min_align_mask: number;
  /** Peak slots this device's live mappings held at once. */
  peak_slots: number;
}

/** What the trace was, and the lower bound it sets on any pool. */
export interface TraceSummary {
  mode: ReplayMode;
  lines: number;
  header_lines: number;
  /** Records of known events, by event name. */
  events: Record<string, number>;
  dma_alloc_events: number;
  dma_free_events: number;
  other_events: number;
  lost_events: number;
  bad_lines: number;
  /** Trace CPUs that issued a replayed map, ascending; cpu_count is the largest + 1. */
  cpus: number[];
  cpu_count: number;
  first_us: number;
  last_us: number;
  devices: Record<string, DeviceSummary>;
  /** Mappings (single maps and SG entries) by size: `le` the bucket's upper bound in bytes, null above 256 KiB. */
  size_histogram: { le: number | null; count: number }[];
  max_size: number;
  /** Live at once in the trace: the lower bound any pool must cover (slots counted as the kernel does). */
  peak: { mappings: number; bytes: number; slots: number; at_us: number };
  /** Unmaps with no live map of that device and address (mapped before the trace began, or a lost event). */
  unmatched_unmaps: number;
  /** Mappings whose unmap never appears: held to the end of the trace. */
  held_to_end: { mappings: number; slots: number };
  /** Maps the traced kernel failed (dma_addr = DMA_MAPPING_ERROR; dma_map_sg_err): replayed as attempts held for no time, not in the peak. */
  failed_in_trace: number;
  map_sg_err: number;
  /** Mappings above IO_TLB_SEGSIZE slots: they fail in any pool and hold none. */
  oversize: number;
  /** Maps with dir=NONE (a BUG() in dma_map): not replayed. */
  dir_none: number;
  /** dma_map_sg lines cut at DMA_TRACE_MAX_ENTRIES: their entries past 128 are not in the trace, nor replayed. */
  truncated_sg: { lists: number; entries_missing: number };
  /** A second map of a live device address (its unmap was lost): the first is held to the end. */
  remapped_live: number;
  /** swiotlb_bounced lines not replayed because dma_* map events carry the same maps with lifetimes. */
  bounced_not_replayed: number;
  /** Lines whose timestamp is earlier than the line before (replayed when reached). */
  out_of_order: number;
  /** Attribute names with no DMA_ATTR_* bit here (ignored). */
  unknown_attrs: Record<string, number>;
}

interface Live {
  id: number;
  cpu: number;
  dev: number;
  slots: number;
  bytes: number;
  n: number;
}

/** One replay operation: the record's words (replay-ring.ts layout) and the trace CPU whose vCPU runs it. */
export type Emit = (traceCpu: number, words: number[]) => void;

export class TraceMatcher {
  private readonly devIndex = new Map<string, number>();
  readonly deviceNames: string[] = [];
  private readonly devices: DeviceSummary[] = [];
  private readonly devLiveSlots: number[] = [];
  private readonly live = new Map<string, Live>();
  /** bounced mode: pending releases, a min-heap on t. */
  private heap: { t: number; key: string }[] = [];
  private nextId = 1;
  private liveMappings = 0;
  private liveBytes = 0;
  private liveSlots = 0;
  private lastT = -Infinity;
  private readonly cpuSet = new Set<number>();
  private readonly hist = new Array<number>(SIZE_BUCKETS.length + 1).fill(0);
  private readonly s = {
    maxSize: 0, peak: { mappings: 0, bytes: 0, slots: 0, at_us: 0 }, unmatched: 0, failedInTrace: 0, mapSgErr: 0, oversize: 0,
    dirNone: 0, truncLists: 0, truncMissing: 0, remapped: 0, bouncedSkipped: 0, outOfOrder: 0, firstUs: NaN, lastUs: NaN,
    unknownAttrs: {} as Record<string, number>,
  };

  constructor(private readonly opts: MatcherOptions) {}

  private dev(name: string): number {
    let i = this.devIndex.get(name);
    if (i === undefined) {
      i = this.deviceNames.length;
      this.devIndex.set(name, i);
      this.deviceNames.push(name);
      this.devices.push({ maps: 0, sg_maps: 0, sg_entries: 0, unmaps: 0, bytes: 0, min_align_mask: this.opts.minAlignMask(name), peak_slots: 0 });
      this.devLiveSlots.push(0);
    }
    return i;
  }

  private attrBits(names: readonly string[]): number {
    let a = 0;
    for (const n of names) {
      const b = ATTR_BITS[n];
      if (b !== undefined) a |= b;
      else this.s.unknownAttrs[n] = (this.s.unknownAttrs[n] ?? 0) + 1;
    }
    return a;
  }

  /** Slots of one mapping at `orig` of `size` bytes, or -1 when it is above the largest mapping. */
  private slotsOf(dev: number, orig: bigint, size: number): { slots: number; offset: number } {
    const mask = this.devices[dev]!.min_align_mask;
    const offset = Number(orig & BigInt(mask & SLOT_MASK));
    const pageOffset = Number(orig & 0xfffn);
    const total = size + offset;
    return { slots: total > MAX_MAP_BYTES ? -1 : nrSlots(total), offset: pageOffset };
  }

  private histogram(size: number): void {
    let b = SIZE_BUCKETS.findIndex((le) => size <= le);
    if (b < 0) b = SIZE_BUCKETS.length;
    this.hist[b]!++;
    if (size > this.s.maxSize) this.s.maxSize = size;
  }

  private hold(key: string, l: Live, t: number): void {
    const prev = this.live.get(key);
    if (prev !== undefined) {
      // Its unmap was lost: it stays held (to the end), under a key no unmap can name.
      this.s.remapped++;
      this.live.delete(key);
      this.live.set(`${key}#lost${prev.id}`, prev);
    }
    this.live.set(key, l);
    this.liveMappings += l.n;
    this.liveBytes += l.bytes;
    this.liveSlots += l.slots;
    this.devLiveSlots[l.dev]! += l.slots;
    const d = this.devices[l.dev]!;
    if (this.devLiveSlots[l.dev]! > d.peak_slots) d.peak_slots = this.devLiveSlots[l.dev]!;
    const p = this.s.peak;
    if (this.liveSlots > p.slots) {
      p.slots = this.liveSlots;
      p.at_us = t;
    }
    if (this.liveMappings > p.mappings) p.mappings = this.liveMappings;
    if (this.liveBytes > p.bytes) p.bytes = this.liveBytes;
  }

  private release(key: string): Live | undefined {
    const l = this.live.get(key);
    if (l === undefined) return undefined;
    this.live.delete(key);
    this.liveMappings -= l.n;
    this.liveBytes -= l.bytes;
    this.liveSlots -= l.slots;
    this.devLiveSlots[l.dev]! -= l.slots;
    return l;
  }

  /** Release the modelled bounces due by `t` (bounced mode). */
  private due(t: number, emit: Emit): void {
    const h = this.heap;
    while (h.length > 0 && h[0]!.t <= t) {
      const top = heapPop(h);
      const l = this.release(top.key);
      if (l !== undefined) emit(l.cpu, [OP_UNMAP, l.id, l.dev, DMA_BIDIRECTIONAL, 0, top.t, 0]);
    }
  }

  record(r: TraceRecord, emit: Emit): void {
    const t = r.timestamp_us;
    if (t < this.lastT) this.s.outOfOrder++;
    else this.lastT = t;
    if (Number.isNaN(this.s.firstUs)) this.s.firstUs = t;
    this.s.lastUs = Math.max(this.lastT, t);
    const f = r.fields;
    if (this.opts.mode === 'bounced') this.due(t, emit);
    switch (f.kind) {
      case 'map': {
        if (this.opts.mode !== 'dma') return;
        const dev = this.dev(f.device);
        if (f.dir === 'NONE') {
          this.s.dirNone++;
          return;
        }
        const d = this.devices[dev]!;
        d.maps++;
        d.bytes += f.size;
        this.histogram(f.size);
        this.cpuSet.add(r.cpu);
        const { slots, offset } = this.slotsOf(dev, f.phys_addr, f.size);
        const id = this.nextId++;
        const words = [OP_MAP, id, dev, DIR_CODE[f.dir], this.attrBits(f.attrs), t, 1, f.size, offset];
        if (f.dma_addr === TRACE_MAPPING_ERROR) {
          // The traced kernel failed it: the replay tries it and lets it go at once.
          this.s.failedInTrace++;
          emit(r.cpu, words);
          emit(r.cpu, [OP_UNMAP, id, dev, DIR_CODE[f.dir], DMA_ATTR_SKIP_CPU_SYNC, t, 0]);
          return;
        }
        if (slots < 0) this.s.oversize++;
        emit(r.cpu, words);
        this.hold(`${dev}:${f.dma_addr.toString(16)}`, { id, cpu: r.cpu, dev, slots: Math.max(0, slots), bytes: slots < 0 ? 0 : f.size, n: slots < 0 ? 0 : 1 }, t);
        return;
      }
      case 'unmap': {
        if (this.opts.mode !== 'dma') return;
        const dev = this.dev(f.device);
        const l = this.release(`${dev}:${f.dma_addr.toString(16)}`);
        if (l === undefined) {
          this.s.unmatched++;
          return;
        }
        this.devices[dev]!.unmaps++;
        emit(l.cpu, [OP_UNMAP, l.id, dev, DIR_CODE[f.dir], this.attrBits(f.attrs), t, 0]);
        return;
      }
      case 'map_sg': {
        if (this.opts.mode !== 'dma') return;
        const dev = this.dev(f.device);
        if (f.dir === 'NONE') {
          this.s.dirNone++;
          return;
        }
        const d = this.devices[dev]!;
        // Entries: sizes[] are the mapped (DMA) lengths, phys_addrs[] each entry's original; with
        // dma-direct (swiotlb) each entry maps alone, so they pair up.
        const n = Math.min(f.sizes.length, DMA_TRACE_MAX_ENTRIES);
        if (f.truncated && f.nents !== null) {
          this.s.truncLists++;
          this.s.truncMissing += f.nents.full - f.nents.traced;
        }
        if (n === 0) return;
        d.sg_maps++;
        d.sg_entries += n;
        this.cpuSet.add(r.cpu);
        const id = this.nextId++;
        const words = [OP_MAP_SG, id, dev, DIR_CODE[f.dir], this.attrBits(f.attrs), t, n];
        let slots = 0;
        let bytes = 0;
        let over = false;
        for (let i = 0; i < n; i++) {
          const size = f.sizes[i]!;
          const s = this.slotsOf(dev, f.phys_addrs[i] ?? 0n, size);
          this.histogram(size);
          d.bytes += size;
          if (s.slots < 0) over = true;
          slots += Math.max(0, s.slots);
          bytes += size;
          words.push(size, s.offset);
        }
        emit(r.cpu, words);
        if (over) this.s.oversize++;
        // An SG list with an oversize entry fails whole (dma_direct_map_sg unwinds): it holds nothing.
        this.hold(sgKey(dev, f.phys_addrs), { id, cpu: r.cpu, dev, slots: over ? 0 : slots, bytes: over ? 0 : bytes, n: over ? 0 : n }, t);
        return;
      }
      case 'unmap_sg': {
        if (this.opts.mode !== 'dma') return;
        const dev = this.dev(f.device);
        const l = this.release(sgKey(dev, f.phys_addrs));
        if (l === undefined) {
          this.s.unmatched++;
          return;
        }
        this.devices[dev]!.unmaps++;
        emit(l.cpu, [OP_UNMAP, l.id, dev, DIR_CODE[f.dir], this.attrBits(f.attrs), t, 0]);
        return;
      }
      case 'map_sg_err':
        this.s.mapSgErr++;
        return;
      case 'bounced': {
        if (this.opts.mode !== 'bounced') {
          this.s.bouncedSkipped++;
          return;
        }
        const dev = this.dev(f.device);
        const d = this.devices[dev]!;
        d.maps++;
        d.bytes += f.size;
        this.histogram(f.size);
        this.cpuSet.add(r.cpu);
        const { slots, offset } = this.slotsOf(dev, f.dev_addr, f.size);
        const id = this.nextId++;
        // swiotlb_bounced names no direction: replayed as DMA_BIDIRECTIONAL (both copies).
        emit(r.cpu, [OP_MAP, id, dev, DMA_BIDIRECTIONAL, 0, t, 1, f.size, offset]);
        if (slots < 0) this.s.oversize++;
        const key = `b${id}`;
        this.hold(key, { id, cpu: r.cpu, dev, slots: Math.max(0, slots), bytes: slots < 0 ? 0 : f.size, n: slots < 0 ? 0 : 1 }, t);
        heapPush(this.heap, { t: t + this.opts.bouncedLifetimeUs, key });
        this.devices[dev]!.unmaps++;
        return;
      }
      default:
        return; // dma_sync_*: counted by the parser, not replayed (they copy, they do not allocate)
    }
  }

  /** The trace is over: release the modelled bounces still pending (bounced mode). */
  end(emit: Emit): void {
    if (this.opts.mode === 'bounced') this.due(Infinity, emit);
  }

  summary(stats: TraceStats): TraceSummary {
    const s = this.s;
    const cpus = [...this.cpuSet].sort((a, b) => a - b);
    let heldSlots = 0;
    let heldN = 0;
    for (const l of this.live.values()) {
      heldSlots += l.slots;
      heldN++;
    }
    return {
      mode: this.opts.mode,
      lines: stats.lines, header_lines: stats.headerLines, events: { ...stats.byEvent }, dma_alloc_events: stats.allocEvents, dma_free_events: stats.freeEvents,
      other_events: stats.otherEvents, lost_events: stats.lostEvents, bad_lines: stats.badLines,
      cpus, cpu_count: cpus.length === 0 ? 0 : cpus.at(-1)! + 1,
      first_us: Number.isNaN(s.firstUs) ? 0 : s.firstUs, last_us: Number.isNaN(s.lastUs) ? 0 : s.lastUs,
      devices: Object.fromEntries(this.deviceNames.map((n, i) => [n, { ...this.devices[i]! }])),
      size_histogram: this.hist.map((count, i) => ({ le: i < SIZE_BUCKETS.length ? SIZE_BUCKETS[i]! : null, count })),
      max_size: s.maxSize,
      peak: { ...s.peak },
      unmatched_unmaps: s.unmatched,
      held_to_end: { mappings: heldN, slots: heldSlots },
      failed_in_trace: s.failedInTrace, map_sg_err: s.mapSgErr, oversize: s.oversize, dir_none: s.dirNone,
      truncated_sg: { lists: s.truncLists, entries_missing: s.truncMissing },
      remapped_live: s.remapped, bounced_not_replayed: s.bouncedSkipped, out_of_order: s.outOfOrder, unknown_attrs: { ...s.unknownAttrs },
    };
  }
}


function sgKey(dev: number, phys: readonly bigint[]): string {
  return `${dev}:sg:${phys.map((p) => p.toString(16)).join(',')}`;
}

function heapPush(h: { t: number; key: string }[], e: { t: number; key: string }): void {
  h.push(e);
  let i = h.length - 1;
  while (i > 0) {
    const p = (i - 1) >> 1;
    if (h[p]!.t <= h[i]!.t) break;
    [h[p], h[i]] = [h[i]!, h[p]!];
    i = p;
  }
}

function heapPop(h: { t: number; key: string }[]): { t: number; key: string } {
  const top = h[0]!;
  const last = h.pop()!;
  if (h.length > 0) {
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && h[l]!.t < h[m]!.t) m = l;
      if (r < h.length && h[r]!.t < h[m]!.t) m = r;
      if (m === i) break;
      [h[m], h[i]] = [h[i]!, h[m]!];
      i = m;
    }
  }
  return top;
}

/** Words of a map record with n entries (for callers sizing buffers). */
export function mapRecordWords(n: number): number {
  return REC_HEADER + 2 * n;
}
