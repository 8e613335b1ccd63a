// `npm run bench:log [-- --workers N]`: what logging costs a worker thread. See src/log/overhead.ts.
// Not part of `npm test`.
import { parseFlags } from '../src/cli/flags.js';
import { runMain } from '../src/cli/main.js';
import { loggingCpuPct, measureLoggingOverhead } from '../src/log/overhead.js';
import { parseIntInRange } from '../src/util/units.js';

runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), [{ name: 'workers', kind: 'string', form: 'N', default: '1', help: 'worker threads emitting at once, 1..64' }], 'bench:log', 'What logging costs a worker thread, per emit.');
  const workers = parseIntInRange(flags.setting('workers', '1').value, '--workers', 1, 64);
  const r = await measureLoggingOverhead({ workers });
  const lines = [
    `worker logging cost per emit (${r.workers} worker thread${r.workers > 1 ? 's' : ''} emitting at once, logger level info)`,
    '  mode      event                     ns/emit (median, min-max of rounds)   thread time at 1k / 10k events/s   burst records/s per worker   ring waits   dropped',
  ];
  for (const row of r.rows) {
    const ev = row.mode === 'filtered' ? 'throttle_begin (debug)' : row.mode === 'on' ? 'map_failure (warn)' : 'map_failure, logging off';
    const share = `${loggingCpuPct(row.nsPerEmit, 1000).toFixed(2)}% / ${loggingCpuPct(row.nsPerEmit, 10_000).toFixed(2)}%`;
    lines.push(`  ${row.mode.padEnd(8)}  ${ev.padEnd(24)}  ${`${row.nsPerEmit.toFixed(0)} (${row.nsPerEmitMin.toFixed(0)}-${row.nsPerEmitMax.toFixed(0)})`.padStart(37)}   ${share.padStart(32)}   ${row.burstRecordsPerS.toFixed(0).padStart(26)}   ${String(row.burstStats.fullWaits).padStart(10)}   ${String(row.burstStats.dropped).padStart(7)}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
});
