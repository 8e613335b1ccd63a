// --time-scale K: the run's clock (device model, workload, every reported time) runs K times slower
// than the wall. Checked by bounds that hold however loaded the host is: wall time can only exceed
// K x the emulated runtime, and no request completes sooner than the device's latency.
import { describe, expect, it } from 'vitest';
import { vmProcess as vm } from '../helpers/vm-process.js';
import type { RunReport } from '../../src/vm/report.js';

describe('--time-scale', () => {
  it('runs the emulated clock K times slower: runtime and latency in emulated time, K x the wall', async () => {
    const r = await vm(['--vcpus', '2', '--mem', '1G', '--swiotlb', '64M', '--runtime', '200ms', '--nvme-latency', '500us',
      '--time-scale', '5', '--output-format', 'json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout) as RunReport;
    expect(rep.run.time_scale).toBe(5);
    // The jobs run 200 ms of emulated time: at least 5 x 200 ms of wall time for the I/O alone.
    expect(rep.run.run_ms).toBeGreaterThanOrEqual(200);
    expect(rep.run.wall_ms - rep.run.boot_ms).toBeGreaterThanOrEqual(5 * 200);
    for (const job of rep.jobs) {
      expect(job.runtime_ms).toBeGreaterThanOrEqual(200);
      // A request takes at least the device's 500 us of emulated time (2.5 ms of wall time).
      for (const d of [job.read, job.write]) if (d !== undefined && d.clat.count > 0) expect(d.clat.min_ns).toBeGreaterThanOrEqual(500_000);
    }
  });

  it('keeps the stall watchdog on wall time, on its own cadence, whatever K does to the samples', async () => {
    // At K=1000 the samples (every 250 ms of emulated time) come every 250 s of wall time, and a 4 s
    // device latency is 4000 s: the run stalls at once, and the 1 s stall timeout still ends it with
    // the stall report (within the helper's 60 s, not at the first sample).
    const r = await vm(['--vcpus', '2', '--mem', '1G', '--swiotlb', '64M', '--runtime', '10s', '--time-scale', '1000',
      '--nvme-latency', '4s', '--stall-timeout', '1s'], { COCO_SAMPLE_INTERVAL: '250ms' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^vm: error: stall: no I\/O completed for \d+ s with io_tlb_used \d+ of \d+ slots\n/);
  });

  it('refuses a bad scale with one line and exit 2', async () => {
    for (const bad of ['0', '1.5', 'x', '10001']) {
      const r = await vm(['--time-scale', bad]);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(`vm: --time-scale: "${bad}" is not valid; expected a whole number from 1 to 10000\n`);
    }
  });
});
