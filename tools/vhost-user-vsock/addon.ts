// The native addon (native/addon.c, built by `make vhost-user-addon` into
// build/vhost-user-vsock/addon.node): what Node cannot do itself. Negative numbers are -errno.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export interface NativeAddon {
  /** type: 1 SOCK_STREAM (default) or 5 SOCK_SEQPACKET. */
  listenUnix(path: string, backlog: number, type?: number): number;
  acceptUnix(fd: number): number;
  connectUnix(path: string, type?: number): number;
  /** SEQPACKET: one message into `bytes`; its full length (> bytes.length: cut), 0 at EOF, -errno (-EAGAIN). */
  recvMessage(fd: number, bytes: Uint8Array): number;
  /** SEQPACKET: one message; its length or -errno (-EAGAIN: no room now). */
  sendMessage(fd: number, bytes: Uint8Array): number;
  shutdownFd(fd: number, how: number): number;
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
  /** events: 1 readable (default), 2 writable, 3 both; the callback gets the events that fired. */
  watch(fd: number, callback: (status: number, events: number) => void, events?: number): object;
  watchEvents(handle: object, events: number): number;
  unwatch(handle: object): void;
}

export const EAGAIN = 11;
export const UNIX_SOCK_SEQPACKET = 5;
export const WATCH_READABLE = 1;
export const WATCH_WRITABLE = 2;

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
