// At boot, one message to the host: connect to CID 2 port 4050, send GREETING, close. Nobody
// listening there is normal (the host answers RST): logged at info, retried every RETRY_NS up to
// GREETING_ATTEMPTS times (about 10 s), so a listener started a little late still gets it.
import { clockNs } from "../platform/imports";
import { LEVEL_INFO, logBegin, logEnd, logKv, logKvStr, logStr } from "../platform/log";
import { MSG_DONTWAIT, POLLERR, POLLHUP, POLLOUT, SO_ERROR } from "../vsock/api-constants";
import { vs_close, vs_connect, vs_getsockopt, vs_send, vs_settimeout, vs_socket } from "../vsock/api";
import { EINPROGRESS, errnoName } from "../vsock/errors";
import { VMADDR_CID_HOST } from "../vsock/packet";
import { socketEvents } from "../vsock/readiness";

export const GREETING_PORT: u32 = 4050;
const GREETING = "Hello, Host! This is a message from the VM.\n";
const GREETING_ATTEMPTS: i32 = 5;
const RETRY_NS: u64 = 2000000000;

const IDLE: i32 = 0; // waiting for the next attempt
const CONNECTING: i32 = 1;
const FINISHED: i32 = 2;

let state: i32 = IDLE;
let fd: i32 = -1;
let attempts: i32 = 0;
let nextAttemptAt: u64 = 0;
let message: usize = 0;
let messageLength: u32 = 0;
const errorValue = new StaticArray<i64>(1);

function logOutcome(what: string, error: i32): void {
  if (logBegin(LEVEL_INFO, "app")) {
    logStr("greeting: ");
    logStr(what);
    logKv("port", GREETING_PORT);
    logKv("attempt", attempts);
    if (error != 0) logKvStr("reason", errnoName(error));
    logEnd();
  }
}

export function greetingStart(): void {
  // The message as bytes, once (String.UTF8 allocates; boot time only).
  const bytes = String.UTF8.encode(GREETING);
  messageLength = <u32>bytes.byteLength;
  message = heap.alloc(<usize>messageLength);
  memory.copy(message, changetype<usize>(bytes), messageLength);
  state = IDLE;
  attempts = 0;
  nextAttemptAt = 0;
}

function attempt(): void {
  attempts++;
  fd = vs_socket();
  if (fd < 0) {
    retryLater(-fd);
    return;
  }
  vs_settimeout(fd, 0);
  const r = vs_connect(fd, <u32>VMADDR_CID_HOST, GREETING_PORT);
  if (r == 0 || r == -EINPROGRESS) {
    state = CONNECTING;
    return;
  }
  vs_close(fd);
  fd = -1;
  retryLater(-r);
}

function retryLater(error: i32): void {
  if (attempts >= GREETING_ATTEMPTS) {
    logOutcome("no listener, giving up", error);
    state = FINISHED;
    return;
  }
  logOutcome("no listener yet (host reset or timeout), will retry", error);
  state = IDLE;
  nextAttemptAt = clockNs() + RETRY_NS;
}

export function greetingPoll(): void {
  if (state == FINISHED || message == 0) return;
  if (state == IDLE) {
    if (clockNs() >= nextAttemptAt) attempt();
    return;
  }
  const events = socketEvents(fd);
  if ((events & (POLLERR | POLLHUP)) != 0) {
    vs_getsockopt(fd, SO_ERROR, changetype<usize>(errorValue));
    vs_close(fd);
    fd = -1;
    retryLater(<i32>unchecked(errorValue[0]));
    return;
  }
  if ((events & POLLOUT) == 0) return;
  const sent = vs_send(fd, message, messageLength, MSG_DONTWAIT);
  vs_close(fd); // the message leaves before the SHUTDOWN
  fd = -1;
  state = FINISHED;
  if (sent == <i32>messageLength) logOutcome("sent", 0);
  else logOutcome("send failed", sent < 0 ? -sent : 0);
}

export function greetingFinished(): bool {
  return state == FINISHED;
}
