// The configuration's layers (.env.example, ./.env, the environment, the flags), and every knob of
// .env.example read and validated by the tool that owns it.
import { bounceCopySetting } from '../../src/memory/copy.js';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { debugEnabled, loadConfig, parseEnvFile, reloadConfig } from '../../src/config.js';
import { InputError } from '../../src/errors.js';
import { createRunLogger } from '../../src/log/logger.js';
import { chartPointsSetting, logSettings } from '../../src/log/settings.js';
import { parseStressOptions } from '../../src/stress/cli.js';
import { parseVmOptions } from '../../src/vm/options.js';
import { SWEEP_FLAGS, compareMain, defaultParallel, parseSweepBase } from '../../src/sweep/compare.js';
import { parseFlags } from '../../src/cli/flags.js';
import { projectRoot } from '../../src/util/worker-file.js';

const run = promisify(execFile);
const EXAMPLE = readFileSync(join(projectRoot(), '.env.example'), 'utf8');

async function tool(script: string, args: string[], env: Record<string, string>, cwd = projectRoot()): Promise<{ code: number; stdout: string; stderr: string }> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('COCO_')));
  try {
    const r = await run(process.execPath, [join(projectRoot(), 'dist', 'scripts', `${script}.js`), ...args], { cwd, env: { ...clean, ...env }, timeout: 60_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

describe('configuration layers', () => {
  it('lays ./.env over .env.example and the environment over ./.env', () => {
    const c = loadConfig({
      defaultsText: 'COCO_A=1\nCOCO_B=2\nCOCO_C=3\n', dotenvText: 'COCO_B=20\nexport COCO_C="30"\n', dotenvPath: '.env',
      env: { COCO_C: '300', PATH: '/bin' },
    });
    expect(c.values).toEqual({ COCO_A: '1', COCO_B: '20', COCO_C: '300' });
    expect(c.layers).toEqual({ COCO_A: '.env.example', COCO_B: '.env', COCO_C: 'environment' });
  });

  it('refuses a COCO_* name that is not a known setting, in ./.env or in the environment', () => {
    const src = { defaultsText: 'COCO_VCPUS=32\n', dotenvPath: '.env', env: {} };
    expect(() => loadConfig({ ...src, dotenvText: 'COCO_VCPU=4\n' })).toThrow(/COCO_VCPU \(\.env\) is not a known setting; expected one of COCO_VCPUS/);
    expect(() => loadConfig({ ...src, dotenvText: undefined, env: { COCO_VCPU: '4' } })).toThrow(/COCO_VCPU \(environment\) is not a known setting/);
  });

  describe('flags over every layer', () => {
    afterEach(() => {
      delete process.env['COCO_SEED'];
      reloadConfig();
    });
    it('takes the flag when given, else the variable with its origin', () => {
      const specs = [{ name: 'seed', kind: 'string' as const, help: 'seed', env: 'COCO_SEED' }];
      process.env['COCO_SEED'] = '7';
      reloadConfig();
      expect(parseFlags([], specs, 't').setting('seed')).toMatchObject({ value: '7', what: 'COCO_SEED (environment)' });
      expect(parseFlags(['--seed', '9'], specs, 't').setting('seed')).toMatchObject({ value: '9', what: '--seed' });
    });
  });

  it('a .env in the working directory changes the default, the environment overrides it, a flag overrides both', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coco-env-'));
    writeFileSync(join(dir, '.env'), 'COCO_VCPUS=999\n');
    // 999 is out of range: the error names where the value came from.
    expect((await tool('vm', [], {}, dir)).stderr.trim()).toBe('vm: COCO_VCPUS (.env): "999" is not valid; expected a whole number from 1 to 256');
    expect((await tool('vm', [], { COCO_VCPUS: '998' }, dir)).stderr.trim()).toBe('vm: COCO_VCPUS (environment): "998" is not valid; expected a whole number from 1 to 256');
    const help = await tool('vm', ['--help'], {}, dir);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('[default: 999; COCO_VCPUS from .env]');
    expect((await tool('vm', ['--vcpus', '997'], { COCO_VCPUS: '998' }, dir)).stderr.trim()).toBe('vm: --vcpus: "997" is not valid; expected a whole number from 1 to 256');
  });

  // Each knob of .env.example, the part that reads it, and a value it must refuse. A knob missing
  // here, or one its reader accepts this value for, fails the test. In-process, as each tool reads
  // them at start (the .env test above runs the real command).
  const vm = () => parseVmOptions([]);
  const logFile = () => {
    const o = parseVmOptions([]);
    return createRunLogger({ file: o.logFile, fileWhat: o.logFileWhat, level: 'info', exitHandlers: false });
  };
  const JOB = join(projectRoot(), 'jobs', 'randrw-4k.fio');
  const OWNERS: Record<string, [() => unknown, string]> = {
    COCO_VCPUS: [vm, '0'], COCO_MEM: [vm, '1M'], COCO_SWIOTLB: [vm, '2X'], COCO_CMDLINE: [vm, 'swiotlb=x'],
    COCO_RUNTIME: [vm, '0s'], COCO_SEED: [vm, '-1'], COCO_OUTPUT_FORMAT: [vm, 'xml'], COCO_LOG_LEVEL: [vm, 'loud'],
    COCO_LOG_FILE: [logFile, '/nonexistent-dir-coco/run.ndjson'], COCO_SAMPLE_INTERVAL: [vm, '30d'], COCO_STALL_TIMEOUT: [vm, '0'],
    COCO_FAIL_ON_ERRORS: [vm, 'maybe'], COCO_NVME_LATENCY: [vm, '2m'], COCO_NVME_BANDWIDTH: [vm, '0'],
    COCO_LOG_RING_SIZE: [logSettings, '1'], COCO_LOG_DRAIN_INTERVAL: [logSettings, '0'], COCO_LOG_FULL_WAIT: [logSettings, '1h'],
    COCO_ANALYZE_CHART_POINTS: [chartPointsSetting, '1'], COCO_THROTTLE: [vm, 'maybe'], COCO_HIGH_THROTTLE: [vm, 'lots'],
    COCO_LOW_THROTTLE: [vm, '150%'], COCO_THROTTLE_STALL_TIMEOUT: [vm, 'never'], COCO_LOCK_SPINS: [vm, '-1'],
    COCO_LOCK_PARK_TIMEOUT: [vm, '0.5ms'], COCO_STRESS_SECONDS: [() => parseStressOptions([]), '0'],
    COCO_STRESS_SEED: [() => parseStressOptions([]), 'x'], COCO_STRESS_MODE: [() => parseStressOptions([]), 'calm'],
    COCO_STRESS_MAX_VCPUS: [() => parseStressOptions([]), '1000'], COCO_STRESS_SCALE: [() => parseStressOptions([]), '0'],
    COCO_STRESS_WATCHDOG: [() => parseStressOptions([]), '1ms'], COCO_STRESS_PARK_TIMEOUT: [() => parseStressOptions([]), '1ms'],
    COCO_STRESS_MUTANT_BUDGET: [() => parseStressOptions([]), '0'], COCO_BENCH_SECONDS: [benchSeconds, '30d'], COCO_DEBUG: [debugEnabled, 'maybe'],
    COCO_BOUNCE_COPY: [bounceCopySetting, 'fast'],
    COCO_POLICY: [vm, 'bogus'], COCO_SWIOTLB_DYNAMIC: [vm, 'maybe'], COCO_RESTRICTED_POOL: [vm, 'wlan0=1M'], COCO_TIME_SCALE: [vm, '0'],
    COCO_BUDDYINFO: [vm, '/nonexistent-coco/buddyinfo'], COCO_FRAGMENTATION: [vm, 'bogus'], COCO_DECRYPT_LATENCY: [vm, 'slow'],
    COCO_DECRYPTED_ARENA: [vm, '1'], COCO_CHURN: [vm, 'lots'], COCO_HYBRID_TIMEOUT: [vm, 'soon'], COCO_GROW_LIMIT: [vm, 'big'], COCO_CMA: [vm, '5M'],
    COCO_SWEEP_REPEAT: [() => parseSweepBase(parseFlags(['--job', JOB], SWEEP_FLAGS, 'compare')), '0'],
    COCO_SWEEP_PARALLEL: [defaultParallel, 'x'], COCO_COMPARE_SIZES: [() => compareMain(['--job', JOB]), '16Q'],
  };

  it('lists every knob of .env.example here, and nothing else', () => {
    expect(Object.keys(parseEnvFile(EXAMPLE)).sort()).toEqual(Object.keys(OWNERS).sort());
  });

  describe('every knob is read and validated', () => {
    const saved = { ...process.env };
    afterEach(() => {
      for (const k of Object.keys(process.env)) if (k.startsWith('COCO_') && saved[k] === undefined) delete process.env[k];
      reloadConfig();
    });
    it.each(Object.entries(OWNERS))('%s: a bad value is an InputError naming it', async (key, [read, bad]) => {
      for (const k of Object.keys(process.env)) if (k.startsWith('COCO_')) delete process.env[k];
      process.env[key] = bad;
      reloadConfig();
      const outcome = (async () => read())();
      await expect(outcome).rejects.toThrow(InputError);
      await expect(outcome).rejects.toThrow(`${key} (environment)`);
    });
  });
});

/** npm run bench and bench:vm read their window from COCO_BENCH_SECONDS; run both with a bad one: both must refuse it. */
function benchSeconds(): void {
  const errors = ['bench', 'bench-vm'].map((name) => {
    const r = spawnSync(process.execPath, [join(projectRoot(), 'dist', 'scripts', `${name}.js`)], { env: { ...process.env }, encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 2) throw new Error(`${name} exited ${r.status}: ${r.stderr}`);
    return r.stderr;
  });
  throw new InputError('EBADDURATION', errors.join(''));
}
