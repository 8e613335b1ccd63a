// Expected strings are worked out by hand from fio's rules (lib/num2str.c, stat.c, stat.h), with the
// arithmetic in comments, and some are checked against lines from real fio 3.x runs.
import { describe, expect, it } from 'vitest';
import {
  formatBandwidth,
  formatCpuList,
  formatFixed,
  formatGroupStatus,
  groupStats,
  formatIops,
  formatJobReport,
  formatJobStartLine,
  formatLatencyLine,
  formatPercentiles,
  latencyStatsUnit,
  num2str,
  percentileUnit,
  type DirectionStats,
  type JobReport,
} from '../../src/report/fio-report.js';
import type { HistogramSnapshot } from '../../src/report/histogram.js';

const FIO_PERCENTILES = [1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.5, 99.9, 99.95, 99.99];

function snap(s: Omit<HistogramSnapshot, 'percentiles'>, values_ns: number[], ps = FIO_PERCENTILES): HistogramSnapshot {
  return { ...s, percentiles: ps.map((p, j) => ({ p, value_ns: values_ns[j]! })) };
}

describe('formatFixed (C printf %.Nf)', () => {
  it('rounds exact binary ties to even, as glibc does, and everything else to nearest', () => {
    expect(formatFixed(0.125, 2)).toBe('0.12'); // toFixed says 0.13
    expect(formatFixed(0.375, 2)).toBe('0.38');
    expect(formatFixed(0.25, 1)).toBe('0.2');
    expect(formatFixed(2.5, 0)).toBe('2');
    expect(formatFixed(3.5, 0)).toBe('4');
    expect(formatFixed(1.005, 2)).toBe('1.00'); // 1.00499999999999989... in binary
    expect(formatFixed(0.996, 2)).toBe('1.00');
    expect(formatFixed(160.21, 2)).toBe('160.21');
  });
});

describe('num2str (lib/num2str.c)', () => {
  it('formats IOPS with SI prefixes in four significant places', () => {
    expect(formatIops(0)).toBe('0');
    expect(formatIops(999)).toBe('999');
    expect(formatIops(4801)).toBe('4801'); // four digits fit
    expect(formatIops(9999)).toBe('9999');
    expect(formatIops(10_000)).toBe('10.0k'); // 10 rem 0: two digits leave room for one decimal
    expect(formatIops(12_286)).toBe('12.3k'); // 12 rem 286: 0.286 -> 0.3
    expect(formatIops(12_250)).toBe('12.2k'); // 0.25 -> %.1f ties to even: 0.2
    expect(formatIops(99_960)).toBe('100.0k'); // 0.96 -> "1.0": fio adds 1 and keeps ".0"
    expect(formatIops(123_456)).toBe('123k'); // 123 rem 456: no room, 456 < 500 rounds down
    expect(formatIops(123_500)).toBe('124k'); // 500 >= 500 rounds up
    expect(formatIops(1_234_567)).toBe('1235k'); // 1234 rem 567 fits four digits, rounds up
    expect(formatIops(12_345_678)).toBe('12.3M'); // 12345 rem 678, then 12 rem 345: 678 is dropped
  });

  it('formats bandwidth in binary units with the decimal ones in parentheses', () => {
    expect(formatBandwidth(0)).toBe('0B/s (0B/s)');
    expect(formatBandwidth(1023)).toBe('1023B/s (1023B/s)');
    // 10240 = 10 KiB exactly; 10240 / 1000 = 10 rem 240 -> 10.2k
    expect(formatBandwidth(10_240)).toBe('10.0KiB/s (10.2kB/s)');
    // 409559 = 399 * 1024 + 983: three digits, no room, 983 >= 512 -> 400; 409 rem 559 -> 410
    expect(formatBandwidth(409_559)).toBe('400KiB/s (410kB/s)');
    // 50326615 = 49147 * 1024 + 87, 49147 = 47 * 1024 + 1019: 1019/1024 = 0.995 -> "1.0" -> 48.0;
    // 50326615 -> 50326 rem 615 -> 50 rem 326 -> 50.3
    expect(formatBandwidth(50_326_615)).toBe('48.0MiB/s (50.3MB/s)');
    // 1 GiB/s: 1024 rem 0 MiB; 1073741824 -> 1073741 rem 824 -> 1073 rem 741, rounds up to 1074
    expect(formatBandwidth(1_073_741_824)).toBe('1024MiB/s (1074MB/s)');
    // 12345678901 -> 12056327 rem 53 -> 11773 rem 775 -> 11 rem 509: 0.497 -> 0.5;
    // SI: 12345678 -> 12345 -> 12 rem 345 -> 12.3
    expect(formatBandwidth(12_345_678_901)).toBe('11.5GiB/s (12.3GB/s)');
  });

  it('formats sizes and six-digit latencies', () => {
    expect(num2str(503_316_480, 4, true, 'B')).toBe('480MiB');
    expect(num2str(503_316_480, 4, false, 'B')).toBe('503MB');
    expect(num2str(1_048_576, 4, true, 'B')).toBe('1024KiB');
    expect(num2str(1_048_576, 4, false, 'B')).toBe('1049kB'); // as fio's familiar "io=1024KiB (1049kB)"
    expect(num2str(4096, 4, true, 'B')).toBe('4096B');
    expect(num2str(65_536, 4, true, 'B')).toBe('64.0KiB');
    expect(num2str(999_999, 6, false, '')).toBe('999999');
    expect(num2str(5_000_000, 6, false, '')).toBe('5000.0k');
    expect(num2str(200_000_000, 6, false, '')).toBe('200000k');
  });
});

describe('latency unit selection (stat.h nsec_to_usec/msec, show_clat_percentiles)', () => {
  it('picks the unit of the min/max/avg/stdev line from min, max and stdev', () => {
    expect(latencyStatsUnit(10_519, 57_976, 2609.65)).toBe('nsec'); // a real fio line: max <= 99999
    expect(latencyStatsUnit(12_000, 4_012_000, 90_110)).toBe('usec');
    expect(latencyStatsUnit(359_000, 45_445_000, 1_983_670)).toBe('usec'); // real: max < 100 ms
    expect(latencyStatsUnit(17_000_000, 107_000_000, 8_550_000)).toBe('msec'); // real
    expect(latencyStatsUnit(2000, 200_000, 5000)).toBe('nsec'); // min must be above 2000
    expect(latencyStatsUnit(2001, 100_000, 1000.5)).toBe('usec');
    expect(latencyStatsUnit(2001, 99_999, 5000)).toBe('nsec'); // max must be above 99999
    expect(latencyStatsUnit(5_000_000, 200_000_000, 500)).toBe('nsec'); // a tight spread stays in nsec
    expect(latencyStatsUnit(2_000_000, 200_000_000, 5_000_000)).toBe('usec'); // min not above 2 ms
  });

  it('picks the percentile unit from the smallest and largest percentile values only', () => {
    expect(percentileUnit(11_584, 58_112)).toBe('nsec'); // real
    expect(percentileUnit(445_000, 28_181_000)).toBe('usec'); // real
    expect(percentileUnit(19_000_000, 101_000_000)).toBe('msec'); // real
    expect(percentileUnit(2001, 99_999)).toBe('nsec');
    expect(percentileUnit(2001, 100_000)).toBe('usec');
  });

  it('prints the stats line with fio widths and truncation', () => {
    // usec: min 2500 -> 2 (truncated), max 1841, mean 7.63 padded to five
    expect(formatLatencyLine('clat', { count: 9, min_ns: 2500, max_ns: 1_841_000, mean_ns: 7630, stdev_ns: 5140, percentiles: [] }))
      .toBe('    clat (usec): min=2, max=1841, avg= 7.63, stdev= 5.14\n');
    // nsec because the spread is under 1 us, so min and max go through num2str's six digits
    expect(formatLatencyLine('clat', { count: 9, min_ns: 5_000_000, max_ns: 200_000_000, mean_ns: 6e6, stdev_ns: 500, percentiles: [] }))
      .toBe('    clat (nsec): min=5000.0k, max=200000k, avg=6000000.00, stdev=500.00\n');
  });

  it('widens the percentile column past five digits and puts fewer to a line', () => {
    // usec (smallest 3000 > 2000, largest > 99999); largest 1234567 us: seven digits, 73/19 = 3 a line.
    // Values round up: 3000 -> 3, 1234567890 -> 1234568.
    const s = snap(
      { count: 100, min_ns: 3000, max_ns: 1_234_567_890, mean_ns: 1, stdev_ns: 1 },
      [3000, 10_000_000, 1_234_567_000, 1_234_567_890],
      [50, 99, 99.9, 99.99],
    );
    expect(formatPercentiles('clat', s)).toBe(
      '    clat percentiles (usec):\n' +
      '     | 50.00th=[      3], 99.00th=[  10000], 99.90th=[1234567],\n' +
      '     | 99.99th=[1234568]\n',
    );
  });

  it('scales percentiles to msec rounding up at each step', () => {
    // 19500000 -> 19500 -> 20 (19.5 rounds up); 100663296 -> 100664 -> 101
    const s = snap({ count: 100, min_ns: 1, max_ns: 1, mean_ns: 1, stdev_ns: 1 }, [19_500_000, 100_663_296], [50, 99.99]);
    expect(formatPercentiles('clat', s)).toBe(
      '    clat percentiles (msec):\n' +
      '     | 50.00th=[   20], 99.99th=[  101]\n',
    );
  });
});

describe('formatJobReport', () => {
  // 480 MiB of 4 KiB reads (122880) and 1000 writes of 4096 B in 10001 ms.
  const read: DirectionStats = {
    ios: 122_880,
    bytes: 503_316_480,
    errors: 0,
    clat: snap(
      { count: 122_880, min_ns: 12_000, max_ns: 4_012_000, mean_ns: 160_210, stdev_ns: 90_110 },
      [20_224, 25_088, 30_208, 40_192, 50_176, 60_416, 140_288, 160_256, 179_200, 199_680, 250_880, 301_056,
        501_760, 700_416, 1_003_520, 2_007_040, 3_981_312],
    ),
  };
  const write: DirectionStats = {
    ios: 1000,
    bytes: 4_096_000,
    errors: 0,
    clat: snap(
      // 13462.125 and 2609.375 are exact binary ties at two decimals: glibc prints .12 and .38
      { count: 1000, min_ns: 1500, max_ns: 57_976, mean_ns: 13_462.125, stdev_ns: 2609.375 },
      [1560, 2128, 11_584, 12_096, 12_352, 12_480, 12_608, 12_992, 13_632, 13_888, 15_424, 18_560, 23_168,
        27_264, 38_656, 43_264, 58_112],
    ),
  };
  const job: JobReport = {
    name: 'randrw',
    groupid: 0,
    jobs: 4,
    rw: 'randrw',
    bs: { read: '4k', write: '4k' },
    ioengine: 'psync',
    iodepth: 1,
    runtime_ms: 10_001,
    read,
    write,
    errors_total: 0,
    cpus: [3, 1, 0, 2],
  };

  it('lays out a complete job like fio', () => {
    // read: IOPS 122880000 / 10001 = 12286 -> 12.3k; BW 503316480000 / 10001 = 50326615 B/s.
    //   clat in usec (min 12000 > 2000, max > 99999, stdev > 1000): avg 160.21, stdev 90.11.
    //   Percentiles in usec, rounded up: 20224 -> 21, ..., 3981312 -> 3982; width 5, four a line.
    // write: IOPS 1000000 / 10001 = 99; BW 4096000000 / 10001 = 409559 B/s; io 4096000 B = 4000 KiB.
    //   clat in nsec (min 1500 is not above 2000); percentiles in nsec (smallest 1560).
    expect(formatJobReport(job)).toBe(
      'randrw: (groupid=0, jobs=4): err= 0: cpus=0-3\n' +
      '  read: IOPS=12.3k, BW=48.0MiB/s (50.3MB/s)(480MiB/10001msec)\n' +
      '    clat (usec): min=12, max=4012, avg=160.21, stdev=90.11\n' +
      '    clat percentiles (usec):\n' +
      '     |  1.00th=[   21],  5.00th=[   26], 10.00th=[   31], 20.00th=[   41],\n' +
      '     | 30.00th=[   51], 40.00th=[   61], 50.00th=[  141], 60.00th=[  161],\n' +
      '     | 70.00th=[  180], 80.00th=[  200], 90.00th=[  251], 95.00th=[  302],\n' +
      '     | 99.00th=[  502], 99.50th=[  701], 99.90th=[ 1004], 99.95th=[ 2008],\n' +
      '     | 99.99th=[ 3982]\n' +
      '  write: IOPS=99, BW=400KiB/s (410kB/s)(4000KiB/10001msec)\n' +
      '    clat (nsec): min=1500, max=57976, avg=13462.12, stdev=2609.38\n' +
      '    clat percentiles (nsec):\n' +
      '     |  1.00th=[ 1560],  5.00th=[ 2128], 10.00th=[11584], 20.00th=[12096],\n' +
      '     | 30.00th=[12352], 40.00th=[12480], 50.00th=[12608], 60.00th=[12992],\n' +
      '     | 70.00th=[13632], 80.00th=[13888], 90.00th=[15424], 95.00th=[18560],\n' +
      '     | 99.00th=[23168], 99.50th=[27264], 99.90th=[38656], 99.95th=[43264],\n' +
      '     | 99.99th=[58112]\n',
    );
  });

  it('shows err= 5 (EIO) and our errors line when I/Os failed', () => {
    const failed: JobReport = {
      ...job,
      write: undefined,
      errors_total: 3,
      first_error: 'swiotlb buffer is full (sz: 65536 bytes), total 32768 (slots), used 32760 (slots)',
      cpus: [0],
    };
    const text = formatJobReport(failed);
    expect(text.split('\n')[0]).toBe('randrw: (groupid=0, jobs=4): err= 5: cpus=0');
    expect(text.endsWith(
      '     | 99.99th=[ 3982]\n' +
      '  errors: 3 (first: swiotlb buffer is full (sz: 65536 bytes), total 32768 (slots), used 32760 (slots))\n',
    )).toBe(true);
    expect(text).not.toContain('write:');
  });

  it('shows only the header and errors for a job that moved no bytes', () => {
    const none: JobReport = {
      ...job,
      read: { ...read, ios: 0, bytes: 0, clat: { count: 0, min_ns: 0, max_ns: 0, mean_ns: 0, stdev_ns: 0, percentiles: [] } },
      write: undefined,
      errors_total: 12,
      first_error: undefined,
      cpus: [],
    };
    expect(formatJobReport(none)).toBe('randrw: (groupid=0, jobs=4): err= 5:\n  errors: 12\n');
  });

  it('prints fio\'s job start line', () => {
    expect(formatJobStartLine(job)).toBe(
      'randrw: (g=0): rw=randrw, bs=(R) 4096B-4096B, (W) 4096B-4096B, ioengine=psync, iodepth=1\n',
    );
    // Each direction its own min-max (num2str: 65536 B -> 64.0KiB, 1500 B stays 1500B).
    expect(formatJobStartLine({ ...job, bs: { read: '4k-64k', write: '64k' } })).toContain('bs=(R) 4096B-64.0KiB, (W) 64.0KiB-64.0KiB, ioengine=');
    expect(formatJobStartLine({ ...job, bs: { read: '4k/50:1500/50', write: '1500' } })).toContain('bs=(R) 1500B-4096B, (W) 1500B-1500B,');
  });

  it('lists cpus as ranges', () => {
    expect(formatCpuList([3, 0, 1, 2, 8, 10, 11, 11])).toBe('0-3,8,10-11');
    expect(formatCpuList([5])).toBe('5');
    expect(formatCpuList([])).toBe('');
  });
});

describe('groupStats and formatGroupStatus (fio\'s sum_group_stats and show_group_stats)', () => {
  const MiB = 1024 * 1024;
  const noLat = { count: 0, min_ns: 0, max_ns: 0, mean_ns: 0, stdev_ns: 0, percentiles: [] };
  const dir = (bytes: number, ios: number) => ({ bytes, ios, errors: 0, clat: noLat });
  const job = (name: string, groupid: number, runtime_ms: number, d: Partial<Pick<JobReport, 'read' | 'write'>>): JobReport => ({
    name, groupid, jobs: 1, rw: d.read ? 'read' : 'write', bs: { read: '1500', write: '1500' }, ioengine: 'net', iodepth: 1, runtime_ms, ...d, errors_total: 0, cpus: [0],
  });

  it('takes each direction from the jobs that moved bytes in it, each with its own runtime (axboe/fio examples/netio.fio)', () => {
    // netio.fio: the receiver reads 64 MiB in 114 ms, the sender writes 64 MiB in 1091 ms, one group.
    // READ: 67108864 * 1000 / 114 = 588674245 B/s -> 561MiB/s (589MB/s); io 64.0MiB (67.1MB); run 114.
    // WRITE: 67108864 * 1000 / 1091 = 61511332 B/s -> 58.7MiB/s (61.5MB/s); run 1091.
    const groups = groupStats([
      job('receiver', 0, 114, { read: dir(64 * MiB, 44_739) }),
      job('sender', 0, 1091, { write: dir(64 * MiB, 44_739) }),
    ], new Map([[0, 2091]]));
    expect(groups).toEqual([{
      groupid: 0,
      // The span (the sender's startdelay=1 included) is kept, not used by the lines.
      runtime_ms: 2091,
      read: { bytes: 64 * MiB, ios: 44_739, bw_bytes: 588_674_245, min_bw_bytes: 588_674_245, max_bw_bytes: 588_674_245, min_run_ms: 114, max_run_ms: 114 },
      write: { bytes: 64 * MiB, ios: 44_739, bw_bytes: 61_511_332, min_bw_bytes: 61_511_332, max_bw_bytes: 61_511_332, min_run_ms: 1091, max_run_ms: 1091 },
    }]);
    expect(formatGroupStatus(groups)).toBe(
      '\n' +
      'Run status group 0 (all jobs):\n' +
      '   READ: bw=561MiB/s (589MB/s), 561MiB/s-561MiB/s (589MB/s-589MB/s), io=64.0MiB (67.1MB), run=114-114msec\n' +
      '  WRITE: bw=58.7MiB/s (61.5MB/s), 58.7MiB/s-58.7MiB/s (61.5MB/s-61.5MB/s), io=64.0MiB (67.1MB), run=1091-1091msec\n',
    );
  });

  it('aggregates over the longest runtime, with min and max from each job (not the aggregate twice)', () => {
    // Two readers: 64 MiB in 114 ms (588674245 B/s) and 32 MiB in 1000 ms (33554432 B/s).
    // agg = 96 MiB * 1000 / 1000 = 100663296 B/s -> 96.0MiB/s (101MB/s); min 32.0MiB/s (33.6MB/s),
    // max 561MiB/s (589MB/s); io 96.0MiB (101MB); run=114-1000. A second group with a write job.
    const groups = groupStats([
      job('fast', 0, 114, { read: dir(64 * MiB, 16_384) }),
      job('slow', 0, 1000, { read: dir(32 * MiB, 8192) }),
      job('w', 1, 1000, { write: dir(1024 * MiB, 262_144) }),
      // A job that moved nothing (all its I/Os failed) does not count in the direction.
      job('failed', 1, 5, { write: dir(0, 0) }),
    ], new Map());
    expect(groups[0]!.read).toEqual({ bytes: 96 * MiB, ios: 24_576, bw_bytes: 100_663_296, min_bw_bytes: 33_554_432, max_bw_bytes: 588_674_245, min_run_ms: 114, max_run_ms: 1000 });
    expect(formatGroupStatus(groups)).toBe(
      '\n' +
      'Run status group 0 (all jobs):\n' +
      '   READ: bw=96.0MiB/s (101MB/s), 32.0MiB/s-561MiB/s (33.6MB/s-589MB/s), io=96.0MiB (101MB), run=114-1000msec\n' +
      '\n' +
      'Run status group 1 (all jobs):\n' +
      '  WRITE: bw=1024MiB/s (1074MB/s), 1024MiB/s-1024MiB/s (1074MB/s-1074MB/s), io=1024MiB (1074MB), run=1000-1000msec\n',
    );
  });
});
