// A non-blocking client connect that is retried: the peer (the host, a sibling VM) may not be
// listening yet. Each attempt opens a socket and connects without waiting; poll() reports the
// outcome. A failed attempt closes its socket; after `maxAttempts` the connect gives up.
import { clockNs } from "../platform/imports";
import { POLLERR, POLLHUP, POLLOUT, SO_ERROR, SOCK_STREAM } from "../socket-api/api-constants";
import { vs_close, vs_connect, vs_getsockopt, vs_settimeout, vs_socket } from "../socket-api/api";
import { EINPROGRESS } from "../socket-api/app-support";
import { socketEvents } from "../socket-api/readiness";

export const CONNECT_WAITING: i32 = 0; // connecting, or waiting for the next attempt
export const CONNECT_READY: i32 = 1; // connected: `fd` belongs to the caller now
export const CONNECT_RETRY: i32 = 2; // this attempt failed (`error`); the next one is scheduled
export const CONNECT_GAVE_UP: i32 = 3; // the last attempt failed (`error`)

export class RetryingConnect {
  fd: i32 = -1;
  attempts: i32 = 0;
  error: i32 = 0; // errno of the last failed attempt
  private connecting: bool = false;
  private nextAttemptAt: u64 = 0;
  private readonly errorValue: StaticArray<i64> = new StaticArray<i64>(1);

  constructor(
    readonly cid: u64,
    readonly port: u32,
    readonly maxAttempts: i32,
    readonly retryNs: u64,
  ) {}

  // One step; never blocks. The first attempt starts at the first poll.
  poll(): i32 {
    if (!this.connecting) return clockNs() >= this.nextAttemptAt ? this.attempt() : CONNECT_WAITING;
    const events = socketEvents(this.fd);
    if ((events & (POLLERR | POLLHUP)) != 0) {
      vs_getsockopt(this.fd, SO_ERROR, changetype<usize>(this.errorValue));
      return this.failed(<i32>unchecked(this.errorValue[0]));
    }
    if ((events & POLLOUT) == 0) return CONNECT_WAITING;
    this.connecting = false;
    return CONNECT_READY;
  }

  private attempt(): i32 {
    this.attempts++;
    this.fd = vs_socket(SOCK_STREAM);
    if (this.fd < 0) return this.failed(-this.fd);
    vs_settimeout(this.fd, 0);
    const r = vs_connect(this.fd, <u32>this.cid, this.port);
    if (r != 0 && r != -EINPROGRESS) return this.failed(-r);
    this.connecting = true;
    return CONNECT_WAITING;
  }

  private failed(error: i32): i32 {
    if (this.fd >= 0) vs_close(this.fd);
    this.fd = -1;
    this.connecting = false;
    this.error = error;
    if (this.attempts >= this.maxAttempts) return CONNECT_GAVE_UP;
    this.nextAttemptAt = clockNs() + this.retryNs;
    return CONNECT_RETRY;
  }
}
