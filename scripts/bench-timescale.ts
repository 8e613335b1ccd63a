// npm run bench:timescale: how the shipped jobs' figures converge as --time-scale K grows. Each job
// runs at every K (emulated runtime fixed, so a run takes K x as long on the wall); the table gives
// IOPS, mean and p99 completion latency, io_tlb_used_hiwater and the share of maps that failed (the I/O
// errors and dropped packets come from them), each K's change from the K before it, and
// the smallest K from which no figure moves by more than the tolerance: the K a user needs on this
// host (docs/time-scale.md).
// Not part of `npm test`: these are timings.
import { quote } from '../src/util/quote.js';
import { join } from 'node:path';
import { runVmJson } from '../src/bench/vm-run.js';
import { parseFlags } from '../src/cli/flags.js';
import { runMain } from '../src/cli/main.js';
import { InputError } from '../src/errors.js';
import { parseDuration, parseIntInRange, parsePercent } from '../src/util/units.js';
import { projectRoot } from '../src/util/worker-file.js';
import type { RunReport } from '../src/vm/report.js';

/** The shipped jobs and the VM each one's header runs it on. ramp.fio (a 2 s lead-in on 32 vCPUs) and md-deadlock.fio (a stall by design) are left out. */
const JOBS: Record<string, string[]> = {
  'randrw-4k': ['--vcpus', '4'],
  heavy: ['--vcpus', '8', '--mem', '4G', '--swiotlb', '8M'],
  net: ['--vcpus', '4'],
  'seq-large': ['--vcpus', '4'],
};

/** failures: the share of map attempts that failed (a count would grow with IOPS and runtime). */
interface Figures { iops: number; clat_mean_us: number; clat_p99_us: number; hiwater: number; failures: number }

function figures(rep: RunReport): Figures {
  let ios = 0;
  let latSum = 0;
  let p99 = 0;
  // Every failed request (an I/O error or a dropped packet) starts with a failed map.
  const failures = rep.swiotlb.map_failures / Math.max(1, rep.swiotlb.map_attempts);
  for (const j of rep.jobs) {
    for (const d of [j.read, j.write]) {
      if (d === undefined) continue;
      ios += d.ios;
      latSum += d.clat.mean_ns * d.clat.count;
      const p = d.clat.percentiles.find((x) => x.p === 99);
      if (p !== undefined && d.clat.count > 0) p99 = Math.max(p99, p.value_ns);
    }
  }
  return {
    iops: (ios * 1000) / rep.run.run_ms, clat_mean_us: ios > 0 ? latSum / ios / 1000 : 0, clat_p99_us: p99 / 1000,
    hiwater: rep.swiotlb.io_tlb_used_hiwater, failures,
  };
}

/** Relative change from a to b (0 when both are 0). */
const change = (a: number, b: number): number => (a === b ? 0 : Math.abs(b - a) / Math.max(Math.abs(a), Math.abs(b)));

runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), [
    { name: 'k', kind: 'string', form: 'K[,K...]', default: '1,2,4,8,16', help: 'time scales to run, comma-separated, e.g. 1,2,4,8,16' },
    { name: 'runtime', kind: 'string', form: 'DURATION', default: '500ms', help: 'emulated runtime of each run, e.g. 500ms' },
    { name: 'jobs', kind: 'string', form: 'JOB[,JOB...]', default: 'all of them', help: `jobs to run, comma-separated, of ${Object.keys(JOBS).join(', ')}` },
    { name: 'tolerance', kind: 'string', form: 'N%', default: '10%', help: 'largest change counted as converged, e.g. 10%' },
  ], 'bench:timescale');
  const ks = (flags.get('k') ?? '1,2,4,8,16').split(',').map((x) => parseIntInRange(x, '--k', 1, 10_000));
  const runtime = flags.get('runtime') ?? '500ms';
  parseDuration(runtime, '--runtime');
  const tol = parsePercent(flags.get('tolerance') ?? '10%', '--tolerance', 1, 100) / 100;
  const names = (flags.get('jobs') ?? Object.keys(JOBS).join(',')).split(',');
  for (const n of names) {
    if (JOBS[n] === undefined) throw new InputError('EBADFLAG', `--jobs: ${quote(n)} is not a shipped job here; expected some of ${Object.keys(JOBS).join(', ')}`);
  }
  const out: Record<string, { k: number; figures: Figures }[]> = {};
  const converged: Record<string, number | null> = {};
  for (const name of names) {
    const rows: { k: number; figures: Figures }[] = [];
    for (const k of ks) {
      if (process.stderr.isTTY) process.stderr.write(`  ${name}, K=${k}\n`);
      const { report } = await runVmJson([...JOBS[name]!, '--job', join(projectRoot(), 'jobs', `${name}.fio`), '--runtime', runtime, '--time-scale', String(k)]);
      rows.push({ k, figures: figures(report) });
    }
    out[name] = rows;
    // The smallest K from which every later step changes every figure by at most the tolerance
    // (the failed share: by at most 1 point, or the tolerance).
    const steady = (i: number): boolean => {
      for (let j = i; j + 1 < rows.length; j++) {
        const a = rows[j]!.figures;
        const b = rows[j + 1]!.figures;
        if (change(a.iops, b.iops) > tol || change(a.clat_mean_us, b.clat_mean_us) > tol || change(a.hiwater, b.hiwater) > tol) return false;
        if (Math.abs(a.failures - b.failures) > 0.01 && change(a.failures, b.failures) > tol) return false;
      }
      return true;
    };
    let at: number | null = null;
    for (let i = 0; i + 1 < rows.length; i++) if (steady(i)) { at = rows[i]!.k; break; }
    converged[name] = at;
    console.log(`${name} (${JOBS[name]!.join(' ')}, --runtime ${runtime} emulated)`);
    console.log('      K        IOPS   change   clat mean us   change   clat p99 us   hiwater   change   failed maps');
    rows.forEach((row, i) => {
      const f = row.figures;
      const p = i > 0 ? rows[i - 1]!.figures : null;
      const pct = (a: number | undefined, b: number) => (a === undefined ? '' : `${(change(a, b) * 100).toFixed(0)}%`);
      console.log(`  ${String(row.k).padStart(5)}  ${Math.round(f.iops).toLocaleString('en-US').padStart(10)}  ${pct(p?.iops, f.iops).padStart(7)}  ${f.clat_mean_us.toFixed(1).padStart(13)}  ${pct(p?.clat_mean_us, f.clat_mean_us).padStart(7)}  ${f.clat_p99_us.toFixed(1).padStart(12)}  ${String(f.hiwater).padStart(8)}  ${pct(p?.hiwater, f.hiwater).padStart(7)}  ${`${(f.failures * 100).toFixed(2)}%`.padStart(12)}`);
    });
    console.log(`  converged (every later step within ${(tol * 100).toFixed(0)}%): ${at === null ? `not by K=${ks[ks.length - 1]}` : `from K=${at}`}`);
  }
  console.log(JSON.stringify({ bench: 'timescale', runtime, tolerance: tol, ks, jobs: out, converged }));
  return 0;
});
