// Entry point of `npm run analyze`: see src/analyze/cli.ts.
import { InputError } from '../src/errors.js';
import { runAnalyzeCli } from '../src/analyze/cli.js';

try {
  process.exitCode = await runAnalyzeCli(process.argv.slice(2), {
    stdout: (s) => process.stdout.write(s),
    stderr: (s) => process.stderr.write(s),
    stdin: process.stdin,
  });
} catch (err) {
  if (err instanceof InputError) {
    process.stderr.write(`analyze: ${err.message}\n`);
    process.exitCode = err.exitStatus;
  } else {
    throw err;
  }
}
