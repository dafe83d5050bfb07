// A byte ring over preallocated memory (capacity a power of two). Used for each connection's
// receive buffer (bytes the peer sent that the application has not read) and send buffer (bytes
// the application wrote that credit or the tx queue has not let out yet).
export class ByteRing {
  base: usize = 0;
  capacity: u32 = 0;
  head: u32 = 0; // read position (masked)
  count: u32 = 0;

  constructor(capacity: u32) {
    this.capacity = capacity;
  }

  // The memory comes the first time its connection slot is used, never freed: booting does not
  // touch (and zero) 20 MiB for 64 connections that may never all be open at once.
  allocate(): void {
    if (this.base == 0) this.base = heap.alloc(<usize>this.capacity);
  }

  reset(): void {
    this.head = 0;
    this.count = 0;
  }

  free(): u32 {
    return this.capacity - this.count;
  }

  // Appends up to len bytes from src; returns how many fit.
  write(src: usize, len: u32): u32 {
    const n = min(len, this.free());
    const mask = this.capacity - 1;
    const tail = (this.head + this.count) & mask;
    const first = min(n, this.capacity - tail);
    memory.copy(this.base + tail, src, first);
    if (n > first) memory.copy(this.base, src + first, n - first);
    this.count += n;
    return n;
  }

  // Copies up to len bytes to dst without consuming them.
  peek(dst: usize, len: u32): u32 {
    const n = min(len, this.count);
    const first = min(n, this.capacity - this.head);
    memory.copy(dst, this.base + this.head, first);
    if (n > first) memory.copy(dst + first, this.base, n - first);
    return n;
  }

  consume(n: u32): void {
    this.head = (this.head + n) & (this.capacity - 1);
    this.count -= n;
    if (this.count == 0) this.head = 0; // keeps later copies contiguous
  }

  // Forgets the newest n bytes (a SEQPACKET message that turned out too large to keep).
  dropTail(n: u32): void {
    this.count -= min(n, this.count);
    if (this.count == 0) this.head = 0;
  }

  read(dst: usize, len: u32): u32 {
    const n = this.peek(dst, len);
    this.consume(n);
    return n;
  }
}
