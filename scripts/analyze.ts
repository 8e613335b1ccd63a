// npm run analyze: read a run log and print (or write as HTML) what happened. See src/analyze/cli.ts.
import { runMain } from '../src/cli/main.js';
import { runAnalyzeCli } from '../src/analyze/cli.js';

runMain(() => runAnalyzeCli(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  stdin: process.stdin,
}));
