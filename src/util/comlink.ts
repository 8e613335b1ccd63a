// comlink over worker_threads MessagePorts: the control plane's one transport. comlink's package
// has no "exports" map and its "main" is a UMD bundle, so the ESM build and its Node adapter are
// imported by path; their types are the package's own (declared in comlink-esm.d.ts).
import * as Comlink from 'comlink/dist/esm/comlink.mjs';
import nodeEndpoint, { type NodeEndpoint } from 'comlink/dist/esm/node-adapter.mjs';
import type { MessagePort } from 'node:worker_threads';

export type Remote<T> = Comlink.Remote<T>;

/** Serve `api` on `port` (worker side). Calls are answered whenever the thread's event loop runs. */
export function exposeOnPort(api: object, port: MessagePort): void {
  Comlink.expose(api, nodeEndpoint(port as unknown as NodeEndpoint));
}

/** A proxy for the api served on the other end of `port` (main side). */
export function wrapPort<T>(port: MessagePort): Remote<T> {
  return Comlink.wrap<T>(nodeEndpoint(port as unknown as NodeEndpoint));
}

/** Drop a proxy so its port can close. */
export function releaseRemote<T>(remote: Remote<T>): void {
  remote[Comlink.releaseProxy]();
}
