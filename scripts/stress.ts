// npm run stress: the race stress harness (src/stress/). See the README's "npm run stress" section.
import { runMain } from '../src/cli/main.js';
import { runStressCli } from '../src/stress/cli.js';

runMain(() => runStressCli(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
}));
