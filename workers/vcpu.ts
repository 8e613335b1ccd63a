// Thread entry point for piscina: one long task per vCPU (src/vm/vcpu.ts).
import { type VcpuResult, type VcpuTask, runVcpu } from '../src/vm/vcpu.js';

export default function vcpu(task: VcpuTask): Promise<VcpuResult> {
  return runVcpu(task);
}
