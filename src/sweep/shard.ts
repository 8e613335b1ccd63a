// Sweeps beyond one machine: a sweep's configurations are enumerated in a fixed order, shard I of N
// runs those whose index is I modulo N, and writes its records to one file; a merge reads every
// shard's file, checks they come from the same sweep, and names the configurations nobody ran.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { quote } from '../util/quote.js';
import { type RunConfig, type RunRecord, configKey } from './run.js';

/** One shard: I of N, I from 0. */
export interface Shard {
  index: number;
  count: number;
}

const SHARD_FORM = 'I/N with 0 <= I < N, e.g. 3/8';

/**
 * The shard to run: --shard I/N; else --shards N with I from JOB_COMPLETION_INDEX (a Kubernetes Indexed
 * Job) or SLURM_ARRAY_TASK_ID (a Slurm job array, --array=0-(N-1)); else the whole sweep.
 */
export function parseShard(flag: string | undefined, shards: string | undefined, env: NodeJS.ProcessEnv = process.env): Shard {
  if (flag !== undefined) {
    const m = /^(\d+)\/(\d+)$/.exec(flag.trim());
    const s = m ? { index: Number(m[1]), count: Number(m[2]) } : undefined;
    if (s === undefined || s.count < 1 || s.index >= s.count) throw new InputError('EBADFLAG', `--shard: ${quote(flag)} is not valid; expected ${SHARD_FORM}`);
    return s;
  }
  if (shards === undefined) return { index: 0, count: 1 };
  if (!/^\d+$/.test(shards.trim()) || Number(shards) < 1) throw new InputError('EBADFLAG', `--shards: ${quote(shards)} is not valid; expected a whole number of shards, at least 1`);
  const count = Number(shards);
  for (const name of ['JOB_COMPLETION_INDEX', 'SLURM_ARRAY_TASK_ID']) {
    const v = env[name];
    if (v === undefined) continue;
    if (!/^\d+$/.test(v.trim()) || Number(v) >= count) throw new InputError('EBADENV', `${name}: ${quote(v)} is not a shard index of --shards ${count}; expected 0..${count - 1}`);
    return { index: Number(v), count };
  }
  throw new InputError('EBADFLAG', '--shards N needs the shard index: set JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID, or give --shard I/N');
}

/** The configurations of shard I of N: index modulo N, so every shard gets a share of every policy and size. */
export function shardOf<T>(all: readonly T[], s: Shard): T[] {
  return all.filter((_, i) => i % s.count === s.index);
}

/** One run's identity in a sweep: its configuration and its repeat. */
export function runId(c: RunConfig): string {
  return `${configKey(c)} repeat=${c.repeat}`;
}

/** A sweep's fingerprint: the hash of its enumeration, so shards of different sweeps are not merged. */
export function sweepId(all: readonly RunConfig[]): string {
  return createHash('sha256').update(all.map(runId).join('\n')).digest('hex').slice(0, 16);
}

/** What a shard writes to --out DIR. */
export interface ShardFile {
  format: 'coco-swiotlb-sweep/1';
  command: string;
  sweep: string;
  shard: Shard;
  /** The whole sweep's enumeration (every shard writes it, so a merge can name what is missing). */
  configs: RunConfig[];
  /** Anything the command needs to render the merged result as it renders an unsharded one. */
  meta: Record<string, unknown>;
  records: RunRecord[];
}

export function shardFileName(s: Shard): string {
  return `shard-${s.index}-of-${s.count}.json`;
}

export function writeShard(dir: string, file: Omit<ShardFile, 'format'>): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, shardFileName(file.shard));
  writeFileSync(path, JSON.stringify({ format: 'coco-swiotlb-sweep/1', ...file }) + '\n');
  return path;
}

export interface Merged {
  command: string;
  sweep: string;
  configs: RunConfig[];
  meta: Record<string, unknown>;
  /** Records in enumeration order; a run found in two files (a retried shard) is kept once, the later file's. */
  records: RunRecord[];
  /** Runs of the enumeration that no file holds. */
  missing: string[];
  files: string[];
}

/** Read every shard file in a directory (shard-*.json) into one set of records, in enumeration order. */
export function mergeShards(dir: string): Merged {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => /^shard-\d+-of-\d+\.json$/.test(n)).sort();
  } catch {
    throw new InputError('ENOENT', `--merge: cannot read directory ${quote(dir)}; expected the --out DIR of a sharded sweep`);
  }
  if (names.length === 0) throw new InputError('ENOENT', `--merge: no shard files (shard-I-of-N.json) in ${quote(dir)}`);
  let first: ShardFile | undefined;
  const byId = new Map<string, RunRecord>();
  for (const n of names) {
    let f: ShardFile;
    try {
      f = JSON.parse(readFileSync(join(dir, n), 'utf8')) as ShardFile;
    } catch {
      throw new InputError('EBADFILE', `--merge: ${quote(join(dir, n))} is not a shard file (not JSON)`);
    }
    if (f.format !== 'coco-swiotlb-sweep/1') throw new InputError('EBADFILE', `--merge: ${quote(join(dir, n))} is not a shard file of this version (format ${quote(String(f.format))})`);
    if (first === undefined) first = f;
    else if (f.sweep !== first.sweep) {
      throw new InputError('EBADFILE', `--merge: ${n} belongs to another sweep (${f.sweep}, not ${first.sweep}); keep one sweep's shards per directory`);
    }
    for (const r of f.records) byId.set(runId(r.config), r);
  }
  const ids = first!.configs.map(runId);
  return {
    command: first!.command, sweep: first!.sweep, configs: first!.configs, meta: first!.meta,
    records: ids.filter((id) => byId.has(id)).map((id) => byId.get(id)!),
    missing: ids.filter((id) => !byId.has(id)), files: names,
  };
}
