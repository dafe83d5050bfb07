// The test an iperf3 client asks for: its PARAM_EXCHANGE object, read into integers and flags.
// Only what this server acts on is kept ("tcp"/"udp"/"sctp", "time", "num", "blockcount",
// "parallel", "len", "reverse", "bidirectional", "omit"); every other member is skipped.
// check() then says what iperf3's own server would refuse, as an iperf3 error number.
import { JsonReader } from "./iperf3-json-reader";
import {
  DEFAULT_BLOCKSIZE,
  IEBLOCKSIZE,
  IENUMSTREAMS,
  IEPROTOCOL,
  IERECVPARAMS,
  IEREVERSEBIDIR,
  MAX_BLOCKSIZE,
  MAX_PARALLEL,
} from "./iperf3-protocol";

export class TestParameters {
  tcp: bool = false;
  otherProtocol: bool = false; // udp or sctp
  timeSeconds: i64 = 0; // -t (0 with -n or -k)
  bytes: i64 = 0; // -n
  blocks: i64 = 0; // -k
  parallel: i64 = 1; // -P
  blockSize: i64 = DEFAULT_BLOCKSIZE; // -l
  omitSeconds: i64 = 0; // -O
  reverse: bool = false; // -R
  bidirectional: bool = false; // --bidir

  clear(): void {
    this.tcp = false;
    this.otherProtocol = false;
    this.timeSeconds = 0;
    this.bytes = 0;
    this.blocks = 0;
    this.parallel = 1;
    this.blockSize = DEFAULT_BLOCKSIZE;
    this.omitSeconds = 0;
    this.reverse = false;
    this.bidirectional = false;
  }

  // Reads the object at the reader's cursor; false when it is not valid JSON (or not an object).
  read(r: JsonReader): bool {
    this.clear();
    if (!r.beginObject()) return false;
    for (let i = 0; r.nextKey(i); i++) {
      if (r.keyIs("tcp")) this.tcp = r.flag();
      else if (r.keyIs("udp") || r.keyIs("sctp")) this.otherProtocol = r.flag() || this.otherProtocol;
      else if (r.keyIs("time")) this.timeSeconds = r.integer();
      else if (r.keyIs("num")) this.bytes = r.integer();
      else if (r.keyIs("blockcount")) this.blocks = r.integer();
      else if (r.keyIs("parallel")) this.parallel = r.integer();
      else if (r.keyIs("len")) this.blockSize = r.integer();
      else if (r.keyIs("omit")) this.omitSeconds = r.integer();
      else if (r.keyIs("reverse")) this.reverse = r.flag();
      else if (r.keyIs("bidirectional")) this.bidirectional = r.flag();
      else r.skipValue();
    }
    return r.finish();
  }

  // 0 when this server can run the test, else the iperf3 error number to answer with.
  check(): i32 {
    if (this.otherProtocol) return IEPROTOCOL; // "tcp" is iperf3's default: its absence is fine
    if (this.reverse && this.bidirectional) return IEREVERSEBIDIR;
    if (this.parallel < 1 || this.parallel > MAX_PARALLEL) return IENUMSTREAMS;
    if (this.blockSize < 1 || this.blockSize > MAX_BLOCKSIZE) return IEBLOCKSIZE;
    if (this.timeSeconds < 0 || this.bytes < 0 || this.blocks < 0 || this.omitSeconds < 0) return IERECVPARAMS;
    if (this.timeSeconds > 86400 || this.omitSeconds > 86400) return IERECVPARAMS; // iperf3's MAX_TIME
    return 0;
  }

  streamCount(): i32 {
    return <i32>this.parallel * (this.bidirectional ? 2 : 1);
  }

  // Bytes the server may send in all (-n, or -k blocks of -l bytes); 0: no limit (-t decides).
  sendLimit(): u64 {
    if (this.bytes > 0) return <u64>this.bytes;
    if (this.blocks > 0) {
      if (<u64>this.blocks > U64.MAX_VALUE / <u64>this.blockSize) return U64.MAX_VALUE;
      return <u64>this.blocks * <u64>this.blockSize;
    }
    return 0;
  }
}
