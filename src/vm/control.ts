// The VM's control plane: comlink between the main thread and the worker threads. Each vCPU and each
// device serves a small API on its own MessagePort, answered whenever that thread yields to its event
// loop (a vCPU every ~10 ms; never from inside the data path). A device thread sleeps until it is
// rung, so each call to it is counted and rings it (callDevice, devices/device.ts). The main thread reads and writes
// tunables through it while the VM runs. (Live counters are not gathered here: the sampler reads them
// from shared memory at one instant, since a round over the ports mixes answers of different ages.)
//
// Tunables have one name and one path each. Swiotlb tunables live in the allocator's shared header,
// so the main thread writes them directly; device and vCPU tunables are set over comlink on the
// thread that uses them.
import { quote } from '../util/quote.js';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { InputError } from '../errors.js';
import type { RunLogger } from '../log/index.js';
import { IoTlbMem } from '../swiotlb/mem.js';
import { IO_TLB_SEGSIZE, POOL_START } from '../swiotlb/constants.js';
import { type Remote, releaseRemote, wrapPort } from '../util/comlink.js';
import { DEFAULT_FAILED_MAP_BACKOFF_US } from './vcpu.js';
import { callDevice } from '../devices/device.js';
import { DEV_CONTROL_INTS } from '../devices/queue.js';
import { THROTTLE_TUNABLES, throttleSysctlPath } from '../swiotlb/throttle.js';
import { type DurationBounds, MAX_TIMER_MS, durationBoundsText, parseDurationInRange, parseIntInRange } from '../util/units.js';
import { LATENCY_BOUNDS_TEXT, BANDWIDTH_BOUNDS_TEXT, parseNvmeBandwidth, parseNvmeLatencyUs, parseThreshold, thresholdSlots } from './options.js';

/** The vCPU's wait after a failed map, before it tries again. */
const BACKOFF_BOUNDS: DurationBounds = { minMs: 0, maxMs: 1000 };

/** Served by every vCPU thread. */
export interface VcpuControlApi {
  /** Set a vCPU tunable; returns the old value. */
  set(name: string, value: number): number;
}

/** Served by every device thread. */
export interface DeviceControlApi {
  get(name: string): number;
  /** Set a device tunable; returns the old value. */
  set(name: string, value: number): number;
}

/** Tunables a device thread applies to its service model. */
export const DEVICE_TUNABLES = ['latency_us', 'bandwidth_bytes_per_s'] as const;

/** One tunable: how it is named, parsed, read and written. */
export interface Tunable {
  /** The name used with --tune, e.g. io_tlb_used_hiwater, nvme0.latency_us. */
  name: string;
  /** Where the kernel (or the proposal) exposes it. */
  path: string;
  /** The accepted form, for error messages. */
  form: string;
  parse(text: string, what: string): number;
  get(): Promise<number>;
  set(value: number): Promise<void>;
}

export class ControlPlane {
  private readonly vcpus: Remote<VcpuControlApi>[] = [];
  /** Our ends of the ports: comlink cannot close them through the Node adapter, so close() does. */
  private readonly ports: MessagePort[] = [];
  private readonly devices = new Map<string, Remote<DeviceControlApi>>();
  private readonly tunables = new Map<string, Tunable>();
  /** The last value set on every vCPU (the vCPUs' default until then). */
  private failedMapBackoffUs = DEFAULT_FAILED_MAP_BACKOFF_US;

  constructor(private readonly mem: IoTlbMem, private readonly log: RunLogger) {
    this.register({
      name: 'io_tlb_used_hiwater', path: '/sys/kernel/debug/swiotlb/io_tlb_used_hiwater', form: '0 (reset)',
      parse: (t, what) => {
        // As the kernel's debugfs write (kstrtoul): digits only, and only 0 resets; "" is EINVAL, not 0.
        if (!/^\s*\d+\s*$/.test(t) || Number(t) !== 0) throw new InputError('EBADTUNE', `${what}: ${quote(t)} is invalid (EINVAL); io_tlb_used_hiwater accepts only 0 (reset)`);
        return 0;
      },
      get: async () => this.mem.debugfs().io_tlb_used_hiwater,
      set: async (v) => this.mem.writeUsedHiwater(v),
    });
    // [RFC] The throttle knobs (§15.8), under the sysctl paths proposed in review. Like the RFC, values
    // are not checked against each other (the core warns when low_throttle > high_throttle).
    // The thresholds take the same forms as --high-throttle and --low-throttle (slots or a percentage
    // of nslabs, one parser); the counters take a whole number (usually 0, to reset).
    for (const name of THROTTLE_TUNABLES) {
      const threshold = name === 'high_throttle' || name === 'low_throttle';
      this.register({
        name, path: throttleSysctlPath(name),
        form: threshold ? 'a slot count or a percentage of nslabs, e.g. 22937 or 70%' : 'a whole number (usually 0, to reset)',
        parse: threshold
          ? (t, what) => thresholdSlots(parseThreshold(t, what), this.mem.defpool.nslabs)
          : (t, what) => parseIntInRange(t, what, 0, 2 ** 31 - 1),
        get: async () => this.mem.throttleDebugfs()[name],
        set: async (v) => this.mem.writeThrottleTunable(name, v),
      });
    }
    this.register({
      name: 'failed_map_backoff_us', path: 'vcpu/*/failed_map_backoff_us', form: `a duration ${durationBoundsText(BACKOFF_BOUNDS)}, e.g. 50us`,
      parse: (t, what) => parseDurationInRange(t, what, BACKOFF_BOUNDS, 0.001) * 1000,
      get: async () => this.failedMapBackoffUs,
      set: async (v) => {
        this.failedMapBackoffUs = v;
        await Promise.all(this.vcpus.map((r) => r.set('failed_map_backoff_us', v)));
      },
    });
  }

  /** Add a tunable (later subsystems register theirs: throttle thresholds, dynamic pools). */
  register(t: Tunable): void {
    this.tunables.set(t.name, t);
  }

  addVcpu(cpu: number, port: MessagePort): void {
    this.vcpus[cpu] = wrapPort<VcpuControlApi>(port);
    this.ports.push(port);
  }

  /** A device's control port, and its control block (devices/queue.ts), whose doorbell each call rings. */
  addDevice(name: string, port: MessagePort, control: Int32Array): void {
    const remote = wrapPort<DeviceControlApi>(port);
    this.ports.push(port);
    this.devices.set(name, remote);
    const units: Record<(typeof DEVICE_TUNABLES)[number], Pick<Tunable, 'form' | 'parse'>> = {
      latency_us: { form: `a duration ${LATENCY_BOUNDS_TEXT}, e.g. 20us`, parse: parseNvmeLatencyUs },
      bandwidth_bytes_per_s: { form: `bytes per second, ${BANDWIDTH_BOUNDS_TEXT}, e.g. 2G`, parse: parseNvmeBandwidth },
    };
    for (const k of DEVICE_TUNABLES) {
      this.register({
        name: `${name}.${k}`, path: `/sys/class/emul/${name}/${k}`, ...units[k],
        get: () => callDevice(control, () => remote.get(k) as Promise<number>),
        set: async (v) => {
          await callDevice(control, () => remote.set(k, v) as Promise<number>);
        },
      });
    }
  }

  /** Every tunable's name, path and accepted form. */
  list(): { name: string; path: string; form: string }[] {
    return [...this.tunables.values()].map(({ name, path, form }) => ({ name, path, form }));
  }

  private tunable(name: string, what: string): Tunable {
    const t = this.tunables.get(name);
    if (t === undefined) {
      throw new InputError('EBADTUNE', `${what}: no tunable ${quote(name)}; expected one of ${[...this.tunables.keys()].join(', ')}`);
    }
    return t;
  }

  /** Check a NAME=VALUE assignment without applying it (validation at the boundary). */
  parseAssignment(text: string, what: string): { name: string; value: number } {
    const eq = text.indexOf('=');
    if (eq <= 0) throw new InputError('EBADTUNE', `${what}: ${quote(text)} is not an assignment; expected NAME=VALUE`);
    const name = text.slice(0, eq).trim();
    const value = text.slice(eq + 1).trim();
    const t = this.tunable(name, what);
    // An empty value is EINVAL, as a write of "" to a sysctl or debugfs file is; never 0.
    if (value === '') throw new InputError('EBADTUNE', `${what}: ${quote(text)} has no value (EINVAL); expected ${name}=${t.form}`);
    return { name, value: t.parse(value, `${what} ${name}`) };
  }

  async get(name: string): Promise<number> {
    return this.tunable(name, 'get').get();
  }

  /** Write a tunable and log the change under its path. Returns the old value. */
  async set(name: string, value: number): Promise<number> {
    const t = this.tunable(name, 'set');
    const old = await t.get();
    await t.set(value);
    this.log.emit('tunable_changed', { name: t.path, old, new: await t.get() });
    return old;
  }

  /** Drop every proxy and close our ends of the ports, so nothing keeps the process alive. */
  close(): void {
    for (const r of this.vcpus) if (r !== undefined) releaseRemote(r);
    for (const r of this.devices.values()) releaseRemote(r);
    for (const p of this.ports) p.close();
    this.vcpus.length = 0;
    this.devices.clear();
    this.ports.length = 0;
  }
}

/** One scheduled change: at `atMs` after the run starts, set `name` to `value` (--tune AT:NAME=VALUE). */
export interface TuneStep {
  atMs: number;
  text: string;
}

/** Parse --tune values ("2s:io_tlb_used_hiwater=0"); the assignment is checked once the tunables exist. */
export function parseTuneSteps(values: readonly string[], what: string): TuneStep[] {
  return values.map((v) => {
    const colon = v.indexOf(':');
    if (colon <= 0) throw new InputError('EBADTUNE', `${what}: ${quote(v)} is not valid; expected AT:NAME=VALUE, e.g. 2s:io_tlb_used_hiwater=0`);
    return { atMs: parseDurationInRange(v.slice(0, colon), what, TUNE_AT_BOUNDS), text: v.slice(colon + 1) };
  });
}

/** When a --tune step may apply: a timer from the start of the run (its end is checked against the plan). */
const TUNE_AT_BOUNDS: DurationBounds = { minMs: 0, maxMs: MAX_TIMER_MS };

/** Every tunable --tune can set, with its path and accepted form, for vm --help (from a real control plane). */
export function tunablesHelp(): string {
  const mem = IoTlbMem.create({ nslabs: IO_TLB_SEGSIZE, nareas: 1, start: POOL_START, forceBounce: true });
  const cp = new ControlPlane(mem, { emit: () => {} } as unknown as RunLogger);
  for (const name of ['nvme0', 'eth0']) {
    const ch = new MessageChannel();
    cp.addDevice(name, ch.port1, new Int32Array(DEV_CONTROL_INTS));
    ch.port2.close();
  }
  const rows = cp.list();
  cp.close();
  const w = Math.max(...rows.map((r) => r.name.length));
  return ['Tunables (--tune AT:NAME=VALUE, AT from the start of the run):', ...rows.map((r) => `  ${r.name.padEnd(w)}  ${r.form}  (${r.path})`), ''].join('\n');
}
