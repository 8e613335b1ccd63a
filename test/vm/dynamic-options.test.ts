// The dynamic-swiotlb switch: --swiotlb-dynamic / COCO_SWIOTLB_DYNAMIC (default off, as
// CONFIG_SWIOTLB_DYNAMIC's Kconfig default n), can_grow on the default allocator, and the
// command line staying mainline's (no swiotlb=dynamic).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/util/worker-file.js';
import { InputError } from '../../src/errors.js';
import { parseVmOptions } from '../../src/vm/options.js';
import { bootSwiotlb } from '../../src/vm/vm.js';
import { parseSwiotlbCmdline } from '../../src/swiotlb/sizing.js';

const VM = join(projectRoot(), 'dist', 'scripts', 'vm.js');

function inputError(f: () => unknown): InputError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return e as InputError;
  }
  throw new Error('expected an InputError');
}

describe('--swiotlb-dynamic', () => {
  it('is off by default (Kconfig default n), and the default allocator cannot grow', () => {
    const opts = parseVmOptions(['--vcpus', '2', '--mem', '1G']);
    expect(opts.swiotlbDynamic).toBe(false);
    expect(bootSwiotlb(opts).mem.canGrow).toBe(false);
  });
  it('--policy dynamic is the same switch', () => {
    const opts = parseVmOptions(['--vcpus', '2', '--mem', '1G', '--policy', 'dynamic']);
    expect([opts.policy, opts.swiotlbDynamic]).toEqual(['dynamic', true]);
    expect(parseVmOptions(['--swiotlb-dynamic', 'on']).policy).toBe('dynamic');
  });
  it('on sets can_grow on the default allocator', () => {
    const opts = parseVmOptions(['--vcpus', '2', '--mem', '1G', '--swiotlb-dynamic', 'on']);
    expect(opts.swiotlbDynamic).toBe(true);
    expect(bootSwiotlb(opts).mem.canGrow).toBe(true);
  });
  it('a bad value is one line naming the flag or COCO_SWIOTLB_DYNAMIC and the accepted form, exit 2', () => {
    expect(inputError(() => parseVmOptions(['--swiotlb-dynamic=maybe'])).message).toBe('--swiotlb-dynamic: "maybe" is not valid; expected on or off');
    const r = spawnSync(process.execPath, [VM, '--vcpus', '1'], { encoding: 'utf8', env: { ...process.env, COCO_SWIOTLB_DYNAMIC: 'sometimes' } });
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe('vm: COCO_SWIOTLB_DYNAMIC (environment): "sometimes" is not valid; expected on or off');
  });
});

describe('swiotlb=dynamic on the command line', () => {
  it.each(['swiotlb=dynamic', 'swiotlb=force,dynamic', 'swiotlb=32768,dynamic', 'quiet swiotlb=32768,16,dynamic'])(
    '%s: one line saying mainline has no such option, naming the flag (exit 2)', (cmdline) => {
      const e = inputError(() => parseSwiotlbCmdline(cmdline));
      expect(e.exitStatus).toBe(2);
      expect(e.message).toMatch(/mainline Linux has no swiotlb=dynamic boot option/);
      expect(e.message).toContain('--swiotlb-dynamic on');
      expect(e.message).not.toContain('\n');
    });
  it('mainline forms are still accepted', () => {
    expect(parseSwiotlbCmdline('swiotlb=32768,16,force')).toEqual({ nslabs: 32768, nareas: 16, force: true, noforce: false });
  });
});
