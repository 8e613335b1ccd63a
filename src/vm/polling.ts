// Polled completion (Robin Murphy's objection to the throttling RFC, seed 000: "if a thread is blocked
// from polling for completion and releasing a bunch of mappings of already-finished descriptors
// because it's stuck on an unfair lock trying to get one last one submitted, then throttling has
// actively harmed the situation").
//
// What Linux does, and what the emulator models of it:
// - A storage job asks for polled completions with fio's hipri (io_uring, io_uring_cmd and sg poll;
//   pvsync2 sets RWF_HIPRI). The NVMe driver serves such I/O on its poll queues, which it creates only
//   when loaded with nvme.poll_queues=N (default 0). A poll queue has no interrupt vector: the device
//   posts the completion queue entry and nothing else happens until the submitting task polls
//   (io_uring's iopoll, blk_mq_poll -> nvme_poll), which runs the completion handler and with it the
//   DMA unmap (nvme_pci_complete_rq -> nvme_unmap_data -> swiotlb release) in that task's context.
// - Without poll queues the block layer clears REQ_POLLED and the I/O completes by interrupt, as any
//   other: hipri then changes nothing here, and the report says so.
// - Interrupt-driven completions (the default) are reaped whatever the submitting thread is doing:
//   the emulator's vCPU takes them in its loop and, while a MAY_BLOCK map sleeps on throttle_sem, in
//   the throttle wait (ThrottleState.whileWaiting: the task sleeps, its CPU takes interrupts).
// - A polled queue's completions are reaped only by the vCPU's own poll loop (its main loop and its
//   idle wait). A vCPU parked in the throttle wait does not poll, so the unmaps that would free slots
//   and release throttle_sem are not done; when every vCPU that could free them is parked, the run
//   stalls, and the throttle watchdog (or the stall watchdog) ends it naming these queues.
//
// Departures, and why:
// - Each vCPU gets its own poll queue whatever N is (N >= 1 turns polling on). With fewer poll queues
//   than CPUs Linux shares one between CPUs, and a task polling it reaps its neighbours' completions
//   too; the emulator does not model that sharing (it can only make a stall less likely).
// - The device still bumps the poll queue's CQ_IRQ word and wakes the vCPU if it idles on it: that
//   stands in for a poll loop spinning on the completion queue (the host has 2 cores; spinning vCPUs
//   would starve the device threads). Nothing runs because of it: the only thread that reads it is the
//   submitting vCPU, in its idle wait, never in the throttle wait.
import { InputError } from '../errors.js';
import { QP_CQ_HEAD, QP_CQ_TAIL, type QueuePair } from '../devices/queue.js';
import { quote } from '../util/quote.js';

/** The largest nvme.poll_queues accepted: the emulator's vCPU limit (one poll queue each at most). */
export const MAX_POLL_QUEUES = 256;
const POLL_QUEUES_FORM = `nvme.poll_queues=<N> with a whole number from 0 to ${MAX_POLL_QUEUES}`;

/**
 * nvme.poll_queues= from the kernel command line (drivers/nvme/host/pci.c module parameter "Number of
 * queues to use for polled IO", default 0). The last one wins, as with any parameter. Anything but a
 * whole number in range is an InputError.
 */
export function parseNvmePollQueues(cmdline: string): number {
  let out = 0;
  for (const word of cmdline.trim().split(/\s+/)) {
    if (!word.startsWith('nvme.poll_queues=')) continue;
    const v = word.slice('nvme.poll_queues='.length);
    if (!/^\d+$/.test(v) || Number(v) > MAX_POLL_QUEUES) {
      throw new InputError('EBADCMDLINE', `--cmdline: ${quote(word)} is not valid; expected ${POLL_QUEUES_FORM}`);
    }
    out = Number(v);
  }
  return out;
}

/** Whether a storage job's completions are polled: it asked (hipri) and the driver has poll queues. */
export function isPolled(job: { engine: 'storage' | 'net'; hipri: boolean }, pollQueues: number): boolean {
  return job.engine === 'storage' && job.hipri && pollQueues > 0;
}

/** One vCPU's poll queue as a watchdog sees it: completions the device posted that nobody reaped. */
export interface PolledQueueState {
  vcpu: number;
  device: string;
  /** Completion entries posted by the device and not yet reaped by the vCPU's poll loop. */
  posted_unreaped: number;
  /** The vCPU is parked in the throttle wait (it cannot poll). */
  parked_in_throttle_wait: boolean;
}

/**
 * The poll queues (one per vCPU, null where a vCPU has none) with the completions waiting on each,
 * given the vCPUs parked on throttle_sem. Reads the queues' head and tail words only.
 */
export function polledQueueStates(queues: readonly (QueuePair | null)[], parkedVcpus: ReadonlySet<number>): PolledQueueState[] {
  const out: PolledQueueState[] = [];
  queues.forEach((qp, vcpu) => {
    if (qp === null) return;
    const posted = (Atomics.load(qp.header, QP_CQ_TAIL) - Atomics.load(qp.header, QP_CQ_HEAD)) | 0;
    out.push({ vcpu, device: 'nvme0', posted_unreaped: posted, parked_in_throttle_wait: parkedVcpus.has(vcpu) });
  });
  return out;
}

/** The stall report's phrase for the poll queues, or '' when there are none. */
export function polledQueuesText(states: readonly PolledQueueState[]): string {
  if (states.length === 0) return '';
  const parts = states.map((s) => `vcpu${s.vcpu} ${s.device} poll queue: ${s.posted_unreaped} completions posted, not reaped${s.parked_in_throttle_wait ? ' (vcpu parked in the throttle wait: it cannot poll)' : ''}`);
  return `; polled queues (no interrupt: only the submitting vCPU's poll loop reaps them): ${parts.join(', ')}`;
}

/**
 * The poll queues a stall message names (polledQueuesText's phrase read back), for a caller that has
 * only the one-line reason of a stalled run (a sweep's record). [] when it names none.
 */
export function parsePolledQueuesText(text: string): PolledQueueState[] {
  const out: PolledQueueState[] = [];
  for (const m of text.matchAll(/vcpu(\d+) (\S+) poll queue: (\d+) completions posted, not reaped( \(vcpu parked in the throttle wait)?/g)) {
    out.push({ vcpu: Number(m[1]), device: m[2]!, posted_unreaped: Number(m[3]), parked_in_throttle_wait: m[4] !== undefined });
  }
  return out;
}

/** A job's completion mode in the report. */
export type PollingJobReport = {
  name: string;
  /** hipri was set in the job file. */
  hipri: boolean;
  /** Its completions were polled (hipri and nvme.poll_queues >= 1). */
  polled: boolean;
  /** Times its clones' poll loops looked at their poll queue with I/O of theirs in flight. */
  polls: number;
  /** Completions reaped by polling. */
  reaped_by_polling: number;
  /** Interrupt-driven completions taken while the submitting vCPU slept in the throttle wait. */
  reaped_in_throttle_wait: number;
};

export type PollingReport = {
  /** nvme.poll_queues from the command line. */
  nvme_poll_queues: number;
  /** The storage jobs, each with how its completions were reaped. */
  jobs: PollingJobReport[];
  /** Why a hipri job was not polled, when one was not. */
  note?: string;
};

export const HIPRI_WITHOUT_POLL_QUEUES = 'hipri asked for polled completions, but nvme0 has no poll queues (nvme.poll_queues=0, the default): the block layer clears REQ_POLLED and the I/O completes by interrupt; add nvme.poll_queues=N to --cmdline to poll';

/** The report's lines for completion modes: nothing unless some job asked for hipri. */
export function formatPolling(p: PollingReport): string[] {
  if (!p.jobs.some((j) => j.hipri)) return [];
  const lines = [`  completions: nvme.poll_queues=${p.nvme_poll_queues}`];
  for (const j of p.jobs) {
    lines.push(j.polled
      ? `    ${j.name}: polled (hipri), ${j.polls} polls, ${j.reaped_by_polling} completions reaped by polling`
      : `    ${j.name}: interrupt-driven${j.hipri ? ' (hipri without poll queues)' : ''}, ${j.reaped_in_throttle_wait} completions taken during throttle waits`);
  }
  if (p.note !== undefined) lines.push(`    note: ${p.note}`);
  return lines;
}
