// --policy and its older spelling --throttle: one choice, resolved by where each value came from; a
// policy this build cannot run is refused, never replaced by another. And --exact-nslabs, the pool of
// exactly N slots that `npm run size` probes.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.js';
import { projectRoot } from '../../src/util/worker-file.js';
import { parseVmOptions } from '../../src/vm/options.js';
import { type Origin, POLICIES, POLICY_NAMES, availablePolicies, resolvePolicy } from '../../src/vm/policy.js';
import { exactPool } from '../../src/vm/vm.js';
import type { RunReport } from '../../src/vm/report.js';

const run = promisify(execFile);
const VM = join(projectRoot(), 'dist', 'scripts', 'vm.js');

function inputError(fn: () => unknown): InputError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return e as InputError;
  }
  throw new Error('no error thrown');
}

describe('--policy', () => {
  it('is static by default and throttle with --policy throttle or --throttle on', () => {
    expect(parseVmOptions([]).policy).toBe('static');
    expect(parseVmOptions([]).throttle).toBe(false);
    for (const argv of [['--policy', 'throttle'], ['--throttle', 'on'], ['--throttle'], ['--policy', 'throttle', '--throttle', 'on']]) {
      const o = parseVmOptions(argv);
      expect(o.policy, argv.join(' ')).toBe('throttle');
      expect(o.throttle, argv.join(' ')).toBe(true);
    }
    expect(parseVmOptions(['--policy', 'static', '--throttle', 'off']).policy).toBe('static');
  });

  it('refuses two flags that disagree, naming both', () => {
    expect(inputError(() => parseVmOptions(['--throttle', 'on', '--policy', 'static'])).message)
      .toBe('--throttle on and --policy static disagree; give one of them (--throttle on means --policy throttle)');
    expect(inputError(() => parseVmOptions(['--throttle', 'off', '--policy', 'throttle'])).message).toMatch(/^--throttle off and --policy throttle disagree/);
  });

  it('lets a flag win over the environment, and the environment over .env.example, whichever spelling each uses', () => {
    const pol = (value: string, origin: Origin) => ({ value, origin, what: origin === 'flag' ? '--policy' : 'COCO_POLICY (environment)' });
    const thr = (value: boolean, origin: Origin) => ({ value, origin, what: origin === 'flag' ? '--throttle' : 'COCO_THROTTLE (environment)' });
    expect(resolvePolicy(pol('static', 'flag'), thr(true, 'environment'))).toBe('static');
    expect(resolvePolicy(pol('static', 'default'), thr(true, 'environment'))).toBe('throttle');
    expect(resolvePolicy(pol('throttle', 'environment'), thr(false, 'flag'))).toBe('static');
    expect(resolvePolicy(pol('throttle', 'environment'), thr(false, 'default'))).toBe('throttle');
    expect(inputError(() => resolvePolicy(pol('throttle', 'environment'), thr(false, 'environment'))).message)
      .toMatch(/^COCO_THROTTLE \(environment\) off and COCO_POLICY \(environment\) throttle disagree/);
  });

  it('reads COCO_THROTTLE=on from the environment as --policy throttle in a real run', async () => {
    const r = await run(process.execPath, ['--single-threaded-gc', VM, '--vcpus', '1', '--mem', '1G', '--swiotlb', '1M', '--runtime', '200ms', '--output-format', 'json'],
      { timeout: 60_000, env: { ...process.env, COCO_THROTTLE: 'on' } });
    expect((JSON.parse(r.stdout) as RunReport).throttle.enabled).toBe(true);
  }, 60_000);

  it('rejects an unknown policy with the accepted names, and a policy this build cannot run with what it needs', () => {
    expect(inputError(() => parseVmOptions(['--policy', 'grow'])).message)
      .toBe('--policy: "grow" is not valid; expected one of static, throttle, dynamic, hybrid, cma');
    for (const name of POLICY_NAMES.filter((n) => POLICIES[n].unavailable !== undefined)) {
      const e = inputError(() => parseVmOptions(['--policy', name]));
      expect(e.message).toContain(`policy "${name}" cannot run: `);
      expect(e.message).toContain(POLICIES[name].unavailable!);
      expect(e.exitStatus).toBe(2);
    }
  });

  it('documents each policy as mainline, RFC or a proposal, with its source', () => {
    expect(POLICIES.static.status).toBe('mainline');
    expect(POLICIES.throttle.status).toBe('RFC');
    expect(POLICIES.dynamic.status).toBe('mainline');
    expect(POLICIES.hybrid.status).toBe('proposal');
    expect(POLICIES.hybrid.source).toContain('Robin Murphy');
    expect(POLICIES.cma.source).toContain('Alexander Graf');
    expect(availablePolicies()).toContain('static');
    expect(availablePolicies()).toContain('throttle');
  });

  it('resolves defaults that agree without complaint', () => {
    expect(resolvePolicy({ value: 'static', origin: 'default', what: 'COCO_POLICY' }, { value: false, origin: 'default', what: 'COCO_THROTTLE' })).toBe('static');
  });
});

describe('--exact-nslabs', () => {
  it('keeps the kernel\'s areas over exactly N slots, in whole segments per area', () => {
    // 8 vCPUs: 8 areas, so one segment per area is 1024 slots.
    expect(exactPool(3072, 8)).toMatchObject({ nslabs: 3072, nareas: 8 });
    expect(exactPool(1536, 3)).toMatchObject({ nslabs: 1536, nareas: 4 }); // 3 vCPUs: 4 areas, as the kernel rounds them
    expect(inputError(() => exactPool(3000, 8)).message)
      .toBe('--exact-nslabs: 3000 slots is not a whole number of segments per area; expected a multiple of 1024 (128 slots x 8 areas)');
  });

  it('is refused beside --swiotlb', () => {
    expect(inputError(() => parseVmOptions(['--exact-nslabs', '1024', '--swiotlb', '8M'])).message).toMatch(/give one of them$/);
  });

  it('boots a pool the kernel would round up, and the throttle thresholds follow it', async () => {
    // 3072 slots: swiotlb=3072 would give 4096 (round_up_default_nslabs); high_throttle = 70% of 3072 = 2150.
    const r = await run(process.execPath, ['--single-threaded-gc', VM, '--vcpus', '2', '--mem', '1G', '--exact-nslabs', '3072', '--runtime', '300ms',
      '--policy', 'throttle', '--output-format', 'json'], { timeout: 60_000 });
    const rep = JSON.parse(r.stdout) as RunReport;
    expect(rep.swiotlb.io_tlb_nslabs).toBe(3072);
    expect(rep.swiotlb.nareas).toBe(2);
    expect(rep.throttle.enabled).toBe(true);
    expect(rep.throttle.high_throttle).toBe(2150);
  }, 60_000);
});
