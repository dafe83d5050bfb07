// Host-side clients of the backend's hybrid protocol for the TypeScript e2e tests: connect to
// <uds-path>, "CONNECT <port>\n", wait for "OK <hostport>\n"; then a plain byte stream.
import { createConnection, Socket } from "node:net";

export class Refused extends Error {}

export interface Connected {
  socket: Socket;
  hostPort: number;
  /** Bytes that arrived behind the OK line. */
  early: Buffer;
  ms: number;
}

/** Resolves once the guest accepted (OK line); rejects with Refused when the socket closes first. */
export function hybridConnect(udsPath: string, port: number, timeoutMs = 20_000): Promise<Connected> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const socket = createConnection({ path: udsPath, allowHalfOpen: true });
    let line = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer to CONNECT ${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      line = Buffer.concat([line, chunk]);
      const end = line.indexOf(0x0a);
      if (end < 0) return;
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.pause();
      const match = /^OK (\d+)$/.exec(line.subarray(0, end).toString());
      if (!match) {
        socket.destroy();
        reject(new Error(`unexpected answer ${JSON.stringify(line.toString())}`));
        return;
      }
      resolve({ socket, hostPort: Number(match[1]), early: line.subarray(end + 1), ms: Number(process.hrtime.bigint() - started) / 1e6 });
    };
    const onEnd = () => {
      clearTimeout(timer);
      socket.destroy();
      reject(new Refused(`port ${port}: closed without OK`));
    };
    socket.on("data", onData);
    socket.on("end", onEnd);
    socket.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.write(`CONNECT ${port}\n`);
  });
}

/** Everything the socket delivers until EOF (rejects after timeoutMs). */
export function readToEnd(c: Connected, timeoutMs = 30_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [c.early];
    const timer = setTimeout(() => reject(new Error(`no EOF within ${timeoutMs} ms (${Buffer.concat(chunks).length} bytes so far)`)), timeoutMs);
    c.socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    c.socket.on("end", () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    c.socket.on("close", () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    c.socket.resume();
  });
}

/** One echo round: connect to `port`, send `data`, half-close, read the echo to EOF. */
export async function echo(udsPath: string, data: Buffer, port = 1234): Promise<Buffer> {
  const c = await hybridConnect(udsPath, port);
  const back = readToEnd(c);
  c.socket.end(data);
  const result = await back;
  c.socket.destroy();
  return result;
}

export function pattern(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}
