// npm run vm: boot the emulated CoCo VM, run the workload, print the report (text or JSON).
import { pino } from 'pino';
import { atExit, runMain } from '../src/cli/main.js';
import { buildReport, formatReport } from '../src/vm/report.js';
import { parseVmOptions } from '../src/vm/options.js';
import { type VmSample, defaultJobs, runVm } from '../src/vm/vm.js';
import { readFioJobFile } from '../src/workload/fio.js';

async function main(): Promise<number> {
  const opts = parseVmOptions(process.argv.slice(2));
  const jobFile = opts.jobFile !== undefined ? readFioJobFile(opts.jobFile) : undefined;
  const jobs = jobFile?.jobs ?? defaultJobs(opts);
  const tty = process.stderr.isTTY === true && opts.outputFormat === 'normal';
  const dest = opts.logFile !== undefined ? pino.destination({ dest: opts.logFile, sync: false, mkdir: true }) : undefined;
  const log = pino({ level: opts.logFile !== undefined ? opts.logLevel : 'silent', base: undefined }, dest);
  atExit(() => {
    log.flush();
    dest?.flushSync();
  });
  if (jobFile !== undefined && jobFile.ignored.length > 0) {
    process.stderr.write(`vm: ignoring fio options: ${jobFile.ignored.join(', ')}\n`);
  }
  log.info({ event: 'run_config', config: { ...opts, sizeCapBytes: String(opts.sizeCapBytes), jobs: jobs.map((j) => j.name) } }, 'run configuration');

  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130);
    controller.abort();
    process.stderr.write('\nvm: interrupted, stopping (Ctrl-C again to quit at once)\n');
  };
  process.on('SIGINT', onSigint);

  let last: VmSample | undefined;
  const t0 = Date.now();
  const result = await runVm(opts, jobs, {
    bootLine: (msg) => {
      if (opts.outputFormat === 'normal') process.stdout.write(`[    0.000000] ${msg}\n`);
      log.info({ event: 'boot_line' }, msg);
    },
    event: (e) => {
      const { msg, event, ...fields } = e;
      const level = event === 'map_failure' || event === 'packet_dropped' || event === 'io_error' || event === 'double_unmap' || event === 'bounce_overflow' ? 'warn' : 'info';
      log[level]({ event, ...fields }, msg);
    },
    sample: (s) => {
      last = s;
      log.debug({ event: 'sample', ...s }, 'sample');
      if (tty) {
        process.stderr.write(`\r[${((Date.now() - t0) / 1000).toFixed(1)}s] iops=${s.iops} io_tlb_used=${s.io_tlb_used} hiwater=${s.io_tlb_used_hiwater} map_failures=${s.map_failures}   `);
      }
    },
  }, controller.signal);
  if (tty && last !== undefined) process.stderr.write('\n');
  process.off('SIGINT', onSigint);

  const report = buildReport(result, opts.vcpus);
  log.info({ event: 'run_summary', summary: report }, 'run summary');
  if (opts.outputFormat === 'json') process.stdout.write(JSON.stringify({ boot: result.boot.bootLines, ...report }) + '\n');
  else process.stdout.write('\n' + formatReport(report));
  return result.interrupted ? 130 : 0;
}

runMain(main);
