// What the applications need besides the vs_* calls, so that apps/ reaches the stack only through
// the socket API: errno values and names, the well-known CIDs, the sibling allow-list (peers a
// vhost-user backend routes to) and the counters report. Not exported from the image: the C side
// has its own copies in firmware/include/vsock.h.
export { EAGAIN, EINPROGRESS, errnoName } from "../vsock-protocol/errors";
export { VMADDR_CID_ANY, VMADDR_CID_HOST } from "../wire/vsock-header";
export { allowSiblingCid, allowSiblingList } from "../vsock-protocol/siblings";
export { logCounters } from "../vsock-protocol/counters-report";
