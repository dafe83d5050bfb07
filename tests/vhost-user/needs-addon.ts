// The vhost-user unit tests (tests/unit/vhost-user-*.test.ts) need the native addon, which
// `make test-unit` builds. Run without it, they would each fail and leave the backend's
// half-started Unix listener open, so the file's process never exits. Instead the tests that
// need it are skipped, and one skipped entry per file says how to build it.
import { existsSync } from "node:fs";
import { test } from "node:test";
import { ADDON_PATH } from "../../tools/vhost-user-vsock/addon";

export const ADDON_MISSING = existsSync(ADDON_PATH) ? null : `${ADDON_PATH} is missing; build it with: make vhost-user-addon`;

let missingReported = false;

/** `test` for a test that needs the addon. */
export function addonTest(name: string, fn: () => Promise<void>): void {
  if (!ADDON_MISSING) {
    test(name, fn);
    return;
  }
  if (missingReported) return;
  missingReported = true;
  test("vhost-user tests that need the native addon", { skip: ADDON_MISSING }, () => {});
}
