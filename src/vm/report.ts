// The run report: fio's per-job and per-group sections, then the swiotlb's own counters under their
// debugfs names. One plain document serves the text and the JSON output.
import { type DirectionStats, type GroupReport, type JobReport, formatGroupStatus, formatJobReport } from '../report/fio-report.js';
import { formatBytes } from '../util/units.js';
import type { FioBlockSize } from '../workload/fio.js';
import {
  I_DROPS, I_END_MS, I_READ_BYTES, I_READ_ERRORS, I_READ_IOS, I_START_MS, I_UNWRITTEN, I_VERIFY_BAD, I_VERIFY_OK,
  I_WRITE_BYTES, I_WRITE_ERRORS, I_WRITE_IOS, INST_FIELDS,
} from './jobs.js';
import { type VmRunResult, areaContention, mergedHistogram, sumSwiotlbStats } from './vm.js';

// A type alias, not an interface, so that it fits the catalogue's open RunSummary record.
export type SwiotlbReport = {
  io_tlb_nslabs: number;
  io_tlb_used: number;
  io_tlb_used_hiwater: number;
  io_tlb_transient_nslabs: number;
  nareas: number;
  map_attempts: number;
  map_failures: number;
  map_failures_by_cause: { full: number; oversize: number; no_pool: number; not_capable: number };
  unmaps: number;
  bytes_bounced_to_device: number;
  bytes_bounced_from_device: number;
  map_unmap_per_sec: number;
  areas: { area: number; acquired: number; contended: number; parked: number }[];
};

export interface RunReport {
  jobs: (JobReport & { verify?: { sectors_ok: number; sectors_bad: number; sectors_unwritten: number }; packets_dropped: number })[];
  groups: GroupReport[];
  swiotlb: SwiotlbReport;
  run: { vcpus: number; boot_ms: number; wall_ms: number; run_ms: number; interrupted: boolean; device_commands: number };
}

function bsText(bs: FioBlockSize): string {
  if (bs.kind === 'fixed') return formatBytes(bs.bytes);
  if (bs.kind === 'range') return `${formatBytes(bs.minBytes)}-${formatBytes(bs.maxBytes)}`;
  return bs.entries.map((e) => `${formatBytes(e.bytes)}/${e.percent}`).join(':');
}

export function buildReport(r: VmRunResult, vcpus: number): RunReport {
  const s = r.instanceStats;
  const at = (id: number, f: number) => s[id * INST_FIELDS + f]!;
  const firstErrors = new Map<number, string>();
  for (const v of r.vcpuResults) for (const [id, msg] of Object.entries(v.firstErrors)) firstErrors.set(Number(id), msg);
  const jobs: RunReport['jobs'] = [];
  const groupAcc = new Map<number, GroupReport & { start: number; end: number }>();
  r.jobs.forEach((job, j) => {
    const inst = r.plan.instances.filter((i) => i.job === j);
    if (inst.length === 0) return;
    const ids = inst.map((i) => i.id);
    const sum = (f: number) => ids.reduce((acc, id) => acc + at(id, f), 0);
    const start = Math.min(...ids.map((id) => at(id, I_START_MS)));
    const end = Math.max(...ids.map((id) => at(id, I_END_MS)));
    const runtime = Math.max(1, Math.round(end - start));
    const dir = (ios: number, bytes: number, errors: number, d: 'read' | 'write'): DirectionStats | undefined =>
      sum(ios) + sum(errors) === 0 ? undefined : { ios: sum(ios), bytes: sum(bytes), errors: sum(errors), clat: mergedHistogram(r.histograms, ids, d).snapshot() };
    const read = dir(I_READ_IOS, I_READ_BYTES, I_READ_ERRORS, 'read');
    const write = dir(I_WRITE_IOS, I_WRITE_BYTES, I_WRITE_ERRORS, 'write');
    const errors = sum(I_READ_ERRORS) + sum(I_WRITE_ERRORS);
    const first = ids.map((id) => firstErrors.get(id)).find((m) => m !== undefined);
    const group = inst[0]!.group;
    jobs.push({
      name: job.name, groupid: group, jobs: inst.length, rw: job.rw, bs: bsText(job.bs.read), ioengine: job.ioengine,
      iodepth: job.iodepth, runtime_ms: runtime, ...(read ? { read } : {}), ...(write ? { write } : {}),
      errors_total: errors, ...(first !== undefined ? { first_error: first } : {}),
      cpus: [...new Set(inst.map((i) => i.cpu))].sort((a, b) => a - b),
      ...(job.verify !== 'none' ? { verify: { sectors_ok: sum(I_VERIFY_OK), sectors_bad: sum(I_VERIFY_BAD), sectors_unwritten: sum(I_UNWRITTEN) } } : {}),
      packets_dropped: sum(I_DROPS),
    });
    const g = groupAcc.get(group) ?? { groupid: group, runtime_ms: 0, start, end };
    g.start = Math.min(g.start, start);
    g.end = Math.max(g.end, end);
    if (read) g.read = { bytes: (g.read?.bytes ?? 0) + read.bytes, ios: (g.read?.ios ?? 0) + read.ios };
    if (write) g.write = { bytes: (g.write?.bytes ?? 0) + write.bytes, ios: (g.write?.ios ?? 0) + write.ios };
    groupAcc.set(group, g);
  });
  const groups = [...groupAcc.values()].map(({ start, end, ...g }) => ({ ...g, runtime_ms: Math.max(1, Math.round(end - start)) }));
  const st = sumSwiotlbStats(r.swiotlbStats, vcpus);
  const d = r.boot.mem.debugfs();
  const failures = st.map_fail_full + st.map_fail_oversize + st.map_fail_no_pool + st.map_fail_not_capable;
  return {
    jobs,
    groups,
    swiotlb: {
      ...d,
      nareas: r.boot.nareas,
      map_attempts: st.map_attempts,
      map_failures: failures,
      map_failures_by_cause: { full: st.map_fail_full, oversize: st.map_fail_oversize, no_pool: st.map_fail_no_pool, not_capable: st.map_fail_not_capable },
      unmaps: st.unmaps,
      bytes_bounced_to_device: st.bytes_to_device,
      bytes_bounced_from_device: st.bytes_from_device,
      map_unmap_per_sec: Math.round(((st.map_ok + st.unmaps) / 2 / r.runMs) * 1000),
      areas: areaContention(r.boot.mem),
    },
    run: { vcpus, boot_ms: Math.round(r.bootMs), wall_ms: Math.round(r.wallMs), run_ms: Math.round(r.runMs), interrupted: r.interrupted, device_commands: r.deviceCommands },
  };
}

export function formatReport(rep: RunReport): string {
  const out: string[] = [];
  for (const job of rep.jobs) {
    out.push(formatJobReport(job).trimEnd());
    if (job.verify) out.push(`  verify: ${job.verify.sectors_ok} sectors ok, ${job.verify.sectors_bad} bad, ${job.verify.sectors_unwritten} never written`);
    if (job.packets_dropped > 0) out.push(`  packets dropped: ${job.packets_dropped}`);
  }
  out.push(formatGroupStatus(rep.groups).trimEnd());
  const s = rep.swiotlb;
  const contended = s.areas.reduce((a, x) => a + x.contended, 0);
  const acquired = s.areas.reduce((a, x) => a + x.acquired, 0);
  const parked = s.areas.reduce((a, x) => a + x.parked, 0);
  const busiest = [...s.areas].sort((a, b) => b.contended - a.contended)[0];
  out.push('');
  out.push('swiotlb (/sys/kernel/debug/swiotlb):');
  out.push(`  io_tlb_nslabs=${s.io_tlb_nslabs} (${formatBytes(s.io_tlb_nslabs * 2048)}), io_tlb_used=${s.io_tlb_used}, io_tlb_used_hiwater=${s.io_tlb_used_hiwater} (${((100 * s.io_tlb_used_hiwater) / s.io_tlb_nslabs).toFixed(1)}%), io_tlb_transient_nslabs=${s.io_tlb_transient_nslabs}`);
  out.push(`  maps: attempts=${s.map_attempts}, failures=${s.map_failures} (full=${s.map_failures_by_cause.full}, oversize=${s.map_failures_by_cause.oversize}), unmaps=${s.unmaps}`);
  out.push(`  bounced: to device ${formatBytes(s.bytes_bounced_to_device)}, from device ${formatBytes(s.bytes_bounced_from_device)}`);
  out.push(`  area locks: ${s.nareas} areas, ${acquired} acquisitions, ${contended} contended (${acquired > 0 ? ((100 * contended) / acquired).toFixed(2) : '0.00'}%), ${parked} parks${busiest && busiest.contended > 0 ? `; busiest area ${busiest.area} (${busiest.contended} contended)` : ''}`);
  out.push(`  emulator: ${s.map_unmap_per_sec.toLocaleString('en-US')} map+unmap pairs/s sustained`);
  out.push('');
  out.push(`run: ${rep.run.vcpus} vCPUs, ${(rep.run.run_ms / 1000).toFixed(2)} s of I/O, ${(rep.run.wall_ms / 1000).toFixed(2)} s wall${rep.run.interrupted ? ' (interrupted: partial report)' : ''}`);
  return out.join('\n') + '\n';
}
