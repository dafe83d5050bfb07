// SEQPACKET message boundaries beside a connection's byte ring: one u32 per message, in order,
// its length and flags. The receive side queues the messages complete in the receive buffer (and
// the oversized ones dropped, so recv can say so); the send side the messages in the send buffer,
// so no packet spans two messages and the last one of each carries EOM. The memory comes the
// first time a SEQPACKET connection uses the slot (a STREAM-only image never allocates it).
export const MESSAGE_LENGTH_MASK: u32 = 0x0fffffff; // lengths are at most 256 KiB
export const MESSAGE_EOR: u32 = 0x80000000; // the message ended a record (VIRTIO_VSOCK_SEQ_EOR)
export const MESSAGE_DROPPED: u32 = 0x40000000; // over the receive buffer: its bytes were discarded

export class MessageQueue {
  base: usize = 0;
  capacity: u32 = 0; // a power of two
  head: u32 = 0;
  count: u32 = 0;

  constructor(capacity: u32) {
    this.capacity = capacity;
  }

  allocate(): void {
    if (this.base == 0) this.base = heap.alloc(<usize>this.capacity << 2);
  }

  reset(): void {
    this.head = 0;
    this.count = 0;
  }

  full(): bool {
    return this.count >= this.capacity;
  }

  // False when full (the caller decides what that costs).
  push(entry: u32): bool {
    if (this.base == 0 || this.count >= this.capacity) return false;
    store<u32>(this.base + ((<usize>((this.head + this.count) & (this.capacity - 1))) << 2), entry);
    this.count++;
    return true;
  }

  first(): u32 {
    return load<u32>(this.base + (<usize>this.head << 2));
  }

  setFirst(entry: u32): void {
    store<u32>(this.base + (<usize>this.head << 2), entry);
  }

  // The newest entry (the send side's open message is always the last one).
  last(): u32 {
    return load<u32>(this.base + (<usize>((this.head + this.count - 1) & (this.capacity - 1)) << 2));
  }

  pop(): void {
    this.head = (this.head + 1) & (this.capacity - 1);
    this.count--;
  }
}
