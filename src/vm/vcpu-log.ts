// A vCPU thread's log records: the core's warnings in the catalogue's shape and the drivers' errors,
// each ratelimited per event as the kernel's dev_warn_ratelimited() and blk_print_req_error() are.
// The report's counts stay exact; the log says how many records the ratelimit suppressed.
import type { IoErrorFields, MapFailureFields, PacketDroppedFields } from '../log/events.js';
import { Ratelimit } from '../log/ratelimit.js';
import type { WorkerLogger } from '../log/worker-logger.js';
import type { SwiotlbEvent } from '../swiotlb/mem.js';

/**
 * The vCPU's log records: the core's warnings in the catalogue's shape, and the drivers' errors,
 * each ratelimited per event as the kernel's dev_warn_ratelimited() and blk_print_req_error() are
 * (counts in the report stay exact; the log says how many it suppressed).
 */
export class VcpuLog {
  logged = 0;
  suppressed = 0;
  private readonly limits = { map_failure: new Ratelimit(), io_error: new Ratelimit(), packet_dropped: new Ratelimit(), growth_failed: new Ratelimit() };

  constructor(private readonly log: WorkerLogger) {}

  swiotlb(e: SwiotlbEvent, now: number): void {
    switch (e.event) {
      case 'map_failure': {
        const suppressed = this.allow('map_failure', now);
        if (suppressed < 0) return;
        const { device, vcpu, size, total, used, cause } = e;
        this.log.emit('map_failure', { device, vcpu, size, total, used, dir: e.dir as MapFailureFields['dir'], cause, ...(suppressed > 0 ? { suppressed } : {}) });
        break;
      }
      case 'double_unmap':
        this.log.emit('double_unmap', { device: e.device, vcpu: e.vcpu, tlb_addr: e.tlb_addr });
        break;
      case 'bounce_overflow':
        this.log.emit('bounce_overflow', { device: e.device, vcpu: e.vcpu, alloc_size: e.alloc_size, mapping_size: e.mapping_size });
        break;
      case 'throttle_begin': {
        const { msg: _m, event: _e, ...f } = e;
        this.log.emit('throttle_begin', f);
        break;
      }
      case 'throttle_end': {
        const { msg: _m, event: _e, ...f } = e;
        this.log.emit('throttle_end', f);
        break;
      }
      case 'throttle_deadlock':
        // §15.9: this vCPU waits on a semaphore held by one of its own live mappings. In the VM that
        // resolves when the mapping's request completes (interrupts are taken while waiting); it is a
        // real self-deadlock only when that mapping was never submitted (data then metadata), which
        // the VM's watchdog reports as a stall. Counted in the report, not logged per occurrence.
        return;
      case 'transient_created':
      case 'transient_freed':
        this.log.emit(e.event, { device: e.device, vcpu: e.vcpu, start: e.start, nslabs: e.nslabs });
        break;
      case 'pool_created': // [proposal] hybrid: a pool grown by this vCPU after its wait timed out
        this.log.emit('pool_created', { pool: e.pool, start: e.start, nslabs: e.nslabs, nareas: e.nareas, kind: 'dynamic', device: e.device });
        break;
      case 'growth_failed': // pr_warn_ratelimited, as the growth worker's
        if (this.allow('growth_failed', now) < 0) return;
        this.log.emit('growth_failed', { reason: e.reason });
        break;
      case 'swiotlb_warn':
        this.log.emit('swiotlb_warn', { text: e.msg, vcpu: e.vcpu, ...(e.device !== undefined ? { device: e.device } : {}) });
        break;
    }
    this.logged++;
  }

  ioError(f: IoErrorFields, now: number): void {
    if (this.allow('io_error', now) < 0) return;
    this.log.emit('io_error', f);
    this.logged++;
  }

  packetDropped(f: PacketDroppedFields, now: number): void {
    if (this.allow('packet_dropped', now) < 0) return;
    this.log.emit('packet_dropped', f);
    this.logged++;
  }

  /** -1 when suppressed, else how many were suppressed before this one. */
  private allow(kind: keyof VcpuLog['limits'], now: number): number {
    const n = this.limits[kind].check(now);
    if (n < 0) this.suppressed++;
    return n;
  }
}
