// One data stream of an iperf3 test: a connection to port 5201 that begins with the test's
// cookie, then carries data one way (the client's to us, or ours to the client with -R; --bidir
// has both kinds). Non-blocking: each call moves what the socket allows now.
import { MSG_DONTWAIT, POLLIN, POLLOUT } from "../socket-api/api-constants";
import { vs_close, vs_recv, vs_send } from "../socket-api/api";
import { receivable, sendSpace, socketEvents } from "../socket-api/readiness";
import { COOKIE_SIZE } from "./iperf3-protocol";

export const COOKIE_WAITING: i32 = 0;
export const COOKIE_COMPLETE: i32 = 1;
export const COOKIE_ENDED: i32 = -1; // EOF or an error before 37 bytes came

export class Iperf3Stream {
  fd: i32 = -1;
  acceptOrder: i32 = 0; // the n-th connection of this test's CREATE_STREAMS phase
  cookieLength: u32 = 0;
  readonly cookie: StaticArray<u8> = new StaticArray<u8>(<i32>COOKIE_SIZE);
  verified: bool = false; // its cookie matched the control connection's
  id: i32 = 0; // iperf3's stream id, given once every stream is in
  sender: bool = false; // we send on it (-R, or the second half with --bidir)
  bytes: u64 = 0; // received or sent since TEST_RUNNING
  omitted: u64 = 0; // of which before the omit period (-O) ended
  clientBytes: u64 = 0; // the client's own count for this stream (its results)
  ended: bool = false; // EOF or an error: nothing more moves

  start(fd: i32, order: i32): void {
    this.fd = fd;
    this.acceptOrder = order;
    this.cookieLength = 0;
    this.verified = false;
    this.id = 0;
    this.sender = false;
    this.bytes = 0;
    this.omitted = 0;
    this.clientBytes = 0;
    this.ended = false;
  }

  inUse(): bool {
    return this.fd >= 0;
  }

  close(): void {
    if (this.fd >= 0) vs_close(this.fd); // bytes still buffered leave before the SHUTDOWN
    this.fd = -1;
  }

  // Reads what there is of the 37-byte cookie.
  readCookie(): i32 {
    while (this.cookieLength < COOKIE_SIZE) {
      const pointer = changetype<usize>(this.cookie) + <usize>this.cookieLength;
      const got = vs_recv(this.fd, pointer, COOKIE_SIZE - this.cookieLength, MSG_DONTWAIT);
      if (got > 0) {
        this.cookieLength += <u32>got;
        continue;
      }
      return readEnded(this.fd) ? COOKIE_ENDED : COOKIE_WAITING;
    }
    return COOKIE_COMPLETE;
  }

  cookieMatches(expected: usize): bool {
    return memory.compare(changetype<usize>(this.cookie), expected, <usize>COOKIE_SIZE) == 0;
  }

  // Reads everything waiting into `scratch` (discarded); returns the bytes read.
  receive(scratch: usize, scratchSize: u32): u64 {
    let total: u64 = 0;
    while (!this.ended && receivable(this.fd) > 0) {
      const got = vs_recv(this.fd, scratch, scratchSize, MSG_DONTWAIT);
      if (got <= 0) break;
      total += <u64>got;
    }
    if (!this.ended && receivable(this.fd) == 0 && readEnded(this.fd)) this.ended = true;
    this.bytes += total;
    return total;
  }

  // Sends up to `limit` bytes of `data` (at most `dataSize` a call); returns the bytes sent.
  send(data: usize, dataSize: u32, limit: u64): u64 {
    if (this.ended) return 0;
    let total: u64 = 0;
    while (total < limit) {
      const room = sendSpace(this.fd);
      if (room == 0) {
        // POLLOUT with no room: the send would fail (the peer is gone or stopped reading).
        if ((socketEvents(this.fd) & POLLOUT) != 0) this.ended = true;
        break;
      }
      const n = <u32>min<u64>(min<u64>(<u64>room, <u64>dataSize), limit - total);
      const sent = vs_send(this.fd, data, n, MSG_DONTWAIT);
      if (sent <= 0) break;
      total += <u64>sent;
    }
    this.bytes += total;
    return total;
  }
}

// Nothing buffered and POLLIN: what is left is EOF or an error.
export function readEnded(fd: i32): bool {
  return receivable(fd) == 0 && (socketEvents(fd) & POLLIN) != 0;
}
