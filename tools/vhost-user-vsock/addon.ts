// The native addon (native/addon.c, built by `make vhost-user-addon` into
// build/vhost-user-vsock/addon.node): what Node cannot do itself. Negative numbers are -errno.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export interface NativeAddon {
  listenUnix(path: string, backlog: number): number;
  acceptUnix(fd: number): number;
  connectUnix(path: string): number;
  /** Fills `bytes` completely (n short only at EOF, n < 0 on error); fds that came with them. */
  recvExact(fd: number, bytes: Uint8Array): { n: number; fds: number[] };
  sendWithFds(fd: number, bytes: Uint8Array, fds: number[]): number;
  mapShared(fd: number, offset: number, length: number): ArrayBuffer | number;
  /** Unmaps now and detaches the buffer; false when it was not a live mapping. */
  unmap(buffer: ArrayBuffer): boolean;
  mappedBytes(): number;
  memfd(name: string, size: number): number;
  eventfdCreate(): number;
  eventfdRead(fd: number): number;
  eventfdWrite(fd: number, value: number): number;
  close(fd: number): number;
  watch(fd: number, callback: (status: number) => void): object;
  unwatch(handle: object): void;
}

export const EAGAIN = 11;

const here = dirname(fileURLToPath(import.meta.url));
export const ADDON_PATH = process.env.VHOST_USER_ADDON ?? resolve(here, "../../build/vhost-user-vsock/addon.node");

let loaded: NativeAddon | null = null;

export function addon(): NativeAddon {
  if (!loaded) {
    if (!existsSync(ADDON_PATH)) throw new Error(`vhost-user addon missing: ${ADDON_PATH} (run: make vhost-user-addon)`);
    loaded = createRequire(join(here, "addon.ts"))(ADDON_PATH) as NativeAddon;
  }
  return loaded;
}

/** Throws for a negative (errno) result, naming the call. */
export function check(what: string, result: number): number {
  if (result < 0) {
    const error = new Error(`${what}: errno ${-result}`) as Error & { errno: number };
    error.errno = -result;
    throw error;
  }
  return result;
}
