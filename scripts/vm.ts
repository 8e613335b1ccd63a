// npm run vm: boot the emulated CoCo VM, run the workload, print the report (text or JSON).
import { atExit, runMain } from '../src/cli/main.js';
import { createRunLogger } from '../src/log/index.js';
import { buildReport, formatReport } from '../src/vm/report.js';
import { parseVmOptions } from '../src/vm/options.js';
import { defaultJobs, runVm } from '../src/vm/vm.js';
import { ProgressDisplay } from '../src/cli/progress.js';
import { formatIgnored, readFioJobFile } from '../src/workload/fio.js';

async function main(): Promise<number> {
  const opts = parseVmOptions(process.argv.slice(2));
  const jobFile = opts.jobFile !== undefined ? readFioJobFile(opts.jobFile) : undefined;
  const jobs = jobFile?.jobs ?? defaultJobs(opts);
  // The progress line goes to a terminal only; piped runs print the report and nothing else.
  const tty = process.stderr.isTTY === true && opts.outputFormat === 'normal';
  const log = createRunLogger({ ...(opts.logFile !== undefined ? { file: opts.logFile } : {}), level: opts.logFile !== undefined ? opts.logLevel : 'silent' });
  atExit(() => log.close());
  const ignored = jobFile !== undefined ? formatIgnored(jobFile.ignored) : null;
  if (ignored !== null) process.stderr.write(`vm: ${ignored}\n`);
  log.emit('run_config', {
    config: {
      vcpus: opts.vcpus, mem_bytes: opts.memBytes, ...(opts.swiotlbBytes !== undefined ? { swiotlb_bytes: opts.swiotlbBytes } : {}),
      cmdline: opts.cmdline, policy: opts.policy, ...(opts.exactNslabs !== undefined ? { exact_nslabs: opts.exactNslabs } : {}), runtime_ms: opts.runtimeMs, seed: opts.seed, sample_interval_ms: opts.sampleIntervalMs,
      log_level: opts.logLevel, job_file: opts.jobFile ?? null, jobs: jobs.map((j) => j.name),
      size_cap_bytes: Number.isFinite(opts.sizeCapBytes) ? opts.sizeCapBytes : null,
      devices: [
        { name: 'nvme0', kind: 'nvme', latency_us: opts.nvmeLatencyUs, bandwidth_bytes_per_s: opts.nvmeBandwidth },
        { name: 'eth0', kind: 'nic' },
      ],
      tune: opts.tune.map((t) => `${t.atMs}ms:${t.text}`),
    },
  });

  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) {
      log.flushSync();
      process.exit(130);
    }
    controller.abort();
    process.stderr.write('\nvm: interrupted, stopping (Ctrl-C again to quit at once)\n');
  };
  process.on('SIGINT', onSigint);

  const progress = tty ? new ProgressDisplay(process.stderr) : undefined;
  const result = await runVm(opts, jobs, {
    log,
    bootLine: (msg) => {
      progress?.clear();
      if (opts.outputFormat === 'normal') process.stdout.write(`[    0.000000] ${msg}\n`);
    },
    sample: (s) => progress?.sample(s),
    phase: (p) => progress?.phase(p),
  }, controller.signal).finally(() => {
    progress?.stop();
    process.off('SIGINT', onSigint);
  });

  const report = buildReport(result, opts.vcpus);
  log.emit('run_summary', { summary: { status: result.interrupted ? 'interrupted' : 'ok', ...report } });
  if (opts.outputFormat === 'json') process.stdout.write(JSON.stringify({ boot: result.boot.bootLines, ...report }) + '\n');
  else process.stdout.write('\n' + formatReport(report));
  return result.interrupted ? 130 : 0;
}

runMain(main);
