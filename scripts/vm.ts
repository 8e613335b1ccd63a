// npm run vm: boot the emulated CoCo VM, run the workload, print the report (text or JSON).
import { atExit, runMain } from '../src/cli/main.js';
import { createRunLogger } from '../src/log/index.js';
import { buildReport, formatReport, runErrors } from '../src/vm/report.js';
import { parseVmOptions } from '../src/vm/options.js';
import { type VmRunResult, VmRunFailed, defaultJobs, runVm } from '../src/vm/vm.js';
import { ProgressDisplay } from '../src/cli/progress.js';
import { formatIgnored, readFioJobFile } from '../src/workload/fio.js';

async function main(): Promise<number> {
  const opts = parseVmOptions(process.argv.slice(2));
  const jobFile = opts.jobFile !== undefined ? readFioJobFile(opts.jobFile) : undefined;
  const jobs = jobFile?.jobs ?? defaultJobs(opts);
  // The progress line goes to a terminal only; piped runs print the report and nothing else.
  const tty = process.stderr.isTTY === true && opts.outputFormat === 'normal';
  const log = createRunLogger({ ...(opts.logFile !== undefined ? { file: opts.logFile, fileWhat: opts.logFileWhat } : {}), level: opts.logFile !== undefined ? opts.logLevel : 'silent' });
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
  let result: VmRunResult;
  let failure: Error | undefined;
  try {
    result = await runVm(opts, jobs, {
      log,
      bootLine: (msg) => {
        progress?.clear();
        if (opts.outputFormat === 'normal') process.stdout.write(`[    0.000000] ${msg}\n`);
      },
      warning: (msg) => {
        progress?.clear();
        process.stderr.write(`vm: warning: ${msg}\n`);
      },
      sample: (s) => progress?.sample(s),
      phase: (p) => progress?.phase(p),
    }, controller.signal);
  } catch (e) {
    // A crash or a stall still prints what was counted, marked partial with the reason; the error line
    // and the exit status (1) follow from runMain.
    if (!(e instanceof VmRunFailed)) throw e;
    result = e.partial;
    failure = e.reason;
  } finally {
    progress?.stop();
    process.off('SIGINT', onSigint);
  }

  const report = buildReport(result, opts.vcpus, failure?.message);
  const errors = runErrors(report);
  log.emit('run_summary', { summary: { status: report.run.status, ...report } });
  if (opts.outputFormat === 'json') {
    process.stdout.write(JSON.stringify({ boot: result.boot.bootLines, warnings: result.boot.warnings, ...report, errors }) + '\n');
  } else process.stdout.write('\n' + formatReport(report));
  if (failure !== undefined) throw failure;
  if (result.interrupted) return 130;
  const total = errors.io_errors + errors.packets_dropped + errors.verify_bad_sectors;
  if (opts.failOnErrors && total > 0) {
    process.stderr.write(`vm: the run had ${errors.io_errors} I/O errors, ${errors.packets_dropped} dropped packets and ${errors.verify_bad_sectors} bad verify sectors; exit status ${EXIT_RUN_ERRORS} (--fail-on-errors)\n`);
    return EXIT_RUN_ERRORS;
  }
  return 0;
}

/** Exit status of a run that completed with errors under --fail-on-errors (1 is a crash or stall, 2 bad input). */
const EXIT_RUN_ERRORS = 3;

runMain(main);
