// `npm run bench:memory [-- --burst N --pause DUR --decrypt-latency DUR]`: the page allocator's cost per call and under
// threads, and the atomic pools under a burst (src/memory/bench.ts). Not part of `npm test`.
import { parseFlags } from '../src/cli/flags.js';
import { runMain } from '../src/cli/main.js';
import { runMemoryBench } from '../src/memory/bench.js';
import { formatBytes, parseDuration, parseIntInRange } from '../src/util/units.js';

runMain(async () => {
  const flags = parseFlags(process.argv.slice(2), [
    { name: 'burst', kind: 'string', help: '256 KiB atomic-pool allocations in the burst, 1..100000 (default 64)' },
    { name: 'pause', kind: 'string', help: 'pause between the burst\'s allocations, e.g. 1ms (default 0)' },
    { name: 'decrypt-latency', kind: 'string', help: 'set_memory_decrypted cost per MiB for the expansions, e.g. 2ms (default 0)' },
  ], 'bench:memory');
  const r = await runMemoryBench({
    burstRequests: parseIntInRange(flags.get('burst') ?? '64', '--burst', 1, 100_000),
    pauseMs: parseDuration(flags.get('pause') ?? '0', '--pause', 1),
    decryptLatencyNsPerMiB: parseDuration(flags.get('decrypt-latency') ?? '0', '--decrypt-latency', 1e-6) * 1e6,
  });
  const b = r.burst;
  const lines = [
    'page allocator (16 GiB guest, one thread, below 4 GiB): ns per call',
    ...r.alloc_free_ns.map((x) => `  order ${String(x.order).padStart(2)}: alloc_pages ${x.alloc_ns.toFixed(0).padStart(5)} ns, __free_pages ${x.free_ns.toFixed(0).padStart(5)} ns`),
    'page allocator under threads (256 MiB guest, seeded alloc/free mix of orders 0..10, per-page ownership checks on):',
    ...r.threads.map((x) => `  ${x.threads} thread${x.threads > 1 ? 's' : ' '}: ${x.ops_per_s.toLocaleString('en-US')} operations/s`),
    `atomic pools under a burst (${formatBytes(b.mem_bytes)} guest, atomic_pool_size ${formatBytes(b.atomic_pool_size)}, three pools of ${formatBytes(b.size_start / 3)} at boot; ${b.requests} x ${formatBytes(b.request_bytes)}, ${b.pause_ms} ms apart, none freed, decryption ${b.decrypt_ns_per_mib / 1e6} ms/MiB):`,
    `  served ${b.served}, exhausted ${b.exhausted}${b.first_exhaustion_at >= 0 ? ` (first at request ${b.first_exhaustion_at + 1})` : ''}; ${b.expansions} expansions, pools ${formatBytes(b.size_start)} -> ${formatBytes(b.size_end)}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n${JSON.stringify(r)}\n`);
  return 0;
});
