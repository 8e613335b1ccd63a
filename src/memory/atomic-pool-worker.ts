// The atomic pool's work thread, the body of workers/atomic-pool.ts: attach guest memory, the arena
// and the pool from their shared buffers, run atomicPoolWorkLoop until AP_STOP, log each chunk added.
import { attachWorkerLogger } from '../log/worker-logger.js';
import type { LogChannel } from '../log/logger.js';
import { type DecryptedArenaShared, DecryptedArena } from './arena.js';
import { ATOMIC_POOL_GFP, AtomicPool, type AtomicPoolShared, type AtomicPoolStats, atomicPoolWorkLoop } from './atomic-pool.js';
import { GuestPhysMem, type GuestPhysShared } from './phys.js';

export interface AtomicPoolWorkerConfig {
  phys: GuestPhysShared;
  arena: DecryptedArenaShared;
  pool: AtomicPoolShared;
  decryptLatencyNsPerMiB: number;
  /** Longest park on the work word before looking at the stop word again. */
  parkMs: number;
  log?: LogChannel | null;
}

export async function runAtomicPoolWorker(cfg: AtomicPoolWorkerConfig): Promise<AtomicPoolStats> {
  const phys = GuestPhysMem.attach(cfg.phys);
  const arena = DecryptedArena.attach(cfg.arena);
  const pool = AtomicPool.attach(cfg.pool, phys, arena);
  const log = await attachWorkerLogger(cfg.log ?? null, { device: 'kworker/atomic_pool' });
  try {
    atomicPoolWorkLoop(pool, cfg.decryptLatencyNsPerMiB, cfg.parkMs, (c) => {
      log.emit('atomic_pool_expanded', { pool: ATOMIC_POOL_GFP[c.pool]!, bytes: c.bytes, phys: c.phys, size: c.size });
    });
  } finally {
    await log.flush(1000);
    log.close();
  }
  return pool.stats();
}
