// The allocator's policy under pressure (--policy): one entry per policy, with where it comes from.
// A policy is chosen once at boot; the core calls its module at the kernel's own points (the search,
// a failed search, an allocation, a failed allocation, the release), so the map path tests one field.
// Adding a policy is one entry here plus its module under src/swiotlb/.
//
//   policy    status                    source                                             core module
//   static    mainline                  kernel/dma/swiotlb.c without CONFIG_SWIOTLB_DYNAMIC (none: the kernel's search alone)
//   throttle  RFC                       Michael Kelley, "[RFC 0/7] Introduce swiotlb        src/swiotlb/throttle.ts
//                                       throttling", Aug 2024 (CONFIG_SWIOTLB_THROTTLE)
//   dynamic   mainline                  CONFIG_SWIOTLB_DYNAMIC (Petr Tesarik, v6.6)         src/swiotlb/dynamic.ts (--swiotlb-dynamic on)
//   hybrid    seed-thread proposal      Robin Murphy, reply to the throttling RFC (seed 000) not in this build yet
//   cma       seed-thread proposal      Alexander Graf (seed 002)                           not in this build yet
//
// A policy that this build cannot run is refused with a one-line error that says what it needs; it is
// never approximated by another one.
import { InputError } from '../errors.js';

export const POLICY_NAMES = ['static', 'throttle', 'dynamic', 'hybrid', 'cma'] as const;
export type PolicyName = (typeof POLICY_NAMES)[number];

export interface PolicySpec {
  name: PolicyName;
  /** mainline, an RFC posted to the list, or a proposal made in one of the seed threads. */
  status: 'mainline' | 'RFC' | 'proposal';
  /** Who proposed it and where (or the kernel config it is). */
  source: string;
  /** One line: what the allocator does under pressure. */
  summary: string;
  /** Why this build cannot run it; undefined when it can. */
  unavailable?: string;
}

export const POLICIES: Readonly<Record<PolicyName, PolicySpec>> = {
  static: {
    name: 'static', status: 'mainline', source: 'kernel/dma/swiotlb.c without CONFIG_SWIOTLB_DYNAMIC',
    summary: 'one fixed pool sized at boot; a map that finds no free slots fails ("swiotlb buffer is full")',
  },
  throttle: {
    name: 'throttle', status: 'RFC', source: 'Michael Kelley, "[RFC 0/7] Introduce swiotlb throttling" (Aug 2024), CONFIG_SWIOTLB_THROTTLE',
    summary: 'a fixed pool; DMA_ATTR_MAY_BLOCK maps above high_throttle wait on throttle_sem instead of failing',
  },
  dynamic: {
    name: 'dynamic', status: 'mainline', source: 'CONFIG_SWIOTLB_DYNAMIC (Petr Tesarik, merged for v6.6)',
    summary: 'a failed search schedules a new pool and builds a transient pool for the request',
  },
  hybrid: {
    name: 'hybrid', status: 'proposal', source: 'Robin Murphy, reply to the throttling RFC (seed thread 000)',
    summary: 'MAY_BLOCK maps above the threshold wait up to a timeout, then grow the pool synchronously; others as dynamic',
    unavailable: 'the hybrid policy (a synchronous grow after a timed wait) is not in this build yet',
  },
  cma: {
    name: 'cma', status: 'proposal', source: 'Alexander Graf (seed thread 002)',
    summary: 'growth into a region reserved at boot that stays usable by movable allocations',
    unavailable: 'the cma policy (growth into a region reserved at boot) is not in this build yet',
  },
};

const POLICY_FORM = `one of ${POLICY_NAMES.join(', ')}`;

/** A policy name as given by a user; `what` names the flag or variable. */
export function parsePolicy(text: string, what: string): PolicyName {
  const t = text.trim().toLowerCase();
  if (!(POLICY_NAMES as readonly string[]).includes(t)) throw new InputError('EBADFLAG', `${what}: "${text}" is not valid; expected ${POLICY_FORM}`);
  return t as PolicyName;
}

/** The policies this build can run, in POLICY_NAMES order. */
export function availablePolicies(): PolicyName[] {
  return POLICY_NAMES.filter((n) => POLICIES[n].unavailable === undefined);
}

/** Refuse a policy this build cannot run, saying what it needs. */
export function checkPolicyAvailable(name: PolicyName, what: string): void {
  const why = POLICIES[name].unavailable;
  if (why !== undefined) {
    throw new InputError('EBADFLAG', `${what}: policy "${name}" cannot run: ${why}; expected one of ${availablePolicies().join(', ')}`);
  }
}

/** Where a value came from, for resolving --policy against --throttle: a flag beats the environment beats .env.example. */
export type Origin = 'flag' | 'environment' | 'default';

/**
 * --policy and the older --throttle on|off name the same choice. A value given closer to the user wins
 * (a flag over the environment over .env.example); two values of the same standing that disagree
 * (--throttle on --policy static) are an error. `--throttle on` alone means --policy throttle.
 */
export function resolvePolicy(
  policy: { value: string; origin: Origin; what: string },
  throttle: { value: boolean; origin: Origin; what: string },
): PolicyName {
  const p = parsePolicy(policy.value, policy.what);
  const rank = { flag: 2, environment: 1, default: 0 } as const;
  const fromThrottle: PolicyName | undefined = throttle.value ? 'throttle' : p === 'throttle' ? 'static' : undefined;
  let out = p;
  if (fromThrottle !== undefined && fromThrottle !== p) {
    if (rank[throttle.origin] > rank[policy.origin]) out = fromThrottle;
    else if (rank[throttle.origin] === rank[policy.origin]) {
      throw new InputError('EBADFLAG', `${throttle.what} ${throttle.value ? 'on' : 'off'} and ${policy.what} ${p} disagree; give one of them (--throttle on means --policy throttle)`);
    }
  }
  checkPolicyAvailable(out, policy.origin === 'flag' || out === p ? policy.what : throttle.what);
  return out;
}
