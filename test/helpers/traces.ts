// Hand-written kernel DMA traces for the replay and size tests, in the tracefs line shape of
// include/trace/events/dma.h's TP_printk formats.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const TRACE_HEADER = ['# tracer: nop', '#', '# entries-in-buffer/entries-written: 0/0   #P:2', '#', '#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION', '#              | |         |   |||||     |         |'];

export const traceLine = (cpu: number, t: number, event: string, fields: string): string =>
  `           fio-4021    [${String(cpu).padStart(3, '0')}] ..... ${t.toFixed(6)}: ${event}: ${fields}`;

export function writeTrace(dir: string, name: string, lines: string[]): string {
  const f = join(dir, name);
  writeFileSync(f, [...TRACE_HEADER, ...lines].join('\n') + '\n');
  return f;
}

/**
 * 40 maps of 3000 bytes (nr_slots(3000) = 2) and 48 of 2048 bytes (1 slot) on virtio0
 * (min_align_mask 0: no offset), all live together on CPU 0, then all unmapped: a peak of exactly
 * 40 * 2 + 48 = 128 slots. `extra` adds that many more 1-slot maps at the peak.
 */
export function peakTrace(dir: string, name: string, extra: number): string {
  const lines: string[] = [];
  let t = 10;
  const live: [string, number][] = [];
  const map = (size: number, i: number) => {
    const dma = (0x10000000 + i * 0x1000).toString(16);
    lines.push(traceLine(0, (t += 0.0001), 'dma_map_phys', `virtio0 dir=TO_DEVICE dma_addr=${dma} size=${size} phys_addr=${(0x200000000 + i * 0x1000).toString(16)} attrs=`));
    live.push([dma, size]);
  };
  for (let i = 0; i < 40; i++) map(3000, i);
  for (let i = 0; i < 48 + extra; i++) map(2048, 40 + i);
  for (const [dma, size] of live) lines.push(traceLine(0, (t += 0.0001), 'dma_unmap_phys', `virtio0 dir=TO_DEVICE dma_addr=${dma} size=${size} attrs=`));
  return writeTrace(dir, name, lines);
}
