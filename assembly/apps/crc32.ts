// CRC-32 as zlib.crc32 computes it (reflected, polynomial 0xEDB88320, init and final xor ~0).
// Running value: crc32Begin(), crc32Update() over each chunk, crc32End() for the result.
// Eight bytes per step with eight tables ("slicing by 8"): the sink checksums every byte it
// receives, and one table lookup per byte held its throughput below the link's under emulation.
const TABLES: i32 = 8;
const tables = new StaticArray<u32>(TABLES * 256); // table k at k * 256: CRC of a byte then k zero bytes
let tablesReady = false;

function buildTables(): void {
  for (let n: u32 = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    unchecked((tables[n] = c));
  }
  for (let k = 1; k < TABLES; k++) {
    for (let n = 0; n < 256; n++) {
      const previous = unchecked(tables[(k - 1) * 256 + n]);
      unchecked((tables[k * 256 + n] = (previous >>> 8) ^ unchecked(tables[previous & 0xff])));
    }
  }
  tablesReady = true;
}

// The running register before any byte.
export function crc32Begin(): u32 {
  if (!tablesReady) buildTables();
  return 0xffffffff;
}

@inline function lookup(table: i32, index: u32): u32 {
  return unchecked(tables[table * 256 + <i32>(index & 0xff)]);
}

export function crc32Update(crc: u32, data: usize, length: u32): u32 {
  let p = data;
  const end = data + <usize>length;
  // Wasm loads are little-endian: the first byte is the low byte of `low`.
  while (end - p >= 8) {
    const low = load<u32>(p) ^ crc;
    const high = load<u32>(p, 4);
    crc =
      lookup(7, low) ^ lookup(6, low >>> 8) ^ lookup(5, low >>> 16) ^ lookup(4, low >>> 24) ^
      lookup(3, high) ^ lookup(2, high >>> 8) ^ lookup(1, high >>> 16) ^ lookup(0, high >>> 24);
    p += 8;
  }
  while (p < end) {
    crc = lookup(0, crc ^ <u32>load<u8>(p)) ^ (crc >>> 8);
    p++;
  }
  return crc;
}

// The value zlib.crc32 returns.
export function crc32End(crc: u32): u32 {
  return crc ^ 0xffffffff;
}
