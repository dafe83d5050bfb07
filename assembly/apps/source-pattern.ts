// The source service's byte stream (port 1236), which the e2e suite regenerates and compares:
//   byte[i] = (i * 7 + (i >> 8)) & 0xff      for i = 0, 1, 2, ... (i counts from the stream's start)
// It is not periodic at 256, so a dropped, duplicated or reordered chunk shows. It is periodic at
// 65536 (i * 7 mod 256 repeats every 256, i >> 8 mod 256 every 65536): the stream is copied out of
// two periods computed once, on the first request, instead of byte by byte (a few instructions a
// byte matter where a hypervisor emulates every guest instruction).
export const SOURCE_PERIOD: u32 = 65536;

// @ts-ignore: decorator
@inline export function sourceByte(i: u64): u8 {
  return <u8>((i * 7 + (i >> 8)) & 0xff);
}

let periods: StaticArray<u8> | null = null;

function twoPeriods(): usize {
  let table = periods;
  if (table == null) {
    table = new StaticArray<u8>(<i32>(2 * SOURCE_PERIOD));
    for (let i: u32 = 0; i < 2 * SOURCE_PERIOD; i++) unchecked((table[i] = sourceByte(<u64>i)));
    periods = table;
  }
  return changetype<usize>(table);
}

// Writes bytes [start, start + length) of the pattern at dst.
export function fillSourcePattern(dst: usize, start: u64, length: u32): void {
  const table = twoPeriods();
  let done: u32 = 0;
  while (done < length) {
    const n = min(length - done, SOURCE_PERIOD);
    memory.copy(dst + <usize>done, table + <usize>((start + <u64>done) % SOURCE_PERIOD), n);
    done += n;
  }
}
