// The watchdog's verdict when every unfinished thread has sat in the same park (trial.ts,
// allParkedHeadline), on the thread states a trial records. A lost-wakeup bug with throttling on was
// named "throttle_sem self-deadlock" in 5 of 37 failing trials while the semaphore's holder was parked
// on an area lock: that holder waits for an unlock, not for its own unmap.
import { describe, expect, it } from 'vitest';
import { THROTTLE_HOLDER_MAPPING, THROTTLE_HOLDER_REQUEST } from '../../src/swiotlb/layout.js';
import { allParkedHeadline } from '../../src/stress/trial.js';

const NAREAS = 1;
const noShadowHolder = () => 0;

describe('every unfinished thread parked: the headline', () => {
  it('the semaphore\'s holder parked on an area lock while the others wait for throttle_sem is a lost wakeup, not a self-deadlock', () => {
    const h = allParkedHeadline(
      [{ cpu: 0, lock: 0, semWait: false }, { cpu: 1, lock: -1, semWait: true }, { cpu: 2, lock: -1, semWait: true }],
      noShadowHolder, { cpu: 0, kind: THROTTLE_HOLDER_MAPPING }, NAREAS, 2000,
    );
    expect(h).toBe('lost wakeup: every unfinished thread (cpu 0 on area 0\'s lock, cpu 1 for throttle_sem, cpu 2 for throttle_sem) has been parked for 2000 ms, and no thread is left to wake it');
  });

  it('a holder that waits for throttle_sem itself while its live throttled mapping holds it is the self-deadlock (§15.9)', () => {
    const h = allParkedHeadline(
      [{ cpu: 0, lock: -1, semWait: true }, { cpu: 1, lock: -1, semWait: true }],
      noShadowHolder, { cpu: 0, kind: THROTTLE_HOLDER_MAPPING }, NAREAS, 2000,
    );
    expect(h).toBe('throttle_sem self-deadlock (§15.9): every unfinished thread (cpu 0 for throttle_sem, cpu 1 for throttle_sem) waits, and the holder, cpu 0, waits for throttle_sem itself while its live throttled mapping holds it');
  });

  it('a holder that is a request (no mapping yet), or no holder at all, is not the self-deadlock', () => {
    const parked = [{ cpu: 0, lock: -1, semWait: true }, { cpu: 1, lock: -1, semWait: true }];
    expect(allParkedHeadline(parked, noShadowHolder, { cpu: 0, kind: THROTTLE_HOLDER_REQUEST }, NAREAS, 2500)).toMatch(/^lost wakeup: /);
    expect(allParkedHeadline(parked, noShadowHolder, null, NAREAS, 2500)).toMatch(/^lost wakeup: .* parked for 2500 ms/);
  });

  it('a lock whose holder in the lock shadow has finished: it died holding the lock', () => {
    const h = allParkedHeadline(
      [{ cpu: 1, lock: 0, semWait: false }, { cpu: 2, lock: 0, semWait: false }],
      (k) => (k === 0 ? 3 + 1 : 0), null, NAREAS, 2000,
    );
    expect(h).toBe('cpu 3 ended while holding area 0\'s lock: every unfinished thread (cpu 1 on area 0\'s lock, cpu 2 on area 0\'s lock) waits for it');
  });
});
