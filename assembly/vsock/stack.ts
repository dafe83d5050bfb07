// PLACEHOLDER (owned by the vsock protocol work): replaced by the connection manager.
import { logError } from "../platform/log";
export function vsockStart(): bool {
  logError("vsock", "stack not built yet");
  return false;
}
export function vsockPoll(): void {}
