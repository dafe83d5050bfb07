// CRC-32 as zlib.crc32 computes it (reflected, polynomial 0xEDB88320, init and final xor ~0).
// Running value: crc32Begin(), crc32Update() over each chunk, crc32End() for the result.
const table = new StaticArray<u32>(256);
let tableReady = false;

function buildTable(): void {
  for (let n: u32 = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    unchecked((table[n] = c));
  }
  tableReady = true;
}

// The running register before any byte.
export function crc32Begin(): u32 {
  if (!tableReady) buildTable();
  return 0xffffffff;
}

export function crc32Update(crc: u32, data: usize, length: u32): u32 {
  for (let i: u32 = 0; i < length; i++) {
    const b = <u32>load<u8>(data + <usize>i);
    crc = unchecked(table[(crc ^ b) & 0xff]) ^ (crc >>> 8);
  }
  return crc;
}

// The value zlib.crc32 returns.
export function crc32End(crc: u32): u32 {
  return crc ^ 0xffffffff;
}
