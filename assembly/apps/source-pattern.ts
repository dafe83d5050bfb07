// The source service's byte stream (port 1236), which the e2e suite regenerates and compares:
//   byte[i] = (i * 7 + (i >> 8)) & 0xff      for i = 0, 1, 2, ... (i counts from the stream's start)
// It is not periodic at 256, so a dropped, duplicated or reordered chunk shows.

// @ts-ignore: decorator
@inline export function sourceByte(i: u64): u8 {
  return <u8>((i * 7 + (i >> 8)) & 0xff);
}

// Writes bytes [start, start + length) of the pattern at dst.
export function fillSourcePattern(dst: usize, start: u64, length: u32): void {
  for (let k: u32 = 0; k < length; k++) store<u8>(dst + <usize>k, sourceByte(start + <u64>k));
}
