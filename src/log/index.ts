// The run log's public surface: the catalogue, the main-thread logger and the worker-side logger.
export * from './events.js';
export { createRunLogger, parseLogLevel } from './logger.js';
export type { LogChannel, RunLogger, RunLoggerOptions, RunLoggerStats, WorkerChannelOptions } from './logger.js';
export { attachWorkerLogger } from './worker-logger.js';
export type { WorkerLogBinding, WorkerLogger } from './worker-logger.js';
