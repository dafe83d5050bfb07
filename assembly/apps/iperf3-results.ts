// The EXCHANGE_RESULTS step: the client's results object (of which the server keeps each
// stream's byte count, by id) and the server's own, with the members iperf3's client requires
// (get_results: cpu_util_total/user/system, sender_has_retransmits, and per stream id, bytes,
// retransmits, jitter, errors, packets, start_time, end_time). Integers, and seconds written
// from microseconds: the client does the arithmetic.
import { JsonReader } from "./iperf3-json-reader";
import { JsonWriter } from "./iperf3-json-writer";
import { Iperf3Stream } from "./iperf3-stream";

function streamWithId(streams: StaticArray<Iperf3Stream>, count: i32, id: i64): Iperf3Stream | null {
  for (let i = 0; i < count; i++) {
    const s = unchecked(streams[i]);
    if (s.verified && <i64>s.id == id) return s;
  }
  return null;
}

// Reads {"streams":[{"id":..,"bytes":..,...},...], ...}; ids this test does not have are ignored.
export function readClientResults(r: JsonReader, streams: StaticArray<Iperf3Stream>, count: i32): bool {
  if (!r.beginObject()) return false;
  for (let i = 0; r.nextKey(i); i++) {
    if (!r.keyIs("streams")) {
      r.skipValue();
      continue;
    }
    if (!r.beginArray()) return false;
    for (let e = 0; r.nextElement(e); e++) {
      if (!r.beginObject()) return false;
      let id: i64 = -1;
      let bytes: i64 = 0;
      for (let k = 0; r.nextKey(k); k++) {
        if (r.keyIs("id")) id = r.integer();
        else if (r.keyIs("bytes")) bytes = r.integer();
        else r.skipValue();
      }
      const s = streamWithId(streams, count, id);
      if (s != null && bytes > 0) s.clientBytes = <u64>bytes;
    }
  }
  return r.finish();
}

// The server's results. `durationMicros`: TEST_RUNNING to TEST_END on the server's clock.
export function writeServerResults(
  w: JsonWriter,
  streams: StaticArray<Iperf3Stream>,
  count: i32,
  durationMicros: u64,
  serverSends: bool,
): bool {
  w.beginObject();
  w.integerMember("cpu_util_total", 0);
  w.integerMember("cpu_util_user", 0);
  w.integerMember("cpu_util_system", 0);
  // -1 when the server only receives (iperf3's convention); 0: a sender without retransmit counts.
  w.integerMember("sender_has_retransmits", serverSends ? 0 : -1);
  w.key("streams");
  w.beginArray();
  // streams[0, count) are the test's streams in id order (the server keeps them so).
  for (let i = 0; i < count; i++) {
    const s = unchecked(streams[i]);
    w.element();
    w.beginObject();
    w.integerMember("id", s.id);
    w.integerMember("bytes", <i64>(s.bytes - s.omitted));
    w.integerMember("retransmits", -1);
    w.integerMember("jitter", 0);
    w.integerMember("errors", 0);
    w.integerMember("packets", 0);
    w.integerMember("start_time", 0);
    w.key("end_time");
    w.seconds(durationMicros);
    w.endObject();
  }
  w.endArray();
  w.endObject();
  return !w.overflowed;
}
