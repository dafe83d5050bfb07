// The sockets the test-peer opened (socket, accept). Commands act only on these: another
// service's fd is EBADF here, and every one is closed when the control connection ends.
import { vs_close } from "../../socket-api/api";

const CAPACITY: i32 = MAX_CONNECTIONS + 16;
const fds = new StaticArray<i32>(CAPACITY);
let count: i32 = 0;

export function own(fd: i32): bool {
  if (count == CAPACITY) return false;
  unchecked((fds[count++] = fd));
  return true;
}

export function owns(fd: i32): bool {
  for (let i = 0; i < count; i++) if (unchecked(fds[i]) == fd) return true;
  return false;
}

export function disown(fd: i32): void {
  for (let i = 0; i < count; i++) {
    if (unchecked(fds[i]) == fd) {
      unchecked((fds[i] = fds[--count]));
      return;
    }
  }
}

export function ownedCount(): i32 {
  return count;
}

export function closeAllOwned(): void {
  for (let i = 0; i < count; i++) vs_close(unchecked(fds[i]));
  count = 0;
}
