// The crash record: a fixed block in linear memory that firmware/crash-report.c reads after a
// wasm trap or CPU exception. It describes where the packet history and the connection summary
// live; the C side checks every address and size against linear memory before it reads, so a
// corrupted record makes the report say so instead of faulting. The layout is mirrored in
// firmware/crash-record.h (tests/unit/crash-record.test.ts decodes it with the C header's offsets).

export const CRASH_RECORD_MAGIC: u32 = 0x52434656; // "VFCR" in memory order
export const CRASH_RECORD_VERSION: u32 = 1;
export const CRASH_RECORD_SIZE: u32 = 64;

// Header fields (byte offsets).
export const CR_MAGIC: usize = 0; // u32
export const CR_VERSION: usize = 4; // u32
export const CR_HISTORY_TOTAL: usize = 8; // u64: packets recorded since boot
export const CR_HISTORY_ADDRESS: usize = 16; // u32: wasm address of the history ring
export const CR_HISTORY_CAPACITY: usize = 20; // u32: entries in the ring
export const CR_HISTORY_ENTRY_SIZE: usize = 24; // u32
export const CR_CONNECTIONS_ADDRESS: usize = 28; // u32: wasm address of the connection summary
export const CR_CONNECTIONS_CAPACITY: usize = 32; // u32: entries (MAX_CONNECTIONS)
export const CR_CONNECTION_ENTRY_SIZE: usize = 36; // u32
export const CR_CONNECTIONS_COUNT: usize = 40; // i32: entries filled by the last snapshot, -1 none yet
export const CR_CONNECTIONS_LIVE: usize = 44; // u32: the table's live count at the snapshot

export const crashRecord: usize = memory.data(<i32>CRASH_RECORD_SIZE, 16);
