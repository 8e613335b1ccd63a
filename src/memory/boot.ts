// Guest memory at boot, in the kernel's order: the page allocator over --mem (phys.ts), memblock
// reservations made before the buddy allocator serves (the default swiotlb pool: the caller's
// `reserve`), the atomic DMA pools (postcore_initcall), then the starting state of a guest that has run
// a while (buddyinfo.ts: a snapshot or a fragmentation level). Then, while the VM runs, the atomic
// pool's work thread. One entry point for the VM (and dynamic swiotlb's boot): bootGuestMemory.
import { Worker } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LogChannel } from '../log/logger.js';
import { workerFile } from '../util/worker-file.js';
import { DecryptedArena, type DecryptedArenaShared, MAX_ARENA_BYTES } from './arena.js';
import { AtomicPool, type AtomicPoolShared, type AtomicPoolStats, parseCoherentPoolCmdline, stopAtomicPoolWorker } from './atomic-pool.js';
import type { AtomicPoolWorkerConfig } from './atomic-pool-worker.js';
import { type BuddyinfoLine, type FragmentationLevel, applyStartingState } from './buddyinfo.js';
import type { CmaShared } from './cma.js';
import { CHURN_CONTROL_INTS, CHURN_STOP, type ChurnConfig, type ChurnStats, churnStats } from './churn.js';
import { GuestPhysMem, type GuestPhysShared, PAGE_SIZE, type ZoneFree } from './phys.js';

export interface GuestMemoryOptions {
  memBytes: number;
  /** The kernel command line: coherent_pool= is read from it. */
  cmdline: string;
  /** --buddyinfo: a parsed snapshot and where it came from; overrides fragmentation. */
  buddyinfo?: { lines: readonly BuddyinfoLine[]; source: string } | undefined;
  fragmentation: FragmentationLevel;
  /** set_memory_decrypted's cost per MiB (arena.ts). */
  decryptLatencyNsPerMiB: number;
  /** Capacity of the DecryptedArena; undefined: min(guest RAM, MAX_ARENA_BYTES). */
  decryptedArenaBytes?: number | undefined;
}

/** Everything a thread needs to attach guest memory, structured-clonable. */
export interface GuestMemoryShared {
  phys: GuestPhysShared;
  arena: DecryptedArenaShared;
  atomicPool: AtomicPoolShared;
}

export interface GuestMemoryBoot {
  phys: GuestPhysMem;
  arena: DecryptedArena;
  atomicPool: AtomicPool;
  shared: GuestMemoryShared;
  /** The kernel's boot lines (the atomic pools'). */
  bootLines: string[];
  /** What the starting state could not apply as given (one line each), for the console and the log. */
  notes: string[];
  /** Free blocks per zone and order once boot is done: the report's "at the start". */
  startFree: ZoneFree[];
  decryptLatencyNsPerMiB: number;
}

/**
 * Boot guest memory. `reserve` runs in memblock time, before anything allocates from the buddy
 * allocator (the default swiotlb pool is reserved there, memblock_alloc_low); what it returns is
 * passed back in `reserved`.
 */
export function bootGuestMemory<R = undefined>(opts: GuestMemoryOptions, reserve?: (phys: GuestPhysMem) => R): GuestMemoryBoot & { reserved: R } {
  const phys = GuestPhysMem.create({ memBytes: opts.memBytes });
  const reserved = (reserve ? reserve(phys) : undefined) as R;
  const arenaBytes = opts.decryptedArenaBytes ?? Math.min(MAX_ARENA_BYTES, Math.floor(opts.memBytes / PAGE_SIZE) * PAGE_SIZE);
  const arena = DecryptedArena.create(arenaBytes, 'COCO_DECRYPTED_ARENA / --decrypted-arena');
  const coherentPoolBytes = parseCoherentPoolCmdline(opts.cmdline);
  const { pool: atomicPool, bootLines } = AtomicPool.create({
    phys, arena, decryptLatencyNsPerMiB: opts.decryptLatencyNsPerMiB, ...(coherentPoolBytes !== undefined ? { coherentPoolBytes } : {}),
  });
  const notes = opts.buddyinfo !== undefined
    ? applyStartingState(phys, { kind: 'buddyinfo', lines: opts.buddyinfo.lines, source: opts.buddyinfo.source })
    : applyStartingState(phys, { kind: 'level', level: opts.fragmentation });
  return {
    phys, arena, atomicPool, reserved, bootLines, notes, startFree: phys.freeBlocks(), decryptLatencyNsPerMiB: opts.decryptLatencyNsPerMiB,
    shared: { phys: phys.shared, arena: arena.shared, atomicPool: atomicPool.shared },
  };
}

/** How long the work thread parks before looking at its stop word again. */
const WORK_PARK_MS = 100;
/** How long teardown waits for the work thread to exit before terminating it. */
const WORK_EXIT_MS = 2000;

/** --churn: page-cache churn at this many pages per second, holding at most holdBytes. */
export interface ChurnOptions {
  ratePagesPerSec: number;
  holdBytes: number;
  seed: number;
  /** [proposal] --policy cma: the CMA area the page cache may borrow from (cma.ts). */
  cma?: CmaShared;
}

export interface GuestMemoryThreads {
  /** Stop the threads (they exit; one that does not within WORK_EXIT_MS is terminated). */
  stop(): Promise<{ atomicPool: AtomicPoolStats; churn: ChurnStats | null }>;
  /** The first error a thread died with, if any. */
  readonly failed: Promise<Error>;
}

/** Start the atomic pool's work thread (a kworker; `log` is its log channel) and the churn thread if asked. */
export function startGuestMemoryThreads(boot: GuestMemoryBoot, log: LogChannel | null, churn?: ChurnOptions): GuestMemoryThreads {
  const cfg: AtomicPoolWorkerConfig = {
    phys: boot.shared.phys, arena: boot.shared.arena, pool: boot.shared.atomicPool,
    decryptLatencyNsPerMiB: boot.decryptLatencyNsPerMiB, parkMs: WORK_PARK_MS, log,
  };
  let reportFailure: (e: Error) => void = () => {};
  const failed = new Promise<Error>((resolve) => { reportFailure = resolve; });
  const start = (name: string, workerData: unknown) => {
    const w = new Worker(workerFile(name), { workerData });
    const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    w.once('error', (e) => reportFailure(e instanceof Error ? e : new Error(String(e))));
    return async () => {
      const done = await Promise.race([exited.then(() => true), sleep(WORK_EXIT_MS, false, { ref: false })]);
      if (!done) await w.terminate();
    };
  };
  const workerGone = start('atomic-pool', cfg);
  let churnControl: SharedArrayBuffer | null = null;
  let churnGone: () => Promise<void> = async () => {};
  const holdPages = churn ? Math.max(1, Math.floor(churn.holdBytes / PAGE_SIZE)) : 0;
  if (churn) {
    churnControl = new SharedArrayBuffer(CHURN_CONTROL_INTS * 4);
    const ccfg: ChurnConfig = {
      phys: boot.shared.phys, control: churnControl, ratePagesPerSec: churn.ratePagesPerSec, holdPages, seed: churn.seed,
      ...(churn.cma !== undefined ? { cma: churn.cma } : {}),
    };
    churnGone = start('churn', ccfg);
  }
  return {
    failed,
    async stop() {
      stopAtomicPoolWorker(boot.atomicPool);
      if (churnControl !== null) {
        const c = new Int32Array(churnControl);
        Atomics.store(c, CHURN_STOP, 1);
        Atomics.notify(c, CHURN_STOP);
      }
      await Promise.all([workerGone(), churnGone()]);
      return {
        atomicPool: boot.atomicPool.stats(),
        churn: churnControl !== null && churn ? churnStats(churnControl, churn.ratePagesPerSec, holdPages) : null,
      };
    },
  };
}
