// The numbers of iperf3's control protocol (iperf 3.x, src/iperf_api.h) and this server's limits.
// The server drives a test with one signed byte on the control connection, the state; JSON
// objects travel as a 4-byte big-endian length, then the text.

export const IPERF3_PORT: u32 = 5201;
export const COOKIE_SIZE: u32 = 37; // 36 printable characters and a NUL, on the control and every data stream

// States (signed bytes).
export const TEST_START: i32 = 1;
export const TEST_RUNNING: i32 = 2;
export const TEST_END: i32 = 4;
export const PARAM_EXCHANGE: i32 = 9;
export const CREATE_STREAMS: i32 = 10;
export const CLIENT_TERMINATE: i32 = 12;
export const EXCHANGE_RESULTS: i32 = 13;
export const DISPLAY_RESULTS: i32 = 14;
export const IPERF_DONE: i32 = 16;
export const ACCESS_DENIED: i32 = -1;
export const SERVER_ERROR: i32 = -2; // followed by two big-endian i32: the iperf error number, then errno

// iperf3's error numbers (i_errno) this server reports; the client prints its own text for each.
export const IENUMSTREAMS: i32 = 6; // too many parallel streams
export const IEBLOCKSIZE: i32 = 7; // block size too large
export const IEREVERSEBIDIR: i32 = 25; // both reverse and bidirectional
export const IERECVCOOKIE: i32 = 106;
export const IEMESSAGE: i32 = 110; // an unknown state byte
export const IERECVPARAMS: i32 = 114;
export const IERECVRESULTS: i32 = 117;
export const IEPROTOCOL: i32 = 131; // a protocol other than TCP (UDP, SCTP)
export const IENOMSG: i32 = 144; // nothing received for too long

// errno values sent with SERVER_ERROR (Linux's numbers).
export const ERRNO_NONE: i32 = 0;
export const ERRNO_EINVAL: i32 = 22;
export const ERRNO_EPROTO: i32 = 71;
export const ERRNO_EMSGSIZE: i32 = 90;
export const ERRNO_ETIMEDOUT: i32 = 110;

// Limits. A test holds 1 + parallel (x2 with --bidir) connections of the firmware's MAX_CONNECTIONS.
export const MAX_STREAMS: i32 = 32;
export const MAX_PARALLEL: i32 = 16;
export const MAX_BLOCKSIZE: i64 = 1 << 20; // iperf3's MAX_BLOCKSIZE
export const DEFAULT_BLOCKSIZE: i64 = 128 * 1024; // iperf3's TCP default
export const MAX_JSON_LENGTH: u32 = 16384; // parameters or results; longer is refused (EMSGSIZE)
export const IDLE_LIMIT_NS: u64 = 30000000000; // no byte either way on any socket of the test: aborted
export const DRAIN_LIMIT_NS: u64 = 2000000000; // after TEST_END, waiting for the client's last bytes

// The client's n-th stream (0-based, in connection order) has iperf3's id: 1, 3, 4, 5, ...
// (iperf_add_stream numbers the first 1 and each later one as 2 + the streams before it).
export function streamId(index: i32): i32 {
  return index == 0 ? 1 : index + 2;
}
