// One accepted connection of a default service, stepped by appsPoll without ever blocking.
// A fixed pool (one per possible connection), so serving allocates nothing.
import { crc32Begin } from "./crc32";

export const SERVICE_ECHO: i32 = 1;
export const SERVICE_SINK: i32 = 2;
export const SERVICE_SOURCE: i32 = 3;
export const SERVICE_SEQPACKET_ECHO: i32 = 4;

export const PHASE_READING: i32 = 0; // echo: copying; sink: counting; source: reading the byte count
export const PHASE_WRITING: i32 = 1; // sink: sending the summary; source: sending the pattern
export const PHASE_DONE: i32 = 2;

const REPLY_CAPACITY: i32 = 40;

export class Session {
  fd: i32 = -1;
  service: i32 = 0;
  phase: i32 = PHASE_READING;
  bytes: u64 = 0; // sink: bytes counted; source: bytes sent
  crc: u32 = 0; // sink: running CRC-32 register
  target: u64 = 0; // source: bytes requested
  digits: i32 = 0; // source: digits parsed so far
  reply: StaticArray<u8> = new StaticArray<u8>(REPLY_CAPACITY); // sink: "<bytes> <crc>\n"
  replyLength: i32 = 0;
  replySent: i32 = 0;
  // SEQPACKET echo: a message larger than the send buffer, held in a pool buffer while it goes out.
  messageSlot: i32 = -1;
  messageLength: u32 = 0;
  messageSent: u32 = 0;
  messageFlags: i32 = 0;

  start(fd: i32, service: i32): void {
    this.fd = fd;
    this.service = service;
    this.phase = PHASE_READING;
    this.bytes = 0;
    this.crc = crc32Begin();
    this.target = 0;
    this.digits = 0;
    this.replyLength = 0;
    this.replySent = 0;
    this.messageSlot = -1;
    this.messageLength = 0;
    this.messageSent = 0;
    this.messageFlags = 0;
  }

  inUse(): bool {
    return this.fd >= 0;
  }

  putReplyByte(b: u32): void {
    if (this.replyLength < REPLY_CAPACITY) unchecked((this.reply[this.replyLength++] = <u8>b));
  }

  putReplyDecimal(value: u64): void {
    const start = this.replyLength;
    do {
      this.putReplyByte(0x30 + <u32>(value % 10));
      value /= 10;
    } while (value != 0);
    // digits went in least significant first: reverse them
    for (let i = start, j = this.replyLength - 1; i < j; i++, j--) {
      const t = unchecked(this.reply[i]);
      unchecked((this.reply[i] = this.reply[j]));
      unchecked((this.reply[j] = t));
    }
  }

  // Lowercase, 8 digits, no 0x (the sink's documented format).
  putReplyHex8(value: u32): void {
    for (let shift = 28; shift >= 0; shift -= 4) {
      const nibble = (value >>> (<u32>shift)) & 0xf;
      this.putReplyByte(nibble < 10 ? 0x30 + nibble : 0x61 + nibble - 10);
    }
  }

  replyPointer(): usize {
    return changetype<usize>(this.reply) + <usize>this.replySent;
  }
}
