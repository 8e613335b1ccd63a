// The growth worker: the kworker that runs mem->dyn_alloc (swiotlb_dyn_alloc) on its own thread, and
// the RCU callbacks that give transient pools' memory back after their grace period. It parks on the
// work item's doorbell (DYN_WORK_SEQ) with a timeout, so it costs nothing while idle, wakes when a
// failed search queues the work, and exits when the teardown word is set.
import type { LogChannel } from '../log/logger.js';
import { Ratelimit } from '../log/ratelimit.js';
import { attachWorkerLogger } from '../log/worker-logger.js';
import { DecryptedArena, type DecryptedArenaShared, setMemoryDecrypted } from '../memory/arena.js';
import { GuestPhysMem, type GuestPhysShared } from '../memory/phys.js';
import { CmaArea, type CmaShared } from '../memory/cma.js';
import { nowMs } from '../util/clock.js';
import { AtomicPool, type AtomicPoolShared } from '../memory/atomic-pool.js';
import { IoTlbMem, type IoTlbMemShared } from './mem.js';

export interface GrowthWorkerTask {
  mem: IoTlbMemShared;
  phys: GuestPhysShared;
  arena: DecryptedArenaShared;
  /** set_memory_decrypted's modelled cost (memory/arena.ts). */
  decryptLatencyNsPerMiB: number;
  /** Longest park between reclaim passes of retired transient pools. */
  parkMs: number;
  log?: LogChannel;
  /** The atomic pool (memory/atomic-pool.ts): transient pools' memory goes back there after the grace period. */
  atomicPool: AtomicPoolShared;
  /** [proposal] --policy cma: pools grow into this CMA area only (memory/cma.ts), never from the buddy allocator. */
  cma?: CmaShared;
}

export interface GrowthWorkerResult {
  runs: number;
  pools: number;
}

/** Run until the allocator's teardown word is set. */
export async function runGrowthWorker(task: GrowthWorkerTask): Promise<GrowthWorkerResult> {
  const log = await attachWorkerLogger(task.log, { device: 'swiotlb' });
  const phys = GuestPhysMem.attach(task.phys);
  const arena = DecryptedArena.attach(task.arena);
  const atomicPool = AtomicPool.attach(task.atomicPool, phys, arena);
  const mem = IoTlbMem.attach(task.mem, {
    memory: { phys: task.cma !== undefined ? CmaArea.attach(task.cma, phys) : phys, arena, atomicPool, setMemoryDecrypted: (addr, bytes) => setMemoryDecrypted(addr, bytes, task.decryptLatencyNsPerMiB) },
    events: (e) => {
      if (e.event === 'transient_freed') log.emit('transient_freed', { device: e.device, vcpu: e.vcpu, start: e.start, nslabs: e.nslabs });
    },
  });
  const dyn = mem.dyn!;
  const failLimit = new Ratelimit(); // pr_warn_ratelimited: 10 per 5 s
  let runs = 0;
  let pools = 0;
  while (!dyn.stopRequested()) {
    if (dyn.takeWork()) {
      runs++;
      const r = dyn.dynAlloc();
      if (r.ok) {
        pools++;
        log.emit('pool_created', { pool: r.pool, start: r.start, nslabs: r.nslabs, nareas: r.nareas, kind: 'dynamic', took_ms: Math.round(r.tookMs * 1000) / 1000 });
      } else if (failLimit.check(nowMs()) >= 0) {
        // [proposal] A refusal of --grow-limit is the emulator's, not the kernel's "Failed to allocate new pool".
        if (r.limited !== undefined) log.emit('swiotlb_warn', { text: r.reason });
        else log.emit('growth_failed', { reason: r.reason });
      }
      continue;
    }
    dyn.reclaim();
    dyn.parkWorker(task.parkMs);
  }
  dyn.reclaim();
  await log.flush();
  log.close();
  return { runs, pools };
}
