// qemu/nested/outer-qemu.sh, which picks the QEMU that runs the outer VM, with stand-ins for
// qemu-system-x86_64, apt-get and dpkg-deb on PATH and a cache in a temporary directory: a system
// QEMU of 10 or newer is used as it is; an older one has the pinned backports build fetched once
// (the private source list, the three packages at one version), wrapped, and reused from the cache;
// a failed download exits 1 and says so. No network, nothing outside the temporary directory.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const SCRIPT = path.resolve(import.meta.dirname, "../../qemu/nested/outer-qemu.sh");
const VERSION = "1:10.0.2+ds-2+deb13u1~bpo12+1";

interface Machine {
  root: string;
  bin: string;
  cache: string;
  aptCalls: string;
}

function machine(systemVersion: string, aptSucceeds: boolean): Machine {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "outer-qemu-"));
  const bin = path.join(root, "bin");
  const cache = path.join(root, "cache");
  const aptCalls = path.join(root, "apt-calls");
  fs.mkdirSync(bin);
  const script = (name: string, body: string) =>
    fs.writeFileSync(path.join(bin, name), `#!/bin/bash\n${body}\n`, { mode: 0o755 });
  script("qemu-system-x86_64", `echo "QEMU emulator version ${systemVersion} (stand-in)"`);
  // apt-get: records its arguments and the source list it was given; "download" makes one file
  // per package when it succeeds.
  script(
    "apt-get",
    `echo "$*" >>${aptCalls}
for a in "$@"; do case "$a" in Dir::Etc::SourceList=*) cat "\${a#Dir::Etc::SourceList=}" >>${aptCalls} ;; esac; done
[ "${aptSucceeds ? 1 : 0}" = 1 ] || exit 100
case " $* " in *" download "*) for a in "$@"; do case "$a" in *=1:*) touch "\${a%%=*}.deb" ;; esac; done ;; esac`,
  );
  // dpkg-deb -x: unpacks the x86 package as a QEMU binary that prints its arguments.
  script(
    "dpkg-deb",
    `[ "$1" = -x ] || exit 2
mkdir -p "$3/usr/bin" "$3/usr/share/qemu"
case "$2" in *qemu-system-x86.deb) printf '#!/bin/sh\\necho "unpacked QEMU $*"\\n' >"$3/usr/bin/qemu-system-x86_64"; chmod +x "$3/usr/bin/qemu-system-x86_64" ;; esac`,
  );
  return { root, bin, cache, aptCalls };
}

function run(m: Machine): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync("bash", [SCRIPT], {
    encoding: "utf8",
    env: { PATH: `${m.bin}:/usr/bin:/bin`, HOME: m.root, VSOCKFW_CACHE: m.cache },
  });
  return { status: r.status, stdout: r.stdout.trim(), stderr: r.stderr };
}

function aptCalls(m: Machine): string {
  return fs.existsSync(m.aptCalls) ? fs.readFileSync(m.aptCalls, "utf8") : "";
}

test("a system QEMU of 10 or newer runs the outer VM as it is, with no download", (t) => {
  const m = machine("10.1.0", true);
  t.after(() => fs.rmSync(m.root, { recursive: true, force: true }));
  const r = run(m);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, "qemu-system-x86_64");
  assert.equal(aptCalls(m), "");
});

test("under an older system QEMU the pinned backports build is fetched once, wrapped and reused", (t) => {
  const m = machine("7.2.22", true);
  t.after(() => fs.rmSync(m.root, { recursive: true, force: true }));
  const first = run(m);
  assert.equal(first.status, 0, first.stderr);
  assert.match(first.stdout, new RegExp(`^${m.cache}/qemu-[^/]+/qemu$`));
  const calls = aptCalls(m);
  assert.match(calls, /deb \S+ bookworm-backports main/);
  for (const p of ["qemu-system-x86", "qemu-system-common", "qemu-system-data"]) {
    assert.ok(calls.includes(`${p}=${VERSION}`), `${p} at the pinned version: ${calls}`);
  }
  // The wrapper runs the unpacked binary with its own data directory ahead of the system's.
  const wrapped = spawnSync(first.stdout, ["-M", "q35"], { encoding: "utf8" });
  assert.match(wrapped.stdout, /^unpacked QEMU -L \S+\/usr\/share\/qemu -L \/usr\/share\/qemu -M q35$/m);
  const second = run(m);
  assert.equal(second.stdout, first.stdout);
  assert.equal(aptCalls(m), calls, "the second call fetched again");
});

test("a download that fails exits 1 and says so, leaving no half-made cache entry", (t) => {
  const m = machine("7.2.22", false);
  t.after(() => fs.rmSync(m.root, { recursive: true, force: true }));
  const r = run(m);
  assert.equal(r.status, 1);
  assert.equal(r.stdout, "");
  assert.match(r.stderr, /cannot download QEMU/);
  assert.match(aptCalls(m), /update/, "no second try after updating the private list");
  const left = fs.readdirSync(m.cache).filter((n) => n.startsWith("qemu-"));
  assert.deepEqual(left, []);
});
