// A small JSON reader for the two objects an iperf3 client sends (its parameters, its results):
// a cursor over bytes that the caller walks member by member, keeping only the integers and flags
// it needs and skipping everything else. Integer only: a number's fraction is dropped and its
// exponent applied, saturating at i64's range (cJSON writes "num" as 5e+09 style past 15 digits).
// Any syntax error, a nesting deeper than MAX_DEPTH or text past the value sets `failed`; every
// call after that returns at once, so a caller checks `failed` once at the end.

const MAX_DEPTH: i32 = 16;
const QUOTE: u32 = 0x22;
const BACKSLASH: u32 = 0x5c;
const LIST_CLOSED: i32 = -2;
const LIST_MALFORMED: i32 = -3;

export class JsonReader {
  at: usize = 0;
  end: usize = 0;
  failed: bool = false;
  keyStart: usize = 0;
  keyLength: u32 = 0;

  reset(start: usize, length: u32): void {
    this.at = start;
    this.end = start + <usize>length;
    this.failed = false;
    this.keyLength = 0;
  }

  private fail(): bool {
    this.failed = true;
    return false;
  }

  // The next byte that is not white space, not consumed (-1 at the end or after a failure).
  private peek(): i32 {
    if (this.failed) return -1;
    while (this.at < this.end) {
      const c = <u32>load<u8>(this.at);
      if (c != 0x20 && c != 0x09 && c != 0x0a && c != 0x0d) return <i32>c;
      this.at++;
    }
    return -1;
  }

  private expect(c: u32): bool {
    if (this.peek() != <i32>c) return this.fail();
    this.at++;
    return true;
  }

  beginObject(): bool {
    return this.expect(0x7b);
  }

  beginArray(): bool {
    return this.expect(0x5b);
  }

  // Inside an object: reads the `index`-th member's key and its ':' (true), or the closing '}'
  // (false). The cursor is then on the member's value, which the caller reads or skips.
  nextKey(index: i32): bool {
    const c = this.afterSeparator(index, 0x7d);
    if (c == LIST_CLOSED || c == LIST_MALFORMED) return false;
    if (c != <i32>QUOTE) return this.fail();
    const start = this.at + 1;
    if (!this.skipString()) return false;
    this.keyStart = start;
    this.keyLength = <u32>(this.at - 1 - start);
    return this.expect(0x3a);
  }

  // Inside an array: true when an `index`-th element follows (the cursor is on it), false at ']'.
  nextElement(index: i32): bool {
    return this.afterSeparator(index, 0x5d) >= 0;
  }

  // The character that starts the `index`-th member or element (-1 at the end of the input), past
  // the ',' that must precede every one but the first; LIST_CLOSED at the closing `close` (then
  // consumed), LIST_MALFORMED (after fail()) when the ',' is missing.
  private afterSeparator(index: i32, close: i32): i32 {
    const c = this.peek();
    if (c == close) {
      this.at++;
      return LIST_CLOSED;
    }
    if (index == 0) return c;
    if (c != 0x2c) {
      this.fail();
      return LIST_MALFORMED;
    }
    this.at++;
    return this.peek();
  }

  // The last key read equals `name` (keys are compared as written: an escaped key never matches).
  keyIs(name: string): bool {
    if (<u32>name.length != this.keyLength) return false;
    for (let i = 0; i < name.length; i++) {
      if (<u32>load<u8>(this.keyStart + <usize>i) != <u32>name.charCodeAt(i)) return false;
    }
    return true;
  }

  // A number value, as an integer (fraction dropped, exponent applied, saturating).
  integer(): i64 {
    let c = this.peek();
    if (c < 0) return 0;
    const negative = c == 0x2d;
    if (negative) this.at++;
    let mantissa: u64 = 0;
    let scale: i32 = 0; // mantissa * 10^scale is the value
    let digits = 0;
    // integer part: "0" or [1-9][0-9]*
    if (this.at >= this.end || !isDigit(load<u8>(this.at))) {
      this.fail();
      return 0;
    }
    const leadingZero = load<u8>(this.at) == 0x30;
    while (this.at < this.end && isDigit(load<u8>(this.at))) {
      if (leadingZero && digits == 1) return this.failInteger();
      if (mantissa < 100000000000000000) mantissa = mantissa * 10 + <u64>(load<u8>(this.at) - 0x30);
      else scale++; // digits past 18 only scale the value
      digits++;
      this.at++;
    }
    if (this.at < this.end && load<u8>(this.at) == 0x2e) {
      this.at++;
      let fractionDigits = 0;
      while (this.at < this.end && isDigit(load<u8>(this.at))) {
        if (mantissa < 100000000000000000) {
          mantissa = mantissa * 10 + <u64>(load<u8>(this.at) - 0x30);
          scale--;
        }
        fractionDigits++;
        this.at++;
      }
      if (fractionDigits == 0) return this.failInteger();
    }
    if (this.at < this.end && (load<u8>(this.at) | 0x20) == 0x65) {
      this.at++;
      let exponentNegative = false;
      if (this.at < this.end && (load<u8>(this.at) == 0x2b || load<u8>(this.at) == 0x2d)) {
        exponentNegative = load<u8>(this.at) == 0x2d;
        this.at++;
      }
      let exponent: i32 = 0;
      let exponentDigits = 0;
      while (this.at < this.end && isDigit(load<u8>(this.at))) {
        if (exponent < 10000) exponent = exponent * 10 + <i32>(load<u8>(this.at) - 0x30);
        exponentDigits++;
        this.at++;
      }
      if (exponentDigits == 0) return this.failInteger();
      scale += exponentNegative ? -exponent : exponent;
    }
    let value = mantissa;
    while (scale < 0 && value != 0) {
      value /= 10;
      scale++;
    }
    while (scale > 0 && value != 0) {
      if (value > <u64>I64.MAX_VALUE / 10) {
        value = <u64>I64.MAX_VALUE;
        break;
      }
      value *= 10;
      scale--;
    }
    if (value > <u64>I64.MAX_VALUE) value = <u64>I64.MAX_VALUE;
    return negative ? -<i64>value : <i64>value;
  }

  private failInteger(): i64 {
    this.fail();
    return 0;
  }

  // A flag: true, or a number other than 0, counts as set; false, null and 0 do not. Strings,
  // arrays and objects are skipped and count as set (iperf3 itself asks only whether the key is there).
  flag(): bool {
    const c = this.peek();
    if (c == 0x74) return this.literal("true");
    if (c == 0x66) {
      this.literal("false");
      return false;
    }
    if (c == 0x6e) {
      this.literal("null");
      return false;
    }
    if (c == 0x2d || (c >= 0x30 && c <= 0x39)) return this.integer() != 0;
    this.skipValue();
    return !this.failed;
  }

  // Skips one value of any kind, nested containers included (at most MAX_DEPTH deep).
  skipValue(): void {
    this.skipNested(0);
  }

  private skipNested(depth: i32): void {
    if (depth >= MAX_DEPTH) {
      this.fail();
      return;
    }
    const c = this.peek();
    if (c == 0x7b) {
      this.at++;
      for (let i = 0; this.nextKey(i); i++) this.skipNested(depth + 1);
    } else if (c == 0x5b) {
      this.at++;
      for (let i = 0; this.nextElement(i); i++) this.skipNested(depth + 1);
    } else if (c == <i32>QUOTE) {
      this.skipString();
    } else if (c == 0x74) {
      this.literal("true");
    } else if (c == 0x66) {
      this.literal("false");
    } else if (c == 0x6e) {
      this.literal("null");
    } else if (c == 0x2d || (c >= 0x30 && c <= 0x39)) {
      this.integer();
    } else {
      this.fail();
    }
  }

  // After the whole value: only white space may follow.
  finish(): bool {
    if (this.peek() >= 0) this.fail();
    return !this.failed;
  }

  // A string starting at the cursor ('"'), escapes checked; the cursor ends after its closing quote.
  private skipString(): bool {
    this.at++; // the opening quote
    while (this.at < this.end) {
      const c = <u32>load<u8>(this.at);
      this.at++;
      if (c == QUOTE) return true;
      if (c < 0x20) return this.fail();
      if (c == BACKSLASH) {
        if (this.at >= this.end) break;
        const e = <u32>load<u8>(this.at);
        this.at++;
        if (e == 0x75) {
          for (let i = 0; i < 4; i++) {
            if (this.at >= this.end || !isHexDigit(load<u8>(this.at))) return this.fail();
            this.at++;
          }
        } else if (e != QUOTE && e != BACKSLASH && e != 0x2f && e != 0x62 && e != 0x66 && e != 0x6e && e != 0x72 && e != 0x74) {
          return this.fail();
        }
      }
    }
    return this.fail(); // unterminated
  }

  private literal(word: string): bool {
    const length = <usize>word.length;
    if (this.at + length > this.end) return this.fail();
    for (let i = 0; i < word.length; i++) {
      if (<u32>load<u8>(this.at + <usize>i) != <u32>word.charCodeAt(i)) return this.fail();
    }
    this.at += length;
    return true;
  }
}

// @ts-ignore: decorator
@inline function isDigit(c: u8): bool {
  return c >= 0x30 && c <= 0x39;
}

// @ts-ignore: decorator
@inline function isHexDigit(c: u8): bool {
  return isDigit(c) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66);
}
