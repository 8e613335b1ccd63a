// npm run vm: boot the emulated CoCo VM, run the workload, print the report (text or JSON).
import { runMain } from '../src/cli/main.js';
import { parseVmOptions } from '../src/vm/options.js';
import { vmCommand } from '../src/vm/command.js';
import { defaultJobs } from '../src/vm/vm.js';
import { formatIgnored, readFioJobFile } from '../src/workload/fio.js';

async function main(): Promise<number> {
  const opts = parseVmOptions(process.argv.slice(2));
  const jobFile = opts.jobFile !== undefined ? readFioJobFile(opts.jobFile) : undefined;
  const jobs = jobFile?.jobs ?? defaultJobs(opts);
  const ignored = jobFile !== undefined ? formatIgnored(jobFile.ignored) : null;
  if (ignored !== null) process.stderr.write(`vm: ${ignored}\n`);
  return vmCommand(opts, { jobs });
}

runMain(main);
