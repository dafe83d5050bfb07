// vhost-user-vsock backend on Node: `node --import tsx tools/vhost-user-vsock/main.ts --help`.
// Runs until SIGINT/SIGTERM, then removes its sockets. Prints "ready" once every socket listens.
import { VsockBackend } from "./backend";
import { log, setLogLevel } from "./log";
import { parseArguments } from "./options";

async function main(): Promise<number> {
  let options;
  try {
    options = parseArguments(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    return 2;
  }
  setLogLevel(options.logLevel);
  const backend = new VsockBackend(options.vms, options.faults, options.forwards);
  await backend.start();
  log("info", "backend", "ready", { vms: backend.vms.length });
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  backend.stop();
  log("info", "backend", "stopped");
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    process.stderr.write(`vhost-user-vsock: ${(error as Error).stack ?? error}\n`);
    process.exit(1);
  },
);
