// Local port allocation. Ephemeral ports come from a range above the privileged ports
// (<= 1023, which only explicitly bound services get), are unique among bound sockets and
// outbound connections (including ones still closing), and are reused once released.
import { portHeldByConnection } from "../vsock-protocol/connection-table";
import { portHeldBySocket } from "../vsock-protocol/socket-table";

export const LAST_RESERVED_PORT: u32 = 1023;
let ephemeralFirst: u32 = 49152;
let ephemeralLast: u32 = 65535;
let nextEphemeral: u32 = 49152;

export function portInUse(port: u32): bool {
  return portHeldBySocket(port) || portHeldByConnection(port);
}

// Narrows or moves the ephemeral range (tests use a tiny range to reach exhaustion).
export function setEphemeralRange(first: u32, last: u32): bool {
  if (first <= LAST_RESERVED_PORT || last < first || last == 0xffffffff) return false;
  ephemeralFirst = first;
  ephemeralLast = last;
  nextEphemeral = first;
  return true;
}

// A free ephemeral port, or 0 when every port in the range is taken.
export function allocateEphemeralPort(): u32 {
  const span = ephemeralLast - ephemeralFirst + 1;
  for (let tried: u32 = 0; tried < span; tried++) {
    const port = nextEphemeral;
    nextEphemeral = port >= ephemeralLast ? ephemeralFirst : port + 1;
    if (!portInUse(port)) return port;
  }
  return 0;
}
