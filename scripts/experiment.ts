// npm run experiment: the seed threads' claims, reproduced or refuted with data (src/experiment/).
import { runMain } from '../src/cli/main.js';
import { experimentMain } from '../src/experiment/cli.js';

runMain(async () => {
  const out = await experimentMain(process.argv.slice(2));
  process.stdout.write(out.text);
  return out.status;
});
