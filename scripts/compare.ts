// npm run compare: every policy and pool size on one workload, side by side (src/sweep/compare.ts).
import { runMain } from '../src/cli/main.js';
import { compareMain } from '../src/sweep/compare.js';

runMain(async () => {
  const out = await compareMain(process.argv.slice(2));
  process.stdout.write(out.text);
  return out.status;
});
