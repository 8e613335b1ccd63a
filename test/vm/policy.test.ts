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
import type { Setting } from '../../src/cli/flags.js';
import { POLICIES, POLICY_NAMES, availablePolicies, resolvePolicy } from '../../src/vm/policy.js';
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
      .toBe('--throttle on and --policy static disagree; give one of them (--throttle on means --policy throttle, --swiotlb-dynamic on means --policy dynamic)');
    expect(inputError(() => parseVmOptions(['--throttle', 'off', '--policy', 'throttle'])).message).toMatch(/^--throttle off and --policy throttle disagree/);
  });

  // Ranks as ParsedFlags.setting gives them: 3 a flag, 2 the environment, 1 ./.env, 0 .env.example.
  const FLAG = 3;
  const ENV = 2;
  const EXAMPLE = 0;
  const at = (name: string, env: string, value: string, rank: number): Setting => ({ value, rank, what: rank === FLAG ? `--${name}` : `${env} (${rank === ENV ? 'environment' : '.env.example'})` });
  const pol = (v: string, rank: number) => at('policy', 'COCO_POLICY', v, rank);
  const thr = (v: string, rank: number) => at('throttle', 'COCO_THROTTLE', v, rank);
  const dyn = (v: string, rank: number) => at('swiotlb-dynamic', 'COCO_SWIOTLB_DYNAMIC', v, rank);

  it('lets a flag win over the environment, and the environment over .env.example, whichever spelling each uses', () => {
    expect(resolvePolicy(pol('static', FLAG), thr('on', ENV), dyn('off', EXAMPLE))).toBe('static');
    expect(resolvePolicy(pol('static', EXAMPLE), thr('on', ENV), dyn('off', EXAMPLE))).toBe('throttle');
    expect(resolvePolicy(pol('throttle', ENV), thr('off', FLAG), dyn('off', EXAMPLE))).toBe('static');
    expect(resolvePolicy(pol('throttle', ENV), thr('off', EXAMPLE), dyn('off', EXAMPLE))).toBe('throttle');
    expect(inputError(() => resolvePolicy(pol('throttle', ENV), thr('off', ENV), dyn('off', EXAMPLE))).message)
      .toMatch(/^COCO_THROTTLE \(environment\) off and COCO_POLICY \(environment\) throttle disagree/);
    // --swiotlb-dynamic on names dynamic, and agrees with the policies built on it.
    expect(resolvePolicy(pol('static', EXAMPLE), thr('off', EXAMPLE), dyn('on', FLAG))).toBe('dynamic');
    expect(resolvePolicy(pol('hybrid', FLAG), thr('off', EXAMPLE), dyn('on', FLAG))).toBe('hybrid');
    expect(resolvePolicy(pol('hybrid', FLAG), thr('off', EXAMPLE), dyn('off', ENV))).toBe('hybrid');
    expect(resolvePolicy(pol('dynamic', ENV), thr('off', EXAMPLE), dyn('off', FLAG))).toBe('static');
  });

  it('refuses --policy throttle --swiotlb-dynamic on (it enabled both silently) and the two switches on together', () => {
    expect(inputError(() => parseVmOptions(['--policy', 'throttle', '--swiotlb-dynamic', 'on'])).message)
      .toBe('--swiotlb-dynamic on and --policy throttle disagree; give one of them (--throttle on means --policy throttle, --swiotlb-dynamic on means --policy dynamic)');
    expect(inputError(() => parseVmOptions(['--throttle', 'on', '--swiotlb-dynamic', 'on'])).message)
      .toMatch(/^--swiotlb-dynamic on and --throttle on disagree; give one of them/);
    expect(inputError(() => parseVmOptions(['--policy', 'hybrid', '--throttle', 'on'])).message).toMatch(/^--throttle on and --policy hybrid disagree/);
    expect(inputError(() => parseVmOptions(['--policy', 'hybrid', '--swiotlb-dynamic', 'off'])).message).toMatch(/^--swiotlb-dynamic off and --policy hybrid disagree/);
    const o = parseVmOptions(['--policy', 'hybrid', '--swiotlb-dynamic', 'on']);
    expect([o.policy, o.swiotlbDynamic, o.throttle]).toEqual(['hybrid', true, false]);
  });

  it('refuses a policy\'s knob given to another policy, in one line', () => {
    expect(inputError(() => parseVmOptions(['--hybrid-timeout', '5ms'])).message)
      .toBe('--hybrid-timeout applies to --policy hybrid, not static; drop it or choose that policy');
    expect(inputError(() => parseVmOptions(['--policy', 'dynamic', '--hybrid-timeout', '5ms'])).exitStatus).toBe(2);
    expect(parseVmOptions(['--policy', 'hybrid', '--hybrid-timeout', '0']).hybridTimeoutMs).toBe(0);
    expect(parseVmOptions(['--policy', 'hybrid']).hybridTimeoutMs).toBe(10);
    expect(inputError(() => parseVmOptions(['--policy', 'hybrid', '--hybrid-timeout', '2m'])).message).toMatch(/^--hybrid-timeout: "2m" is out of range; expected a duration/);
  });

  it('reads COCO_THROTTLE=on from the environment as --policy throttle in a real run', async () => {
    const r = await run(process.execPath, ['--single-threaded-gc', VM, '--vcpus', '1', '--mem', '1G', '--swiotlb', '1M', '--runtime', '200ms', '--output-format', 'json'],
      { timeout: 60_000, env: { ...process.env, COCO_THROTTLE: 'on' } });
    expect((JSON.parse(r.stdout) as RunReport).throttle.enabled).toBe(true);
  }, 60_000);

  it('rejects an unknown policy with the accepted names, and a policy this build cannot run with what it needs', () => {
    expect(inputError(() => parseVmOptions(['--policy', 'grow'])).message)
      .toBe('--policy: "grow" is not valid; expected one of static, throttle, dynamic, hybrid, cma');
    // Every policy is in this build: none is refused as unavailable, or approximated by another.
    expect(availablePolicies()).toEqual([...POLICY_NAMES]);
    for (const name of POLICY_NAMES) expect(parseVmOptions(['--policy', name]).policy).toBe(name);
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
    expect(resolvePolicy(pol('static', EXAMPLE), thr('off', EXAMPLE), dyn('off', EXAMPLE))).toBe('static');
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
