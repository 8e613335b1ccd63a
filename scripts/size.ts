// npm run size: the smallest swiotlb pool that meets a workload's targets, or the largest load a
// pool serves (src/sweep/size.ts).
import { runMain } from '../src/cli/main.js';
import { sizeMain } from '../src/sweep/size.js';

runMain(async () => {
  const out = await sizeMain(process.argv.slice(2));
  process.stdout.write(out.text);
  return out.status;
});
