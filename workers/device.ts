// Thread entry point: one emulated device (src/devices/device.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { type DeviceConfig, runDevice } from '../src/devices/device.js';

parentPort!.postMessage(await runDevice(workerData as DeviceConfig));
