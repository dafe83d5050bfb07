// The iperf3 control connection's bytes, never blocking: input is gathered until a wanted count
// has come (the cookie, a state byte, a JSON length, a JSON text), output waits in a queue that
// each poll pushes into the socket. Buffers are allocated once, at start.
import { MSG_DONTWAIT } from "../socket-api/api-constants";
import { vs_close, vs_recv, vs_send } from "../socket-api/api";
import { EAGAIN } from "../socket-api/app-support";
import { MAX_JSON_LENGTH } from "./iperf3-protocol";
import { readEnded } from "./iperf3-stream";

export const INPUT_WAITING: i32 = 0;
export const INPUT_COMPLETE: i32 = 1;
export const INPUT_ENDED: i32 = -1; // EOF or an error before the wanted bytes came

const OUTPUT_CAPACITY: u32 = MAX_JSON_LENGTH + 64;

export class ControlChannel {
  fd: i32 = -1;
  input: usize = 0;
  wanted: u32 = 0;
  have: u32 = 0;
  output: usize = 0;
  outputLength: u32 = 0;
  outputSent: u32 = 0;
  broken: bool = false; // a send failed: the client is gone
  moved: u32 = 0; // bytes read or sent since the caller last cleared it (the idle clock)

  allocate(): void {
    if (this.input == 0) this.input = heap.alloc(<usize>MAX_JSON_LENGTH);
    if (this.output == 0) this.output = heap.alloc(<usize>OUTPUT_CAPACITY);
  }

  open(fd: i32): void {
    this.fd = fd;
    this.wanted = 0;
    this.have = 0;
    this.outputLength = 0;
    this.outputSent = 0;
    this.broken = false;
  }

  inUse(): bool {
    return this.fd >= 0;
  }

  // Bytes move only while a count is wanted: nothing else is read off the connection.
  want(count: u32): void {
    this.wanted = count <= MAX_JSON_LENGTH ? count : MAX_JSON_LENGTH;
    this.have = 0;
  }

  // Gathers the wanted input.
  fill(): i32 {
    while (this.have < this.wanted) {
      const got = vs_recv(this.fd, this.input + <usize>this.have, this.wanted - this.have, MSG_DONTWAIT);
      if (got > 0) {
        this.have += <u32>got;
        this.moved += <u32>got;
        continue;
      }
      return readEnded(this.fd) ? INPUT_ENDED : INPUT_WAITING;
    }
    return INPUT_COMPLETE;
  }

  // The one state byte gathered by want(1), as iperf3's signed char.
  stateByte(): i32 {
    return <i32>load<i8>(this.input);
  }

  bigEndian32(): u32 {
    return bswap<u32>(load<u32>(this.input));
  }

  putByte(value: i32): void {
    if (this.outputLength >= OUTPUT_CAPACITY) return;
    store<u8>(this.output + <usize>this.outputLength, <u8>value);
    this.outputLength++;
  }

  putBigEndian32(value: u32): void {
    for (let shift: i32 = 24; shift >= 0; shift -= 8) this.putByte(<i32>((value >>> (<u32>shift)) & 0xff));
  }

  putBytes(pointer: usize, length: u32): void {
    const n = min(length, OUTPUT_CAPACITY - this.outputLength);
    memory.copy(this.output + <usize>this.outputLength, pointer, <usize>n);
    this.outputLength += n;
  }

  // Pushes queued output into the socket; true once all of it went.
  flush(): bool {
    while (this.outputSent < this.outputLength && !this.broken) {
      const sent = vs_send(this.fd, this.output + <usize>this.outputSent, this.outputLength - this.outputSent, MSG_DONTWAIT);
      if (sent > 0) {
        this.outputSent += <u32>sent;
        this.moved += <u32>sent;
      } else if (sent == -EAGAIN) {
        return false;
      } else {
        this.broken = true;
      }
    }
    if (this.outputSent == this.outputLength) {
      this.outputSent = 0;
      this.outputLength = 0;
      return true;
    }
    return false;
  }

  // Whatever output fits goes out first (vs_close sends buffered bytes before its SHUTDOWN).
  close(): void {
    if (this.fd < 0) return;
    this.flush();
    vs_close(this.fd);
    this.fd = -1;
  }
}
