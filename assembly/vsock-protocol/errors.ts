// Error numbers returned by the socket API, negated (Linux values, so a C app and Python agree).
export const EPERM: i32 = 1;
export const EINTR: i32 = 4;
export const EBADF: i32 = 9;
export const EAGAIN: i32 = 11;
export const ENOMEM: i32 = 12;
export const EINVAL: i32 = 22;
export const EMFILE: i32 = 24;
export const EPIPE: i32 = 32;
export const EPROTO: i32 = 71; // a peer answered our REQUEST with something other than RESPONSE/RST
export const ENOTSOCK: i32 = 88;
export const EMSGSIZE: i32 = 90; // SEQPACKET: a message over the peer's buffer, or one dropped as too long
export const ESOCKTNOSUPPORT: i32 = 94; // socket type neither STREAM nor SEQPACKET (or no SEQPACKET device)
export const EOPNOTSUPP: i32 = 95;
export const EADDRINUSE: i32 = 98;
export const EADDRNOTAVAIL: i32 = 99;
export const ENETDOWN: i32 = 100;
export const ECONNABORTED: i32 = 103;
export const ECONNRESET: i32 = 104;
export const ENOBUFS: i32 = 105;
export const EISCONN: i32 = 106;
export const ENOTCONN: i32 = 107;
export const ETIMEDOUT: i32 = 110;
export const ECONNREFUSED: i32 = 111;
export const EALREADY: i32 = 114;
export const EINPROGRESS: i32 = 115;

// Short names for the debug log.
export function errnoName(errno: i32): string {
  switch (errno) {
    case EPERM: return "EPERM";
    case EINTR: return "EINTR";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EINVAL: return "EINVAL";
    case EMFILE: return "EMFILE";
    case EPIPE: return "EPIPE";
    case EPROTO: return "EPROTO";
    case ENOTSOCK: return "ENOTSOCK";
    case EMSGSIZE: return "EMSGSIZE";
    case ESOCKTNOSUPPORT: return "ESOCKTNOSUPPORT";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case ENETDOWN: return "ENETDOWN";
    case ECONNABORTED: return "ECONNABORTED";
    case ECONNRESET: return "ECONNRESET";
    case ENOBUFS: return "ENOBUFS";
    case EISCONN: return "EISCONN";
    case ENOTCONN: return "ENOTCONN";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EALREADY: return "EALREADY";
    case EINPROGRESS: return "EINPROGRESS";
  }
  return "E?";
}
