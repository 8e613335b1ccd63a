// The dynamic-swiotlb bench rows run their real setups (pools made and filled, a transient pool per
// pair); their figures are printed by npm run bench, never asserted.
import { describe, expect, it } from 'vitest';
import { dynamicPoolsRate, transientRates } from '../../src/bench/dynamic-bench.js';

describe('dynamic swiotlb bench rows', () => {
  it('measure map+unmap with full dynamic pools in front, and through a transient pool', () => {
    expect(dynamicPoolsRate(16, 0.02)).toBeGreaterThan(0);
    const t = transientRates(0.02);
    expect(t.transient).toBeGreaterThan(0);
    expect(t.normal).toBeGreaterThan(0);
  });
});
