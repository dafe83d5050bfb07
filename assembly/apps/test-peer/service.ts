// The test-peer service (port 1239): a host-side driver (tests/e2e/conformance.py) or a user
// sends line commands on one control connection and the firmware runs them on other sockets
// through the socket API, answering each with one line (commands.ts; grammar in README.md).
// One control connection at a time: a second one is answered "-16 EBUSY ..." and closed. When
// the control connection ends, every socket it opened is closed.
// Left out of an image with `make image TEST_PEER=0`.
import { LEVEL_INFO, LEVEL_WARN, logBegin, logEnd, logKv, logStr } from "../../platform/log";
import { MSG_DONTWAIT, POLLIN, SOCK_STREAM } from "../../socket-api/api-constants";
import { vs_accept, vs_bind, vs_close, vs_listen, vs_recv, vs_send, vs_settimeout, vs_socket } from "../../socket-api/api";
import { EAGAIN, VMADDR_CID_ANY } from "../../socket-api/app-support";
import { receivable, socketEvents } from "../../socket-api/readiness";
import { commandsInit, execute } from "./commands";
import { EBUSY } from "./errno-text";
import { Answer, Line } from "./line";
import { closeAllOwned } from "./owned-sockets";

export const TEST_PEER_PORT: u32 = 1239;
const ANSWER_TIMEOUT_NS: i64 = 10_000_000_000; // an answer the driver does not read in 10 s is dropped

let listener: i32 = -1;
let control: i32 = -1;
const line = new Line();
const answer = new Answer();
const chunk = new StaticArray<u8>(512);

export function testPeerStart(): void {
  if (!TEST_PEER || listener >= 0) return;
  commandsInit();
  const fd = vs_socket(SOCK_STREAM);
  if (fd < 0) return;
  vs_settimeout(fd, 0);
  if (vs_bind(fd, VMADDR_CID_ANY, TEST_PEER_PORT) < 0 || vs_listen(fd, 4) < 0) {
    vs_close(fd);
    if (logBegin(LEVEL_WARN, "app")) {
      logStr("test-peer: cannot listen");
      logKv("port", TEST_PEER_PORT);
      logEnd();
    }
    return;
  }
  listener = fd;
  if (logBegin(LEVEL_INFO, "app")) {
    logStr("test-peer: listening");
    logKv("port", TEST_PEER_PORT);
    logEnd();
  }
}

function endControl(): void {
  closeAllOwned();
  vs_close(control);
  control = -1;
  line.reset();
}

function reply(): void {
  answer.end();
  // Blocking, bounded: a driver that stops reading cannot hold the firmware past the timeout.
  vs_send(control, answer.pointer(), <u32>answer.length, 0);
}

function acceptControl(): void {
  while (true) {
    const fd = vs_accept(listener, 0);
    if (fd < 0) return;
    vs_settimeout(fd, ANSWER_TIMEOUT_NS);
    if (control >= 0) {
      answer.begin(-EBUSY, "EBUSY", 0, 0);
      answer.key("reason");
      answer.putStr("another-control-connection");
      answer.end();
      vs_send(fd, answer.pointer(), <u32>answer.length, MSG_DONTWAIT);
      vs_close(fd);
      continue;
    }
    control = fd;
    line.reset();
    if (logBegin(LEVEL_INFO, "app")) {
      logStr("test-peer: control connection");
      logKv("fd", fd);
      logEnd();
    }
  }
}

// Reads what the control connection has and runs each complete line.
function serveControl(): void {
  const buffer = changetype<usize>(chunk);
  while (control >= 0 && receivable(control) > 0) {
    const n = vs_recv(control, buffer, <u32>chunk.length, MSG_DONTWAIT);
    if (n <= 0) break;
    for (let i = 0; i < n && control >= 0; i++) {
      const b = load<u8>(buffer + <usize>i);
      if (b != 0x0a) {
        line.push(b);
        continue;
      }
      if (line.overflow) {
        answer.begin(-22, "EINVAL", 0, 0);
        answer.key("parse");
        answer.putStr("line-too-long");
      } else {
        line.split();
        if (line.tooManyWords) {
          answer.begin(-22, "EINVAL", 0, 0);
          answer.key("parse");
          answer.putStr("extra-argument");
        } else execute(line, answer);
      }
      reply();
      line.reset();
    }
  }
  if (control < 0) return;
  // The driver went away (EOF or reset): its sockets go with it.
  if (receivable(control) == 0 && (socketEvents(control) & POLLIN) != 0) {
    const r = vs_recv(control, buffer, 1, MSG_DONTWAIT);
    if (r == 0 || (r < 0 && r != -EAGAIN)) endControl();
  }
}

export function testPeerPoll(): void {
  if (!TEST_PEER || listener < 0) return;
  acceptControl();
  if (control >= 0) serveControl();
}
