/* The crash record in wasm linear memory (assembly/crash/): where the last packet headers and the
 * connection summary live. Offsets mirror the assembly/crash/ files; tests/unit/crash-record.test.ts
 * decodes the record with the numbers in this file, so a drift on either side fails there. */
#ifndef FW_CRASH_RECORD_H
#define FW_CRASH_RECORD_H

#define CRASH_RECORD_MAGIC 0x52434656u
#define CRASH_RECORD_VERSION 1u
#define CRASH_RECORD_SIZE 64u

/* Record header. */
#define CR_MAGIC 0                    /* u32 */
#define CR_VERSION 4                  /* u32 */
#define CR_HISTORY_TOTAL 8            /* u64: packets recorded since boot */
#define CR_HISTORY_ADDRESS 16         /* u32: wasm address of the ring */
#define CR_HISTORY_CAPACITY 20        /* u32: entries */
#define CR_HISTORY_ENTRY_SIZE 24      /* u32 */
#define CR_CONNECTIONS_ADDRESS 28     /* u32 */
#define CR_CONNECTIONS_CAPACITY 32    /* u32 */
#define CR_CONNECTION_ENTRY_SIZE 36   /* u32 */
#define CR_CONNECTIONS_COUNT 40       /* i32: filled by crash_snapshot(), -1 none */
#define CR_CONNECTIONS_LIVE 44        /* u32 */

/* Packet history entry: packet number n sits in slot n % capacity. */
#define HISTORY_ENTRY_SIZE 64u
#define HE_TIME_NS 0                  /* u64 */
#define HE_DIRECTION 8                /* u32: 1 rx, 2 tx */
#define HE_SEQUENCE 12                /* u32: low 32 bits of n */
#define HE_HEADER 16                  /* the 44-byte virtio-vsock header */
#define HISTORY_DIRECTION_RX 1u
#define HISTORY_DIRECTION_TX 2u

/* virtio-vsock header fields (virtio 1.2, 5.10.6), little-endian. */
#define VH_SRC_CID 0                  /* u64 */
#define VH_DST_CID 8                  /* u64 */
#define VH_SRC_PORT 16                /* u32 */
#define VH_DST_PORT 20                /* u32 */
#define VH_LEN 24                     /* u32 */
#define VH_TYPE 28                    /* u16 */
#define VH_OP 30                      /* u16 */
#define VH_FLAGS 32                   /* u32 */
#define VH_BUF_ALLOC 36               /* u32 */
#define VH_FWD_CNT 40                 /* u32 */

/* Connection summary entry. */
#define CONNECTION_ENTRY_SIZE 80u
#define CE_INDEX 0                    /* u32 */
#define CE_STATE 4                    /* u32: 0 free, 1 connecting, 2 established, 3 closing, 4 closed */
#define CE_PEER_CID 8                 /* u64 */
#define CE_LOCAL_PORT 16              /* u32 */
#define CE_PEER_PORT 20               /* u32 */
#define CE_FD 24                      /* i32 */
#define CE_OUTBOUND 28                /* u8 */
#define CE_PEER_SHUTDOWN 29           /* u8 */
#define CE_LOCAL_SHUTDOWN 30          /* u8 */
#define CE_OWED 31                    /* u8 */
#define CE_RX_QUEUED 32               /* u32 */
#define CE_TX_QUEUED 36               /* u32 */
#define CE_BUF_ALLOC 40               /* u32 */
#define CE_FWD_CNT 44                 /* u32 */
#define CE_PEER_BUF_ALLOC 48          /* u32 */
#define CE_PEER_FWD_CNT 52            /* u32 */
#define CE_TX_CNT 56                  /* u32 */
#define CE_DROPPED 60                 /* u32 */
#define CE_RX_BYTES 64                /* u64 */
#define CE_TX_BYTES 72                /* u64 */

#endif
