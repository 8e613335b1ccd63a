// The VM's command as `npm run vm` and `npm run replay` run it: the run log, the run_config record,
// Ctrl-C, the progress line, the run, and the report (text or JSON) with the exit status. The
// workload is fio jobs, or (replay) the jobs empty and a hook that feeds the vCPUs a trace.
import { atExit } from '../cli/main.js';
import { createRunLogger } from '../log/index.js';
import { type RunReport, buildReport, formatReport, runErrors } from './report.js';
import type { VmOptions } from './options.js';
import { type VmReplayHook, type VmRunResult, VmRunFailed, runVm } from './vm.js';
import { ProgressDisplay } from '../cli/progress.js';
import type { FioJob } from '../workload/fio.js';

export interface VmWorkload {
  jobs: readonly FioJob[];
  /** A replayed trace instead of the jobs. */
  replay?: VmReplayHook;
  /** More of run_config's config (the replay's trace file). */
  config?: Record<string, unknown>;
  /** Runs beside the VM once it is started (the replay's feeder); a rejection stops the run and is the command's error. */
  beside?(stop: () => boolean): Promise<void>;
  /** More of the report: keys of the JSON document and text after the VM's. */
  extra?(result: VmRunResult, report: RunReport): { json: Record<string, unknown>; text: string };
}

/** Exit status of a run that completed with errors under --fail-on-errors (1 is a crash or stall, 2 bad input). */
export const EXIT_RUN_ERRORS = 3;

export async function vmCommand(opts: VmOptions, w: VmWorkload): Promise<number> {
  const jobs = w.jobs;
  // The progress line goes to a terminal only; piped runs print the report and nothing else.
  const tty = process.stderr.isTTY === true && opts.outputFormat === 'normal';
  const log = createRunLogger({ ...(opts.logFile !== undefined ? { file: opts.logFile, fileWhat: opts.logFileWhat } : {}), level: opts.logFile !== undefined ? opts.logLevel : 'silent' });
  atExit(() => log.close());
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
      ...w.config,
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
  let ended = false;
  let besideError: unknown;
  const beside = w.beside?.(() => ended || controller.signal.aborted).catch((e: unknown) => {
    besideError = e;
    controller.abort();
  });
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
      ...(w.replay !== undefined ? { replay: w.replay } : {}),
    }, controller.signal);
  } catch (e) {
    // A crash or a stall still prints what was counted, marked partial with the reason; the error line
    // and the exit status (1) follow from runMain.
    if (!(e instanceof VmRunFailed)) throw e;
    result = e.partial;
    failure = e.reason;
  } finally {
    ended = true;
    await beside;
    progress?.stop();
    process.off('SIGINT', onSigint);
  }
  if (besideError !== undefined) throw besideError;

  const report = buildReport(result, opts.vcpus, failure?.message);
  const errors = runErrors(report);
  const extra = w.extra?.(result, report);
  // --trace-file: where the run's DMA trace went, and whether it is whole.
  const traced = result.dmaTrace;
  const traceText = traced === null ? '' : `\ntrace file ${traced.file}: ${traced.events} events (tracefs text: npm run replay -- ${traced.file})${traced.lost > 0 ? `, ${traced.lost} LOST (a vCPU's trace ring stayed full; the file says where)` : ''}\n`;
  const traceJson = traced === null ? {} : { dma_trace: traced };
  log.emit('run_summary', { summary: { status: report.run.status, ...report, ...extra?.json, ...traceJson } });
  if (opts.outputFormat === 'json') {
    process.stdout.write(JSON.stringify({ boot: result.boot.bootLines, warnings: result.boot.warnings, ...report, errors, ...extra?.json, ...traceJson }) + '\n');
  } else process.stdout.write('\n' + formatReport(report) + (extra?.text ?? '') + traceText);
  if (failure !== undefined) throw failure;
  if (result.interrupted) return 130;
  const total = errors.io_errors + errors.packets_dropped + errors.verify_bad_sectors;
  if (opts.failOnErrors && total > 0) {
    process.stderr.write(`vm: the run had ${errors.io_errors} I/O errors, ${errors.packets_dropped} dropped packets and ${errors.verify_bad_sectors} bad verify sectors; exit status ${EXIT_RUN_ERRORS} (--fail-on-errors)\n`);
    return EXIT_RUN_ERRORS;
  }
  return 0;
}
