// The data streams of the running test: received bytes counted and dropped, ours sent from a
// fixed pattern up to the test's limits, the streams put in iperf3's id order, the omit period's
// end noted; and the refusal (ACCESS_DENIED) of a connection the test has no place for.
import { MSG_DONTWAIT } from "../socket-api/api-constants";
import { vs_close, vs_send } from "../socket-api/api";
import { ACCESS_DENIED, MAX_STREAMS, streamId } from "./iperf3-protocol";
import { Iperf3Stream } from "./iperf3-stream";
import { params, streams, test } from "./iperf3-test";

const DATA_CHUNK: u32 = 65536; // one send buffer (the scratch for receiving, the pattern for sending)
const NS_PER_SECOND: u64 = 1000000000;
let scratch: usize = 0;
let sendData: usize = 0;

// Stream slots, once at start: serving allocates nothing.
export function dataStart(): void {
  for (let i = 0; i < MAX_STREAMS; i++) unchecked((streams[i] = new Iperf3Stream()));
}

// The two data buffers, with the first client: filling 64 KiB byte by byte at boot cost a third of
// the boot's instructions, and 128 KiB of pages touched, for a service most boots never use.
export function dataBuffers(): void {
  if (scratch == 0) scratch = heap.alloc(<usize>DATA_CHUNK);
  if (sendData == 0) {
    sendData = heap.alloc(<usize>DATA_CHUNK);
    // Not all zeros, so that nothing on the way can shrink it; the client discards the bytes.
    for (let i: u32 = 0; i < DATA_CHUNK; i++) store<u8>(sendData + <usize>i, <u8>((i * 7 + (i >> 8)) & 0xff));
  }
}

export function deny(fd: i32): void {
  dataBuffers();
  store<i8>(scratch, <i8>ACCESS_DENIED);
  vs_send(fd, scratch, 1, MSG_DONTWAIT);
  vs_close(fd);
}

export function freeStreamSlot(): Iperf3Stream | null {
  for (let i = 0; i < MAX_STREAMS; i++) {
    const s = unchecked(streams[i]);
    if (!s.inUse() && !s.verified) return s;
  }
  return null;
}

// The streams, sorted into connection order in slots 0..n-1, get their ids and directions.
export function arrangeStreams(): void {
  for (let i = 0; i < test.expectedStreams; i++) {
    let best = -1;
    for (let j = i; j < MAX_STREAMS; j++) {
      const s = unchecked(streams[j]);
      if (s.verified && (best < 0 || s.acceptOrder < unchecked(streams[best]).acceptOrder)) best = j;
    }
    const t = unchecked(streams[i]);
    unchecked((streams[i] = streams[best]));
    unchecked((streams[best] = t));
    const s = unchecked(streams[i]);
    s.id = streamId(i);
    // --bidir: the client's sending streams connect first (iperf_create_streams(test, 1) first).
    s.sender = params.bidirectional ? i >= <i32>params.parallel : params.reverse;
  }
  // Connections beyond the test's (still sending a cookie): refused.
  for (let j = test.expectedStreams; j < MAX_STREAMS; j++) {
    const s = unchecked(streams[j]);
    if (s.inUse()) {
      deny(s.fd);
      s.fd = -1;
    }
  }
}

export function receiveAll(now: u64): void {
  for (let i = 0; i < test.expectedStreams; i++) {
    const s = unchecked(streams[i]);
    if (!s.sender && s.inUse() && s.receive(scratch, DATA_CHUNK) > 0) test.lastProgressNs = now;
  }
}

export function sendAll(now: u64): void {
  if (params.timeSeconds > 0 && now - test.runningSinceNs >= <u64>(params.timeSeconds + params.omitSeconds) * NS_PER_SECOND) {
    test.sendStopped = true;
  }
  if (test.sendLimit > 0 && test.sentTotal >= test.sendLimit) test.sendStopped = true;
  if (test.sendStopped) return;
  for (let i = 0; i < test.expectedStreams; i++) {
    const s = unchecked(streams[i]);
    if (!s.sender || !s.inUse()) continue;
    const limit = test.sendLimit > 0 ? test.sendLimit - test.sentTotal : U64.MAX_VALUE;
    if (limit == 0) break;
    const sent = s.send(sendData, DATA_CHUNK, limit);
    if (sent > 0) test.lastProgressNs = now;
    test.sentTotal += sent;
  }
}

// Bytes before the omit period (-O) ended are left out of the results.
export function noteOmitEnd(now: u64): void {
  if (test.omitDone || now - test.runningSinceNs < <u64>params.omitSeconds * NS_PER_SECOND) return;
  test.omitDone = true;
  for (let i = 0; i < test.expectedStreams; i++) {
    const s = unchecked(streams[i]);
    s.omitted = s.bytes;
  }
}
