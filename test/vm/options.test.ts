// The VM's options: precedence of flags over the configuration, bounds on what the run can honour,
// strict thread names, the tunables' parsers (shared with the flags), and --help of every command.
import { execFile } from 'node:child_process';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MessageChannel } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig, reloadConfig } from '../../src/config.js';
import { createRunLogger } from '../../src/log/logger.js';
import { parseVmOptions } from '../../src/vm/options.js';
import { ControlPlane } from '../../src/vm/control.js';
import { DEV_CONTROL_INTS } from '../../src/devices/queue.js';
import { bootSwiotlb } from '../../src/vm/vm.js';
import { IoTlbMem } from '../../src/swiotlb/mem.js';
import { POOL_START } from '../../src/swiotlb/constants.js';
import type { RunLogger } from '../../src/log/index.js';
import { projectRoot } from '../../src/util/worker-file.js';

const run = promisify(execFile);

function withEnv(env: Record<string, string>): void {
  for (const k of Object.keys(process.env)) if (k.startsWith('COCO_')) delete process.env[k];
  Object.assign(process.env, env);
  reloadConfig();
}

describe('vm options', () => {
  afterEach(() => withEnv({}));

  describe('flags win over the environment; two sources of one layer conflict', () => {
    it('COCO_SWIOTLB=8M with --cmdline swiotlb=2048: the flag sizes the pool (2048 slots, not 8 MiB)', () => {
      withEnv({ COCO_SWIOTLB: '8M' });
      const o = parseVmOptions(['--cmdline', 'swiotlb=2048', '--vcpus', '2']);
      expect(o.swiotlbBytes).toBeUndefined();
      expect(bootSwiotlb(o).nslabs).toBe(2048);
    });
    it('--exact-nslabs with a --cmdline that does not size the pool (nvme.poll_queues=1): both taken; with swiotlb=<nslabs>: a conflict', () => {
      const o = parseVmOptions(['--exact-nslabs', '512', '--cmdline', 'nvme.poll_queues=1', '--vcpus', '1']);
      expect([o.exactNslabs, o.cmdline]).toEqual([512, 'nvme.poll_queues=1']);
      expect(() => parseVmOptions(['--exact-nslabs', '512', '--cmdline', 'swiotlb=1024'])).toThrow('--exact-nslabs and --swiotlb/--cmdline all size the pool; give one of them');
    });
    it('--swiotlb 8M with COCO_CMDLINE=swiotlb=2048,4,force: 8M of slots (4096), the command line\'s areas and force kept', () => {
      withEnv({ COCO_CMDLINE: 'swiotlb=2048,4,force' });
      const b = bootSwiotlb(parseVmOptions(['--swiotlb', '8M', '--vcpus', '2']));
      expect(b.nslabs).toBe(4096);
      expect(b.nareas).toBe(4);
    });
    it('refuses two flags, or two variables, that both size the pool', () => {
      expect(() => parseVmOptions(['--swiotlb', '8M', '--cmdline', 'swiotlb=2048'])).toThrow('--swiotlb and --cmdline (swiotlb=<nslabs>) both size the pool; give one of them');
      withEnv({ COCO_SWIOTLB: '8M', COCO_CMDLINE: 'swiotlb=2048' });
      expect(() => parseVmOptions([])).toThrow('COCO_SWIOTLB (environment) and COCO_CMDLINE (environment) (swiotlb=<nslabs>) both size the pool');
    });
    it('lets a command line without a slot count go with --swiotlb', () => {
      const b = bootSwiotlb(parseVmOptions(['--swiotlb', '8M', '--cmdline', 'swiotlb=,2,force', '--vcpus', '8']));
      expect([b.nslabs, b.nareas]).toEqual([4096, 2]);
    });
  });

  describe('durations bounded by what the run can honour, with the bound in the error', () => {
    it.each([
      [['--tune', '30d:io_tlb_used_hiwater=0'], '--tune: "30d" is out of range; expected a duration from 0 to 24.86d (2^31-1 ms, the longest timer Node honours)'],
      [['--stall-timeout', '30d'], '--stall-timeout: "30d" is out of range; expected a duration longer than 0 and at most 24.86d'],
      [['--inject-fault', 'vcpu0@30d'], '--inject-fault: "30d" is out of range'],
      [['--sample-interval', '2m'], '--sample-interval: "2m" is out of range; expected a duration from 1ms to 1m'],
      [['--lock-park-timeout', '1.5ms'], '--lock-park-timeout: "1.5ms" is out of range; expected a duration from 1ms to 1m in whole milliseconds'],
      [['--nvme-latency', '2m'], '--nvme-latency: "2m" is out of range; expected a duration from 0 to 1m'],
    ])('%j', (args, msg) => {
      expect(() => parseVmOptions(args)).toThrow(msg);
    });
    it('bounds a --tune time by the timer it becomes at --time-scale K (K times as long in wall time)', () => {
      expect(() => parseVmOptions(['--time-scale', '1000', '--tune', '1d:io_tlb_used_hiwater=0'])).toThrow('--tune: "1d" at time scale 1000 is 1000d of wall time, longer than a Node timer honours; expected at most 35.79m (2^31-1 ms / 1000)');
      expect(parseVmOptions(['--time-scale', '1000', '--tune', '35m:io_tlb_used_hiwater=0']).tune[0]!.atMs).toBe(35 * 60_000);
    });
    it('COCO_SAMPLE_INTERVAL=30d (it sampled every millisecond) names the variable and the bound', () => {
      withEnv({ COCO_SAMPLE_INTERVAL: '30d' });
      expect(() => parseVmOptions([])).toThrow('COCO_SAMPLE_INTERVAL (environment): "30d" is out of range; expected a duration from 1ms to 1m');
    });
    it('accepts the bounds themselves', () => {
      const o = parseVmOptions(['--tune', `${2 ** 31 - 1}ms:io_tlb_used_hiwater=0`, '--sample-interval', '1m', '--stall-timeout', '24d']);
      expect(o.tune[0]!.atMs).toBe(2 ** 31 - 1);
      expect(o.sampleIntervalMs).toBe(60_000);
    });
  });

  it.each([['0'], ['1'], ['1023K'], ['2T']])('refuses --nvme-bandwidth %s, which the device model cannot honour, with the range', (v) => {
    expect(() => parseVmOptions(['--nvme-bandwidth', v])).toThrow(`--nvme-bandwidth: "${v}" is a bandwidth the device model cannot honour; expected 1MiB/s to 1TiB/s (1M to 1T)`);
  });
  it('accepts --nvme-bandwidth 1M and 1T', () => {
    expect(parseVmOptions(['--nvme-bandwidth', '1M']).nvmeBandwidth).toBe(2 ** 20);
    expect(parseVmOptions(['--nvme-bandwidth', '1T']).nvmeBandwidth).toBe(2 ** 40);
  });

  it.each([['vcpu01@200ms'], ['vcpu+1@1s'], ['vcpu4@1s'], ['vcpu@1s'], ['nvme1@1s']])('refuses --inject-fault %s (a thread the VM does not run by that name)', (v) => {
    expect(() => parseVmOptions(['--vcpus', '4', '--inject-fault', v])).toThrow(`--inject-fault: "${v}" is not valid; expected THREAD@TIME with THREAD one of vcpuN (N a vCPU number without leading zeros), nvme0, eth0`);
  });
  it('accepts the threads by their names', () => {
    expect(parseVmOptions(['--vcpus', '11', '--inject-fault', 'vcpu10@200ms']).injectFault).toEqual({ thread: 'vcpu10', atMs: 200 });
    expect(parseVmOptions(['--vcpus', '1', '--inject-fault', 'vcpu0@1s']).injectFault).toEqual({ thread: 'vcpu0', atMs: 1000 });
  });

  it('says a 40-digit slot count is too large, with the range (not "at least 1")', () => {
    expect(() => parseVmOptions(['--cmdline', `swiotlb=${'9'.repeat(40)}`])).toThrow(/swiotlb=9{40}: the slot count is too large, above the 1 GiB limit of the static pool; expected 1 to 524288 slots$/);
    expect(() => parseVmOptions(['--cmdline', `swiotlb=128,${'9'.repeat(40)}`])).toThrow(/the area count is too large, .*; expected 1 to 4096/);
    expect(() => parseVmOptions(['--cmdline', 'swiotlb=524289'])).toThrow('524289 slots is too large');
    expect(parseVmOptions(['--cmdline', 'swiotlb=524288']).cmdline).toBe('swiotlb=524288');
  });
});

describe('user text echoed in errors: escaped and capped (src/util/quote.ts)', () => {
  it('a 1 MB unknown flag name gives a short line that says how long it was', () => {
    let msg = '';
    try {
      parseVmOptions([`--${'x'.repeat(1 << 20)}`]);
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toMatch(/^unknown flag --x{64}\.\.\.\(1048576 bytes\); accepted: --vcpus, /);
    expect(msg.length).toBeLessThan(2000);
  });
  it('control bytes in a flag value or a config name are escaped, never echoed raw', () => {
    expect(() => parseVmOptions(['--output-format', 'js\x1b[2Jon\r'])).toThrow('--output-format: "js\\x1b[2Jon\\r" is not valid; expected normal or json');
    expect(() => parseVmOptions(['--nvme-bandwidth', '0\x07'])).toThrow('--nvme-bandwidth: "0\\x07" is not a size');
    expect(() => loadConfig({ defaultsText: 'COCO_A=1\n', dotenvText: 'COCO_\x1bB=2\n', dotenvPath: '.env', env: {} })).toThrow('COCO_\\x1bB (.env) is not a known setting');
  });
});

describe('the log file', () => {
  it('under a regular file is ENOTDIR, in a missing directory is refused (never created), with the accepted form', () => {
    const dir = mkdtempSync(join(tmpdir(), 'coco-log-'));
    writeFileSync(join(dir, 'plain'), 'x');
    const open = (file: string) => () => createRunLogger({ file, fileWhat: '--log-file', level: 'info', exitHandlers: false });
    expect(open(join(dir, 'plain', 'run.ndjson'))).toThrow(`--log-file: "${join(dir, 'plain', 'run.ndjson')}": a part of the directory path "${join(dir, 'plain')}" is a regular file, not a directory (ENOTDIR)`);
    expect(open(join(dir, 'missing', 'run.ndjson'))).toThrow(`the directory "${join(dir, 'missing')}" does not exist (ENOENT); create it first, or name a file in an existing directory`);
    expect(open(dir)).toThrow('it is a directory (EISDIR)');
  });
});

describe('tunables: the flags\' forms, and EINVAL for an empty value', () => {
  const plane = () => {
    const mem = IoTlbMem.create({ nslabs: 1024, nareas: 1, start: POOL_START, forceBounce: true });
    return new ControlPlane(mem, { emit: () => {} } as unknown as RunLogger);
  };
  it('takes high_throttle=50% as --high-throttle 50% does: 50% of nslabs, rounded down', () => {
    const cp = plane();
    expect(cp.parseAssignment('high_throttle=50%', '--tune')).toEqual({ name: 'high_throttle', value: 512 });
    expect(cp.parseAssignment('low_throttle=33%', '--tune')).toEqual({ name: 'low_throttle', value: 337 }); // floor(1024 * 33 / 100)
    expect(cp.parseAssignment('high_throttle=700', '--tune')).toEqual({ name: 'high_throttle', value: 700 });
    expect(() => cp.parseAssignment('high_throttle=150%', '--tune')).toThrow('is not a percentage from 0% to 100%');
    cp.close();
  });
  it.each(['io_tlb_used_hiwater=', 'high_throttle=', 'nvme0.latency_us= ', 'failed_map_backoff_us='])('refuses %j (an empty write is EINVAL, not 0)', (text) => {
    const cp = plane();
    cp.addDevice('nvme0', new MessageChannel().port1, new Int32Array(DEV_CONTROL_INTS));
    expect(() => cp.parseAssignment(text, '--tune')).toThrow(/has no value \(EINVAL\); expected/);
    cp.close();
  });
  it('refuses nvme0.bandwidth_bytes_per_s=0 with the flag\'s range', () => {
    const cp = plane();
    cp.addDevice('nvme0', new MessageChannel().port1, new Int32Array(DEV_CONTROL_INTS));
    expect(() => cp.parseAssignment('nvme0.bandwidth_bytes_per_s=0', '--tune')).toThrow('expected 1MiB/s to 1TiB/s (1M to 1T)');
    cp.close();
  });
});

describe('--help of every command: usage on stdout, exit 0, nothing run', () => {
  const script = (name: string) => join(projectRoot(), 'dist', 'scripts', `${name}.js`);
  it.each([
    ['vm', ['--vcpus N', '[default: 32; COCO_VCPUS]', '--nvme-bandwidth SIZE', '[default: 2G; COCO_NVME_BANDWIDTH]', '--tune AT:NAME=VALUE', 'Tunables (--tune', '  high_throttle ', 'nvme0.latency_us']],
    ['bench', ['--seconds DURATION', '[default: 1; COCO_BENCH_SECONDS]']],
    ['bench-vm', ['usage: npm run bench:vm -- [flags]', '--against DIR', '[default: none]']],
    ['bench-analyze', ['--size SIZE', '[default: 1G]', '--keep [on|off]']],
    ['bench-log', ['--workers N', '[default: 1]']],
    ['stress', ['--seconds DURATION', '[default: 60; COCO_STRESS_SECONDS]', '--mode chaos|pct|mixed']],
    ['analyze', ['--output-format normal|json', '[default: normal; COCO_OUTPUT_FORMAT]', '--html FILE']],
    ['bundle-workers', ['usage: npm run build -- [flags]']],
    ['compare', ['--job FILE', '--repeat N', '--sizes SIZE[,SIZE...]', 'COCO_COMPARE_SIZES]']],
    ['size', ['--target FIGURE=MAX', '[default: failures=0]', '--find max-iodepth|max-vcpus']],
    ['bench-timescale', ['--k K[,K...]', '[default: 1,2,4,8,16]', '--tolerance N%']],
  ])('%s --help', async (name, expected) => {
    // A command that ran instead (a benchmark) would not end within the timeout, nor print the usage.
    const r = await run(process.execPath, [script(name), '--help'], { timeout: 30_000 });
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^usage: npm run /);
    for (const e of expected) expect(r.stdout).toContain(e);
  });

  it('npm run prints no banner on stdout (the project\'s .npmrc), so the output pipes into jq', async () => {
    // npm run vm builds first (incremental: nothing to do, but slow on a loaded host).
    // As from a user's shell: an npm that runs this test (npm test --loglevel=...) exports its own
    // npm_config_loglevel, which would override the project's .npmrc in the child npm.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.toLowerCase() !== 'npm_config_loglevel'));
    const r = await run('npm', ['run', 'vm', '--', '--help'], { cwd: projectRoot(), timeout: 170_000, env });
    expect(r.stdout).toMatch(/^usage: npm run vm -- \[flags\]\n/);
  }, 180_000);
});
