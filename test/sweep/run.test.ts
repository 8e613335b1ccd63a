// The run driver never rejects for a run's own outcome: a child that cannot even be spawned (spawn
// throws synchronously, as it does for ENOMEM on a host out of memory, or for an argument with a NUL
// byte, which is how this test makes it throw) is that run's crashed record.
import { describe, expect, it } from 'vitest';
import { runConfig } from '../../src/sweep/run.js';

describe('runConfig', () => {
  it('a spawn that throws gives a crashed record with the reason, not a rejected promise', async () => {
    const r = await runConfig({ job: 'bad\0name.fio', vcpus: 1, mem: '1G', pool: { swiotlb: '1M' }, policy: 'static', knobs: {}, seed: 1, repeat: 0 }, { timeoutMs: 10_000 });
    expect(r.status).toBe('crashed');
    expect(r.exit).toBeNull();
    expect(r.reason).toMatch(/null bytes|NUL|\\0/i);
  });
});
