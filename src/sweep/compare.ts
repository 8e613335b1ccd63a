// `npm run compare`: the same workload, with the same seed, under every policy and pool size, each
// configuration --repeat times, in child processes (run.ts); one table of each figure's median and
// spread (figures.ts); --output-format json as one document; --html a page (html.ts). A sweep can be
// cut into shards run on many machines (--shard, --out) and merged back (--merge).
import { existsSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { configValue, envOrigin } from '../config.js';
import { InputError } from '../errors.js';
import { type ParsedFlags, parseFlags } from '../cli/flags.js';
import { quote } from '../util/quote.js';
import { table } from '../util/table.js';
import { formatBytes, parseDuration, parseIntInRange, parseSize } from '../util/units.js';
import { VM_FLAGS } from '../vm/options.js';
import { POLICIES, type PolicyName, availablePolicies, checkPolicyAvailable, parsePolicy } from '../vm/policy.js';
import { FIGURES, type Row, type Spread, rows } from './figures.js';
import { renderCompareHtml } from './html.js';
import { type RunConfig, type RunRecord, poolLabel, runConfigs } from './run.js';
import { type Merged, type Shard, mergeShards, parseShard, runId, shardOf, sweepId, writeShard } from './shard.js';

/** Flags every sweep command shares: the workload, the machine, repeats, seeds, parallelism, shards. */
export const SWEEP_FLAGS = [
  { name: 'job', kind: 'string', form: 'FILE', default: 'none, required', help: 'fio job file (required)' },
  { name: 'vcpus', kind: 'string', form: 'N', env: 'COCO_VCPUS', help: 'vCPUs of every run, 1..256' },
  { name: 'mem', kind: 'string', form: 'SIZE', env: 'COCO_MEM', help: 'guest memory of every run' },
  { name: 'runtime', kind: 'string', form: 'DURATION', default: 'the job file\'s', help: 'cap on each job\'s runtime, e.g. 3s' },
  { name: 'repeat', kind: 'string', form: 'N', env: 'COCO_SWEEP_REPEAT', help: 'runs of each configuration, 1..1000' },
  { name: 'seed', kind: 'string', form: 'N', env: 'COCO_SEED', help: 'seed of every run' },
  { name: 'parallel', kind: 'string', form: 'N|auto', env: 'COCO_SWEEP_PARALLEL', help: 'configurations run at once, each in its own process, 1..64' },
  { name: 'high-throttle', kind: 'string', form: 'SLOTS|N%', default: 'the RFC\'s 70%', help: '[RFC] high_throttle for the throttle policy: slots or % of nslabs' },
  { name: 'low-throttle', kind: 'string', form: 'SLOTS|N%', default: 'the RFC\'s 65%', help: '[RFC] low_throttle for the throttle policy: slots or % of nslabs' },
  { name: 'hybrid-timeout', kind: 'string', form: 'DURATION', default: 'the VM\'s (COCO_HYBRID_TIMEOUT)', help: '[proposal] --hybrid-timeout for the hybrid policy\'s runs' },
  { name: 'cma', kind: 'string', form: 'SIZE', default: 'the VM\'s (COCO_CMA)', help: '[proposal] --cma for the cma policy\'s runs' },
  { name: 'grow-limit', kind: 'string', form: 'SIZE', default: 'the VM\'s (COCO_GROW_LIMIT)', help: '[proposal] --grow-limit for the dynamic and hybrid policies\' runs' },
  { name: 'time-scale', kind: 'string', form: 'K', env: 'COCO_TIME_SCALE', help: 'passed to the VM as --time-scale (when the VM has it)' },
  { name: 'output-format', kind: 'string', form: 'normal|json', env: 'COCO_OUTPUT_FORMAT', help: 'a table or one JSON document' },
] as const;

export const COMPARE_FLAGS = [
  ...SWEEP_FLAGS,
  { name: 'policies', kind: 'string', form: 'P[,P...]', default: `every one this build runs: ${availablePolicies().join(',')}`, help: 'policies to compare, comma-separated' },
  { name: 'sizes', kind: 'string', form: 'SIZE[,SIZE...]', env: 'COCO_COMPARE_SIZES', help: 'pool sizes, comma-separated, e.g. 16M,32M,64M' },
  { name: 'html', kind: 'string', form: 'FILE', default: 'none', help: 'write a self-contained HTML page: timelines overlaid, a bar chart per figure' },
  { name: 'shard', kind: 'string', form: 'I/N', default: 'the whole sweep', help: 'run only shard I of N (I from 0), e.g. 3/8; needs --out' },
  { name: 'shards', kind: 'string', form: 'N', default: '1', help: 'N shards, this one\'s index from JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID; needs --out' },
  { name: 'out', kind: 'string', form: 'DIR', default: 'none', help: 'directory for this run\'s result file (shard-I-of-N.json)' },
  { name: 'merge', kind: 'string', form: 'DIR', default: 'none', help: 'merge the shard files of DIR into one table (no runs)' },
] as const;

/** What a sweep's runs share, parsed and checked once. */
export interface SweepBase {
  job: string;
  vcpus: number;
  mem: string;
  runtime: string | undefined;
  repeat: number;
  seed: number;
  parallel: number;
  /** VM flags every run of a policy gets (its knobs), by policy. */
  knobs: (p: PolicyName) => Record<string, string>;
  /** The knobs as given, for the record. */
  knobText: Record<string, string>;
  outputFormat: 'normal' | 'json';
}

/** The default parallelism: one run at a time unless the machine has cores to spare beyond one VM's threads. */
export function defaultParallel(): number {
  const v = configValue('COCO_SWEEP_PARALLEL');
  if (v !== 'auto') return parseIntInRange(v, envOrigin('COCO_SWEEP_PARALLEL'), 1, 64);
  return Math.max(1, Math.floor(availableParallelism() / 8));
}

export function parseSweepBase(f: ParsedFlags): SweepBase {
  // size --trace: a kernel trace is the workload instead (size.ts checks it).
  const job = f.has('trace') ? '' : f.get('job');
  if (job === undefined) throw new InputError('EBADFLAG', '--job FILE is required: the fio job file every run uses');
  if (job !== '' && !existsSync(job)) throw new InputError('ENOENT', `--job: ${quote(job)} does not exist; expected an fio job file`);
  const { value: vcpus, what: vcpusWhat } = f.setting('vcpus');
  const { value: mem, what: memWhat } = f.setting('mem');
  const { value: repeat, what: repeatWhat } = f.setting('repeat');
  const { value: seed, what: seedWhat } = f.setting('seed');
  const { value: fmt, what: fmtWhat } = f.setting('output-format');
  if (fmt !== 'normal' && fmt !== 'json') throw new InputError('EBADFLAG', `${fmtWhat}: ${quote(fmt)} is not valid; expected normal or json`);
  parseSize(mem, memWhat);
  const runtime = f.get('runtime');
  if (runtime !== undefined) parseDuration(runtime, '--runtime');
  const knobText: Record<string, string> = {};
  for (const k of ['high-throttle', 'low-throttle', 'hybrid-timeout', 'grow-limit', 'cma', 'time-scale']) if (f.has(k)) knobText[k] = f.get(k)!;
  if (knobText['time-scale'] !== undefined && !VM_FLAGS.some((s) => s.name === 'time-scale')) {
    throw new InputError('EBADFLAG', '--time-scale: this build\'s VM has no --time-scale yet; drop the flag');
  }
  return {
    job, vcpus: parseIntInRange(vcpus, vcpusWhat, 1, 256), mem, runtime,
    repeat: parseIntInRange(repeat, repeatWhat, 1, 1000), seed: parseIntInRange(seed, seedWhat, 0, 2 ** 31 - 1),
    parallel: f.has('parallel') ? parseIntInRange(f.get('parallel')!, '--parallel', 1, 64) : defaultParallel(),
    knobs: (p) => {
      const out: Record<string, string> = {};
      if (knobText['time-scale'] !== undefined) out['time-scale'] = knobText['time-scale'];
      // A throttle threshold is the throttle policy's knob and hybrid's (it waits on the same semaphore).
      if (p === 'throttle' || p === 'hybrid') {
        for (const k of ['high-throttle', 'low-throttle']) if (knobText[k] !== undefined) out[k] = knobText[k];
      }
      if (p === 'hybrid' && knobText['hybrid-timeout'] !== undefined) out['hybrid-timeout'] = knobText['hybrid-timeout'];
      if ((p === 'dynamic' || p === 'hybrid') && knobText['grow-limit'] !== undefined) out['grow-limit'] = knobText['grow-limit'];
      if (p === 'cma' && knobText['cma'] !== undefined) out['cma'] = knobText['cma'];
      return out;
    },
    knobText, outputFormat: fmt,
  };
}

/** A policy's knob given to a sweep with none of the policies that use it: refused, as the VM refuses it. */
export function knobsUsed(f: ParsedFlags, policies: readonly PolicyName[]): void {
  const users: Record<string, PolicyName[]> = { 'hybrid-timeout': ['hybrid'], 'grow-limit': ['dynamic', 'hybrid'], cma: ['cma'] };
  for (const [k, who] of Object.entries(users)) {
    if (f.has(k) && !policies.some((p) => who.includes(p))) {
      throw new InputError('EBADFLAG', `--${k} applies to --policy ${who.join(' or ')}, which this sweep does not run; drop it or add ${who.join(' or ')} to --policies`);
    }
  }
  if (f.has('hybrid-timeout')) parseDuration(f.get('hybrid-timeout')!, '--hybrid-timeout');
  if (f.has('grow-limit')) parseSize(f.get('grow-limit')!, '--grow-limit');
  if (f.has('cma')) parseSize(f.get('cma')!, '--cma');
}

function list(text: string, what: string): string[] {
  const items = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (items.length === 0) throw new InputError('EBADFLAG', `${what}: ${quote(text)} is empty; expected a comma-separated list`);
  if (new Set(items).size !== items.length) throw new InputError('EBADFLAG', `${what}: ${quote(text)} names an item twice; give each once`);
  return items;
}

/** Every run of a comparison, in a fixed order: policy, then size, then repeat. */
export function enumerateCompare(base: SweepBase, policies: readonly PolicyName[], sizes: readonly string[]): RunConfig[] {
  const out: RunConfig[] = [];
  for (const policy of policies) {
    for (const size of sizes) {
      for (let repeat = 0; repeat < base.repeat; repeat++) {
        out.push({
          job: base.job, vcpus: base.vcpus, mem: base.mem, pool: { swiotlb: size }, policy, knobs: base.knobs(policy), seed: base.seed,
          ...(base.runtime !== undefined ? { runtime: base.runtime } : {}), repeat,
        });
      }
    }
  }
  return out;
}

/** The comparison as one document (--output-format json, and what the HTML page embeds). */
export interface CompareDocument {
  command: 'compare';
  sweep: string;
  figures: { name: string; label: string; unit: string; help: string }[];
  policies: { name: string; status: string; source: string }[];
  rows: Row[];
  runs: { id: string; key: string; repeat: number; seed: number; status: string; exit: number | null; reason?: string; wall_ms: number; figures: Record<string, number | null> }[];
  /** Runs of the sweep that no shard file held (a merge only). */
  missing: string[];
}

export function compareDocument(sweep: string, records: readonly RunRecord[], missing: string[]): CompareDocument {
  const policies = [...new Set(records.map((r) => r.config.policy))];
  return {
    command: 'compare', sweep,
    figures: FIGURES.map(({ name, label, unit, help }) => ({ name, label, unit, help })),
    policies: policies.map((p) => ({ name: p, status: POLICIES[p].status, source: POLICIES[p].source })),
    rows: rows(records),
    runs: records.map((r) => ({
      id: runId(r.config), key: r.key, repeat: r.config.repeat, seed: r.seed, status: r.status, exit: r.exit,
      ...(r.reason !== undefined ? { reason: r.reason } : {}), wall_ms: r.wall_ms,
      figures: Object.fromEntries(FIGURES.map((f) => [f.name, r.report !== undefined ? f.of(r.report) : null])),
    })),
    missing,
  };
}

/** A figure's value for the text table: compact units. */
export function formatValue(unit: string, v: number): string {
  switch (unit) {
    case 'bytes': return formatBytes(Math.round(v));
    case 'bytes/s': return `${formatBytes(Math.round(v))}/s`;
    case 'us': return v >= 1000 ? `${(v / 1000).toFixed(2)}ms` : `${Math.round(v)}us`;
    default: return Number.isInteger(v) ? String(v) : v.toFixed(1);
  }
}

/** After a median: ±(max-min)/median, or (max N) when the median is 0 and a repeat is not; nothing when every repeat agrees. */
export function spreadText(unit: string, s: Spread): string {
  if (s.spread === null) return ` (max ${formatValue(unit, s.max)})`;
  return s.spread === 0 ? '' : ` ±${(s.spread * 100).toFixed(s.spread < 0.1 ? 1 : 0)}%`;
}

function cell(unit: string, s: Spread | null): string {
  if (s === null) return '-';
  return `${formatValue(unit, s.median)}${spreadText(unit, s)}`;
}

function poolText(c: Row['config']): string {
  return poolLabel(c.pool);
}

/** The text table: one row per configuration, each figure as median ±spread (range over median). */
export function formatCompare(doc: CompareDocument): string {
  const heads = ['policy', 'pool', '>runs', ...FIGURES.map((f) => `>${f.label}`), '>stalls'];
  const body = doc.rows.map((r) => [
    r.config.policy, poolText(r.config), `${r.ok}/${r.repeats}`,
    ...FIGURES.map((f) => cell(f.unit, r.figures[f.name] ?? null)), String(r.stalls),
  ]);
  const first = doc.rows[0]?.config;
  const out = [
    first === undefined ? 'compare: no runs' : `compare: ${first.job}, ${first.vcpus} vCPUs, ${first.mem}, seed ${first.seed}${first.runtime !== undefined ? `, runtime ${first.runtime}` : ''}, ${doc.rows[0]!.repeats} repeats each`,
    ...table(heads, body),
    '',
    'Each cell: the median over the runs that ended ok, and ±(max-min)/median when the repeats differ ((max N) when the median is 0). Map failures by cause:',
    'full, oversize, thr.abort (throttle wait aborted), transient (no transient pool; - without dynamic swiotlb). peak mem: every pool.',
    'p50/p99/p99.9: completion latency of the storage requests; wait p99: throttle and hybrid wait on throttle_sem (- when the policy does not wait).',
  ];
  for (const p of doc.policies) out.push(`  ${p.name}: ${p.status}, ${p.source}`);
  const bad = doc.rows.filter((r) => r.ok < r.repeats);
  if (bad.length > 0) {
    out.push('', 'Runs that did not end ok:');
    for (const r of bad) for (const why of r.reasons) out.push(`  ${r.config.policy} ${poolText(r.config)}: ${why}`);
  }
  if (doc.missing.length > 0) {
    out.push('', `Missing from the merge (${doc.missing.length} runs no shard file holds):`);
    for (const m of doc.missing) out.push(`  ${m}`);
  }
  return out.join('\n') + '\n';
}

/** Progress on a terminal only: one line per finished run. */
function progress(total: number): ((r: RunRecord) => void) | undefined {
  if (process.stderr.isTTY !== true) return undefined;
  let n = 0;
  return (r) => {
    n++;
    process.stderr.write(`[${n}/${total}] ${r.config.policy} ${poolLabel(r.config.pool)} repeat ${r.config.repeat}: ${r.status}${r.reason !== undefined ? ` (${r.reason})` : ''}\n`);
  };
}

/**
 * How long a run may take before it is killed and reported stalled: its runtime cap (--runtime, else
 * COCO_RUNTIME) times its --time-scale, plus the stall timeout and a minute for boot and teardown.
 */
export function runTimeoutMs(c: RunConfig): number {
  const stall = parseDuration(configValue('COCO_STALL_TIMEOUT'), envOrigin('COCO_STALL_TIMEOUT'));
  const run = c.runtime !== undefined ? parseDuration(c.runtime, '--runtime') : parseDuration(configValue('COCO_RUNTIME'), envOrigin('COCO_RUNTIME'));
  const k = c.knobs['time-scale'] !== undefined ? Number(c.knobs['time-scale']) : Number(configValue('COCO_TIME_SCALE'));
  return run * (Number.isFinite(k) && k >= 1 ? k : 1) + stall + 60_000;
}

/** Run records, failing the whole command with the VM's own message when a run's input was bad. */
export async function runAll(configs: readonly RunConfig[], parallel: number): Promise<RunRecord[]> {
  const tick = progress(configs.length);
  const records = await runConfigs(configs, parallel, { timeoutMs: runTimeoutMs }, (r) => tick?.(r));
  const bad = records.find((r) => r.status === 'input-error');
  if (bad !== undefined) throw new InputError('EBADFLAG', `a run was refused by the VM: ${bad.reason ?? ''}`);
  return records;
}

export interface CompareOutcome {
  text: string;
  status: number;
}

/** The whole command; returns what to print and the exit status (1 when a run stalled, crashed or is missing). */
export async function compareMain(argv: readonly string[]): Promise<CompareOutcome> {
  const f = parseFlags(argv, COMPARE_FLAGS, 'compare');
  const { value: fmt, what: fmtWhat } = f.setting('output-format');
  if (fmt !== 'normal' && fmt !== 'json') throw new InputError('EBADFLAG', `${fmtWhat}: ${quote(fmt)} is not valid; expected normal or json`);
  let merged: Merged;
  if (f.has('merge')) {
    const others = [...f.keys()].filter((k) => !['merge', 'output-format', 'html'].includes(k));
    if (others.length > 0) throw new InputError('EBADFLAG', `--merge takes only --output-format and --html; drop ${others.map((k) => `--${k}`).join(', ')}`);
    merged = mergeShards(f.get('merge')!);
  } else {
    const base = parseSweepBase(f);
    const policies = (f.has('policies') ? list(f.get('policies')!, '--policies') : availablePolicies()).map((p) => parsePolicy(p, '--policies'));
    for (const p of policies) checkPolicyAvailable(p, '--policies');
    knobsUsed(f, policies);
    const { value: sizesText, what: sizesWhat } = f.setting('sizes');
    const sizes = list(sizesText, sizesWhat);
    for (const s of sizes) parseSize(s, sizesWhat);
    const all = enumerateCompare(base, policies, sizes);
    const shard: Shard = parseShard(f.get('shard'), f.get('shards'));
    if (shard.count > 1 && !f.has('out')) throw new InputError('EBADFLAG', '--shard needs --out DIR: each shard writes its results there for --merge');
    const mine = shardOf(all, shard);
    const records = await runAll(mine, base.parallel);
    const sweep = sweepId(all);
    if (f.has('out')) writeShard(f.get('out')!, { command: 'compare', sweep, shard, configs: all, meta: {}, records });
    // A shard's table is its own part; the whole sweep's comes from --merge.
    merged = { command: 'compare', sweep, configs: all, meta: {}, records, missing: [], files: [] };
  }
  const doc = compareDocument(merged.sweep, merged.records, merged.missing);
  if (f.has('html')) writeFileSync(f.get('html')!, renderCompareHtml(doc, merged.records));
  const text = fmt === 'json' ? JSON.stringify(doc) + '\n' : formatCompare(doc) + (f.has('html') ? `HTML written to ${f.get('html')}\n` : '');
  const failed = merged.records.some((r) => r.status !== 'ok') || merged.missing.length > 0;
  return { text, status: failed ? 1 : 0 };
}
