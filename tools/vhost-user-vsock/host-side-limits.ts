// What the two host-side bridges (uds-bridge.ts for streams, seqpacket-bridge.ts for SEQPACKET)
// share: their flow-control marks, the handshake's length, and the socket-file clean-up.
import { existsSync, lstatSync, unlinkSync } from "node:fs";

/** Host -> guest bytes queued beyond the guest's credit before the Unix side stops being read. */
export const SEND_HIGH_WATER = 1 << 20;
/** ... and the mark below which it is read again. */
export const SEND_LOW_WATER = 256 << 10;
/** The longest "CONNECT <port>\n" handshake line accepted. */
export const MAX_CONNECT_LINE = 64;

/** Removes a stale socket file (never anything that is not a socket). */
export function removeStaleSocket(path: string): void {
  if (existsSync(path) && lstatSync(path).isSocket()) unlinkSync(path);
}
