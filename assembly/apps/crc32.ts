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

// Through a raw pointer: indexing the managed array would store it to the GC's shadow stack on
// every lookup (a checked store per byte, in the loop that dominates the sink's cost).
@inline function lookup(base: usize, table: i32, index: u32): u32 {
  return load<u32>(base + ((<usize>table << 10) | (<usize>(index & 0xff) << 2)));
}

export function crc32Update(crc: u32, data: usize, length: u32): u32 {
  const t = changetype<usize>(tables);
  let p = data;
  const end = data + <usize>length;
  // Wasm loads are little-endian: the first byte is the low byte of `low`.
  while (end - p >= 8) {
    const low = load<u32>(p) ^ crc;
    const high = load<u32>(p, 4);
    crc =
      lookup(t, 7, low) ^ lookup(t, 6, low >>> 8) ^ lookup(t, 5, low >>> 16) ^ lookup(t, 4, low >>> 24) ^
      lookup(t, 3, high) ^ lookup(t, 2, high >>> 8) ^ lookup(t, 1, high >>> 16) ^ lookup(t, 0, high >>> 24);
    p += 8;
  }
  while (p < end) {
    crc = lookup(t, 0, crc ^ <u32>load<u8>(p)) ^ (crc >>> 8);
    p++;
  }
  return crc;
}

// The value zlib.crc32 returns.
export function crc32End(crc: u32): u32 {
  return crc ^ 0xffffffff;
}
