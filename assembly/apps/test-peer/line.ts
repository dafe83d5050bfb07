// One command line of the test-peer (port 1239) split into words, and the one-line answer built
// for it. Words are byte ranges of the received line; nothing is allocated per command.
export const LINE_CAPACITY: i32 = 256; // longer lines are refused whole (parse=line-too-long)
export const MAX_WORDS: i32 = 8;
const ANSWER_CAPACITY: i32 = 192;

export class Line {
  bytes: StaticArray<u8> = new StaticArray<u8>(LINE_CAPACITY);
  length: i32 = 0;
  overflow: bool = false; // the line ran past LINE_CAPACITY: its bytes are dropped up to the newline
  starts: StaticArray<i32> = new StaticArray<i32>(MAX_WORDS);
  ends: StaticArray<i32> = new StaticArray<i32>(MAX_WORDS);
  count: i32 = 0;
  tooManyWords: bool = false;

  reset(): void {
    this.length = 0;
    this.overflow = false;
    this.count = 0;
    this.tooManyWords = false;
  }

  // Appends one received byte (not the newline). A '\r' is dropped so CRLF lines work too.
  push(b: u8): void {
    if (b == 0x0d) return;
    if (this.length >= LINE_CAPACITY) {
      this.overflow = true;
      return;
    }
    unchecked((this.bytes[this.length++] = b));
  }

  // Splits on spaces and tabs.
  split(): void {
    this.count = 0;
    let i = 0;
    while (i < this.length) {
      while (i < this.length && isSpace(unchecked(this.bytes[i]))) i++;
      if (i >= this.length) break;
      const start = i;
      while (i < this.length && !isSpace(unchecked(this.bytes[i]))) i++;
      if (this.count == MAX_WORDS) {
        this.tooManyWords = true;
        return;
      }
      unchecked((this.starts[this.count] = start));
      unchecked((this.ends[this.count] = i));
      this.count++;
    }
  }

  is(index: i32, word: string): bool {
    if (index >= this.count) return false;
    const start = unchecked(this.starts[index]);
    const n = unchecked(this.ends[index]) - start;
    if (n != word.length) return false;
    for (let k = 0; k < n; k++) {
      if (<i32>unchecked(this.bytes[start + k]) != word.charCodeAt(k)) return false;
    }
    return true;
  }

  // Decimal digits (optionally after '-'), at most 18 of them; NOT_A_NUMBER otherwise.
  number(index: i32): i64 {
    if (index >= this.count) return NOT_A_NUMBER;
    let k = unchecked(this.starts[index]);
    const end = unchecked(this.ends[index]);
    let negative = false;
    if (unchecked(this.bytes[k]) == 0x2d) {
      negative = true;
      k++;
    }
    if (k == end || end - k > 18) return NOT_A_NUMBER;
    let value: i64 = 0;
    for (; k < end; k++) {
      const c = <i32>unchecked(this.bytes[k]);
      if (c < 0x30 || c > 0x39) return NOT_A_NUMBER;
      value = value * 10 + <i64>(c - 0x30);
    }
    return negative ? -value : value;
  }
}

export const NOT_A_NUMBER: i64 = I64.MIN_VALUE;

function isSpace(b: u8): bool {
  return b == 0x20 || b == 0x09;
}

// "<ret> <errno name|OK> <bytes> <crc32, 8 hex digits>[ key=value ...]\n"
export class Answer {
  bytes: StaticArray<u8> = new StaticArray<u8>(ANSWER_CAPACITY);
  length: i32 = 0;

  begin(ret: i64, errno: string, count: u64, crc: u32): void {
    this.length = 0;
    this.putSigned(ret);
    this.putByte(0x20);
    this.putStr(errno);
    this.putByte(0x20);
    this.putSigned(<i64>count);
    this.putByte(0x20);
    this.putHex8(crc);
  }

  key(name: string): void {
    this.putByte(0x20);
    this.putStr(name);
    this.putByte(0x3d);
  }

  end(): void {
    this.putByte(0x0a);
  }

  putByte(b: u32): void {
    // The newline always fits: the last byte is kept for it.
    if (this.length < ANSWER_CAPACITY - 1 || (b == 0x0a && this.length < ANSWER_CAPACITY)) {
      unchecked((this.bytes[this.length++] = <u8>b));
    }
  }

  putStr(s: string): void {
    for (let i = 0; i < s.length; i++) this.putByte(<u32>s.charCodeAt(i));
  }

  putSigned(value: i64): void {
    if (value < 0) {
      this.putByte(0x2d);
      this.putUnsigned(<u64>-value);
    } else this.putUnsigned(<u64>value);
  }

  putUnsigned(value: u64): void {
    const start = this.length;
    do {
      this.putByte(0x30 + <u32>(value % 10));
      value /= 10;
    } while (value != 0);
    for (let i = start, j = this.length - 1; i < j; i++, j--) {
      const t = unchecked(this.bytes[i]);
      unchecked((this.bytes[i] = this.bytes[j]));
      unchecked((this.bytes[j] = t));
    }
  }

  putHex8(value: u32): void {
    for (let shift = 28; shift >= 0; shift -= 4) {
      const nibble = (value >>> (<u32>shift)) & 0xf;
      this.putByte(nibble < 10 ? 0x30 + nibble : 0x61 + nibble - 10);
    }
  }

  pointer(): usize {
    return changetype<usize>(this.bytes);
  }
}
