// Every experiment, in issue 15's order. Adding one: its module under src/experiment/, one line here.
import { InputError } from '../errors.js';
import { quote } from '../util/quote.js';
import { kelleyThrottle } from './kelley-throttle.js';
import { murphyOneCpu } from './murphy-one-cpu.js';
import { kelleyGenerousDefault } from './kelley-generous-default.js';
import { murphyPolling } from './murphy-polling.js';
import { tesarikSpread } from './tesarik-spread.js';
import { annapurveFragmentation } from './annapurve-fragmentation.js';
import { murphyHybrid } from './murphy-hybrid.js';
import { POLICIES } from '../vm/policy.js';
import { kelleyAtomicPool } from './kelley-atomic-pool.js';
import { tesarikDynamicCost } from './tesarik-dynamic-cost.js';
import { lanAreas } from './lan-areas.js';
import type { AnyExperiment } from './types.js';

export const EXPERIMENTS: readonly AnyExperiment[] = [
  kelleyThrottle,
  murphyOneCpu,
  kelleyGenerousDefault,
  murphyPolling,
  tesarikSpread,
  annapurveFragmentation,
  // Experiment 9 runs the hybrid policy: listed once the build has it (policy.ts), never run against a refusal.
  ...(POLICIES.hybrid.unavailable === undefined ? [murphyHybrid] : []),
  kelleyAtomicPool,
  tesarikDynamicCost,
  lanAreas,
].sort((a, b) => a.number - b.number);

export function experimentByName(name: string): AnyExperiment {
  const e = EXPERIMENTS.find((x) => x.name === name);
  if (e === undefined) throw new InputError('EBADFLAG', `no experiment ${quote(name)}; expected one of ${EXPERIMENTS.map((x) => x.name).join(', ')} (--list shows their claims)`);
  return e;
}
