// A small JSON writer for the iperf3 server's results: objects, arrays, keys, integers and
// microseconds written as seconds with six decimals ("2.000125"), so no floating point is needed
// (the client parses them as doubles). Commas are placed by the writer. Past the buffer's end it
// writes nothing more and sets `overflowed`.

const MAX_DEPTH: i32 = 8;

export class JsonWriter {
  start: usize = 0;
  capacity: u32 = 0;
  length: u32 = 0;
  overflowed: bool = false;
  private depth: i32 = 0;
  private readonly hasMember: StaticArray<bool> = new StaticArray<bool>(MAX_DEPTH);

  reset(start: usize, capacity: u32): void {
    this.start = start;
    this.capacity = capacity;
    this.length = 0;
    this.overflowed = false;
    this.depth = 0;
  }

  private byte(c: u32): void {
    if (this.length >= this.capacity) {
      this.overflowed = true;
      return;
    }
    store<u8>(this.start + <usize>this.length, <u8>c);
    this.length++;
  }

  private text(s: string): void {
    for (let i = 0; i < s.length; i++) this.byte(<u32>s.charCodeAt(i));
  }

  // A comma before every value but the first of its container.
  private separate(): void {
    if (this.depth == 0) return;
    const i = this.depth - 1;
    if (unchecked(this.hasMember[i])) this.byte(0x2c);
    unchecked((this.hasMember[i] = true));
  }

  private open(c: u32): void {
    this.byte(c);
    if (this.depth >= MAX_DEPTH) {
      this.overflowed = true;
      return;
    }
    unchecked((this.hasMember[this.depth] = false));
    this.depth++;
  }

  private close(c: u32): void {
    if (this.depth > 0) this.depth--;
    this.byte(c);
  }

  // A value in an array (or the top-level value): call before beginObject/integer there.
  element(): void {
    this.separate();
  }

  beginObject(): void {
    this.open(0x7b);
  }

  endObject(): void {
    this.close(0x7d);
  }

  beginArray(): void {
    this.open(0x5b);
  }

  endArray(): void {
    this.close(0x5d);
  }

  // `"name":` inside an object; the value follows (no separate() for it).
  key(name: string): void {
    this.separate();
    this.byte(0x22);
    this.text(name); // names are plain ASCII constants: nothing to escape
    this.byte(0x22);
    this.byte(0x3a);
  }

  integer(value: i64): void {
    if (value < 0) {
      this.byte(0x2d);
      this.unsigned(<u64>-value);
    } else {
      this.unsigned(<u64>value);
    }
  }

  unsigned(value: u64): void {
    let divisor: u64 = 1;
    while (value / divisor >= 10) divisor *= 10;
    while (divisor > 0) {
      this.byte(0x30 + <u32>((value / divisor) % 10));
      divisor /= 10;
    }
  }

  // Microseconds as decimal seconds: 2000125 -> 2.000125.
  seconds(micros: u64): void {
    this.unsigned(micros / 1000000);
    this.byte(0x2e);
    let fraction = micros % 1000000;
    for (let divisor: u64 = 100000; divisor > 0; divisor /= 10) {
      this.byte(0x30 + <u32>(fraction / divisor));
      fraction %= divisor;
    }
  }

  integerMember(name: string, value: i64): void {
    this.key(name);
    this.integer(value);
  }
}
