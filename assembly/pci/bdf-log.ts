// Appends a function's address to the current log line as "bb:dd.f" (the form lspci prints).
import { logHex, logStr } from "../platform/log";
import { bdfBus, bdfDevice, bdfFunction } from "./config";

export function logBdf(address: u32): void {
  logHex(bdfBus(address), 2);
  logStr(":");
  logHex(bdfDevice(address), 2);
  logStr(".");
  logHex(bdfFunction(address), 1);
}
