// TRACE=1 builds log every header sent and received (subsystem `trace`); TRACE=0 compiles it away.
import { LEVEL_DEBUG, logBegin, logDec, logEnd, logKv, logStr } from "../platform/log";
import {
  headerBufAlloc,
  headerDstCid,
  headerDstPort,
  headerFlags,
  headerFwdCnt,
  headerLen,
  headerOp,
  headerSrcCid,
  headerSrcPort,
  headerType,
  opName,
} from "./packet";

export function traceHeader(direction: string, h: usize): void {
  if (TRACE == 0) return;
  if (logBegin(LEVEL_DEBUG, "trace")) {
    logStr(direction);
    logStr(" ");
    logStr(opName(headerOp(h)));
    logStr(" ");
    logDec(headerSrcCid(h));
    logStr(":");
    logDec(headerSrcPort(h));
    logStr(" -> ");
    logDec(headerDstCid(h));
    logStr(":");
    logDec(headerDstPort(h));
    logKv("len", headerLen(h));
    logKv("type", headerType(h));
    logKv("flags", headerFlags(h));
    logKv("buf_alloc", headerBufAlloc(h));
    logKv("fwd_cnt", headerFwdCnt(h));
    logEnd();
  }
}
