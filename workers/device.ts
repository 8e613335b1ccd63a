// Thread entry point: one emulated device (src/devices/device.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { type DeviceConfig, runDevice } from '../src/devices/device.js';

void runDevice(workerData as DeviceConfig).then((r) => parentPort!.postMessage(r));
