// The analyzer on a log written by the real VM (`npm run vm -- --log-file`): every record matches the
// catalogue, and the final report is printed as the VM printed it.
import { afterAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { analyzeFile } from '../../src/analyze/run.js';
import { formatText, vmReportText } from '../../src/analyze/format.js';
import { projectRoot } from '../../src/util/worker-file.js';
import { tempDir } from '../helpers/log-files.js';

const run = promisify(execFile);
const dir = tempDir('coco-vm-log-');
afterAll(() => dir.remove());

describe('analyzer on a VM run log', () => {
  it('prints the VM\'s own fio-style final report', async () => {
    const file = dir.file('vm.ndjson');
    const vm = await run(process.execPath, ['--single-threaded-gc', join(projectRoot(), 'dist', 'scripts', 'vm.js'),
      '--vcpus', '2', '--mem', '4G', '--runtime', '500ms', '--log-file', file, '--output-format', 'json'], { timeout: 60_000, maxBuffer: 64 << 20 });
    const printed = JSON.parse(vm.stdout) as Record<string, unknown>;
    const { analysis } = await analyzeFile(file);
    expect(analysis.input.skipped).toBe(0);
    expect(analysis.input.events.run_config).toBe(1);
    expect(analysis.input.events.sample).toBeGreaterThan(0);
    expect(analysis.input.events.run_summary).toBe(1);
    const text = formatText(analysis);
    expect(text).toContain('Run status group 0 (all jobs):');
    expect(text).toContain('swiotlb (/sys/kernel/debug/swiotlb):');
    expect(text).toContain(`io_tlb_nslabs=${(printed['swiotlb'] as { io_tlb_nslabs: number }).io_tlb_nslabs}`);
  });

  it('falls back to listing a report of another shape key by key', () => {
    expect(vmReportText({ jobs: [], groups: [], swiotlb: {}, run: {} })).toBeUndefined();
    expect(vmReportText({ status: 'ok', runtime_ms: 5 })).toBeUndefined();
  });
});
