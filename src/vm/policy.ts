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
//   hybrid    seed-thread proposal      Robin Murphy, reply to the throttling RFC (seed 000) src/swiotlb/hybrid.ts (+ throttle.ts, dynamic.ts)
//   cma       seed-thread proposal      Alexander Graf (seed 002)                           src/memory/cma.ts (+ dynamic.ts)
//
// A policy that this build cannot run is refused with a one-line error that says what it needs; it is
// never approximated by another one.
import { InputError } from '../errors.js';
import { type Setting, parseOnOff } from '../cli/flags.js';

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
    name: 'hybrid', status: 'proposal', source: 'Robin Murphy, reply to "[RFC 0/7] Introduce swiotlb throttling" (Aug 2024, seed thread 000): "blockable calls can opportunistically wait for free space up to a well-defined timeout, but then also fall back to synchronously allocating a new pool"',
    summary: 'MAY_BLOCK maps above the threshold wait up to --hybrid-timeout, then grow the pool synchronously; others as dynamic',
  },
  cma: {
    name: 'cma', status: 'proposal', source: 'Alexander Graf, reply in "[RFC V1 1/5] swiotlb: Support allocating DMA memory from SWIOTLB" (Feb 2024, seed thread 002): "allocate a max bound at boot using CMA and then only fill into the CMA area when SWIOTLB size requirements increase"',
    summary: 'dynamic swiotlb whose pools grow only into a CMA area reserved at boot (--cma), which movable allocations borrow until a pool needs it',
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

/** The policies that are dynamic swiotlb underneath (CONFIG_SWIOTLB_DYNAMIC: growth, transient pools). */
export const GROWING_POLICIES: ReadonlySet<PolicyName> = new Set(['dynamic', 'hybrid', 'cma']);

/**
 * --policy and the two older switches name the same choice: `--throttle on` means --policy throttle,
 * `--swiotlb-dynamic on` means --policy dynamic (hybrid and cma are dynamic swiotlb too, so it agrees
 * with them), and each switch's off agrees with any policy it does not name. The one precedence of
 * every setting decides (ParsedFlags.setting's rank: flag, environment, ./.env, .env.example): a
 * switch that disagrees with the policy wins when it was given closer to the user, loses when it was
 * given further away, and is an error at the same standing (--throttle on --policy static, or
 * --policy throttle --swiotlb-dynamic on, which once enabled both silently).
 */
export function resolvePolicy(policy: Setting, throttle: Setting, dynamic: Setting): PolicyName {
  let cur = { name: parsePolicy(policy.value, policy.what), rank: policy.rank, text: '' };
  cur.text = `${policy.what} ${cur.name}`;
  const switches = [
    { s: throttle, on: parseOnOff(throttle.value, throttle.what), names: 'throttle' as PolicyName, fits: (p: PolicyName) => p === 'throttle' },
    { s: dynamic, on: parseOnOff(dynamic.value, dynamic.what), names: 'dynamic' as PolicyName, fits: (p: PolicyName) => GROWING_POLICIES.has(p) },
  ];
  for (const w of switches) {
    if (w.fits(cur.name) === w.on) continue;
    const text = `${w.s.what} ${w.on ? 'on' : 'off'}`;
    if (w.s.rank > cur.rank) cur = { name: w.on ? w.names : 'static', rank: w.s.rank, text };
    else if (w.s.rank === cur.rank) {
      throw new InputError('EBADFLAG', `${text} and ${cur.text} disagree; give one of them (--throttle on means --policy throttle, --swiotlb-dynamic on means --policy dynamic)`);
    }
  }
  checkPolicyAvailable(cur.name, policy.what);
  return cur.name;
}
