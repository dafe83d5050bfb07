// Errno names for the test-peer's answers: the socket API's own names, plus the few Linux values
// it returns or the test-peer needs that the API's table has no name for.
import { errnoName } from "../../socket-api/app-support";

export const EBADF: i32 = 9;
export const EFAULT: i32 = 14;
export const EBUSY: i32 = 16;
export const EINVAL: i32 = 22;
export const EMSGSIZE: i32 = 90;
export const ESOCKTNOSUPPORT: i32 = 94;
export const ETIMEDOUT: i32 = 110;

export function errnoText(errno: i32): string {
  if (errno == 0) return "OK";
  const name = errnoName(errno);
  if (name != "E?") return name;
  if (errno == EFAULT) return "EFAULT";
  if (errno == EBUSY) return "EBUSY";
  if (errno == EMSGSIZE) return "EMSGSIZE";
  if (errno == ESOCKTNOSUPPORT) return "ESOCKTNOSUPPORT";
  return "E" + errno.toString();
}
