// At boot, one message to the host: connect to CID 2 port 4050, send GREETING, close. Nobody
// listening there is normal (the host answers RST): logged at info, retried every RETRY_NS up to
// GREETING_ATTEMPTS times (about 10 s), so a listener started a little late still gets it.
import { LEVEL_INFO, logBegin, logEnd, logKv, logKvStr, logStr } from "../platform/log";
import { MSG_DONTWAIT } from "../socket-api/api-constants";
import { vs_close, vs_send } from "../socket-api/api";
import { errnoName } from "../socket-api/app-support";
import { VMADDR_CID_HOST } from "../socket-api/app-support";
import { CONNECT_GAVE_UP, CONNECT_READY, CONNECT_RETRY, RetryingConnect } from "./retrying-connect";

export const GREETING_PORT: u32 = 4050;
const GREETING = "Hello, Host! This is a message from the VM.\n";
const GREETING_ATTEMPTS: i32 = 5;
const RETRY_NS: u64 = 2000000000;

let connect: RetryingConnect | null = null; // null before the start and once finished
let message: usize = 0;
let messageLength: u32 = 0;

function logOutcome(what: string, error: i32): void {
  if (logBegin(LEVEL_INFO, "app")) {
    logStr("greeting: ");
    logStr(what);
    logKv("port", GREETING_PORT);
    logKv("attempt", connect!.attempts);
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
  connect = new RetryingConnect(VMADDR_CID_HOST, GREETING_PORT, GREETING_ATTEMPTS, RETRY_NS);
}

export function greetingPoll(): void {
  const c = connect;
  if (c == null) return;
  const outcome = c.poll();
  if (outcome == CONNECT_RETRY) {
    logOutcome("no listener yet (host reset or timeout), will retry", c.error);
  } else if (outcome == CONNECT_GAVE_UP) {
    logOutcome("no listener, giving up", c.error);
    connect = null;
  } else if (outcome == CONNECT_READY) {
    const sent = vs_send(c.fd, message, messageLength, MSG_DONTWAIT);
    vs_close(c.fd); // the message leaves before the SHUTDOWN
    if (sent == <i32>messageLength) logOutcome("sent", 0);
    else logOutcome("send failed", sent < 0 ? -sent : 0);
    connect = null;
  }
}
