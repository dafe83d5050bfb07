// PLACEHOLDER (owned by the vsock protocol work): the exported socket API (vs_* functions).
export function vs_local_cid(): u64 {
  return 0;
}
