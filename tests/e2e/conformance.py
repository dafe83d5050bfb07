"""vsock_test's case list against the guest (the firmware, or the Linux stand-in), run from the
vhost-vsock host with upstream's IDs and names (Linux tools/testing/vsock/vsock_test.c).

vsock_test runs one binary on each side and coordinates them over TCP; the firmware has no TCP,
so here the host's side runs in this process (conformance_peers.LocalPeer) and the guest's side
through the guest's test-peer service on port 1239 (RemotePeer), two threads joined by an
in-process control channel. Each case runs in both directions where upstream has both sides:
the guest as server (the host connects) and the guest as client. Output, one line per case in
vsock_test's format, with a '#' line per direction:

    5 - SOCK_STREAM MSG_PEEK...ok
    #   guest=server ok 0.08 s
    #   guest=client ok 0.07 s

Runs only where AF_VSOCK reaches a guest (inside qemu/vsock-host.sh, e.g. tests/e2e/run.sh);
never on a machine whose own kernel would route it. Env: VSOCK_CID (33), CONFORMANCE_PORT (5000).
Usage: python3 tests/e2e/conformance.py [--only 0,5,22] [--repeat N] [--direction server|client|both] [--list]
"""
import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conformance_cases import CASES, KNOWN_FIRMWARE_FAILURES, Skip  # noqa: E402
from conformance_peers import CONTROL_TIMEOUT, CaseFailure, Control, LocalPeer, RemotePeer, Side  # noqa: E402

HOST_CID = 2
GUEST_CID = int(os.environ.get("VSOCK_CID", "33"))
PORT = int(os.environ.get("CONFORMANCE_PORT", "5000"))
CASE_DEADLINE = 3 * CONTROL_TIMEOUT


def run_side(fn, side, errors):
    try:
        fn(side)
    except BaseException as e:  # handed to the runner
        errors.append((side.name, e))
        # The other side may wait on the control channel for a line this side will never write.
        side.ctl.writeln("__aborted__")


def run_direction(fn_client, fn_server, guest_is_server, guest_name):
    """Runs one direction; returns (status, detail, notes)."""
    host, guest = LocalPeer(), None
    try:
        guest = RemotePeer(GUEST_CID, guest_name)
        ctl_client, ctl_server = Control.pair()
        server_peer, client_peer = (guest, host) if guest_is_server else (host, guest)
        # A side's peer_cid is the other side's CID (the server side never connects).
        client = Side(client_peer, ctl_client, GUEST_CID if guest_is_server else HOST_CID, PORT)
        server = Side(server_peer, ctl_server, HOST_CID if guest_is_server else GUEST_CID, PORT)
        errors = []
        threads = [threading.Thread(target=run_side, args=(fn_client, client, errors), daemon=True)]
        if fn_server is not None:
            threads.append(threading.Thread(target=run_side, args=(fn_server, server, errors), daemon=True))
        for t in threads:
            t.start()
        end = time.monotonic() + CASE_DEADLINE
        for t in threads:
            t.join(max(0.1, end - time.monotonic()))
        notes = client.notes + server.notes
        if any(t.is_alive() for t in threads):
            return "fail", "still running after %.0f s" % CASE_DEADLINE, notes
        # A side skips before it acts (a missing capability); what the other side then reports
        # (a control line that never came, an accept that timed out) follows from the skip.
        skips = [e for _, e in errors if isinstance(e, Skip)]
        if skips:
            return "skip", str(skips[0]), notes
        real = [(n, e) for n, e in errors if not str(e).endswith("'__aborted__'")]
        if real:
            name, e = real[0]
            kind = "" if isinstance(e, CaseFailure) else "%s: " % type(e).__name__
            return "fail", "%s%s" % (kind, e), notes
        if errors:
            return "fail", str(errors[0][1]), notes
        return "ok", "", notes
    except (CaseFailure, OSError) as e:
        return "fail", "%s: %s" % (type(e).__name__, e), []
    finally:
        host.close()
        if guest is not None:
            guest.close()


# A guest that answered no control connection this many directions in a row is gone (its vCPU or
# its QEMU stopped): the cases left are reported as not run instead of timing out one by one.
GUEST_LOST_AFTER = 3
NO_CONTROL = "no test-peer control connection"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="", help="comma-separated case IDs")
    parser.add_argument("--direction", choices=["server", "client", "both"], default="both",
                        help="the guest's role (default: both where upstream has both sides)")
    parser.add_argument("--guest-name", default=os.environ.get("CONFORMANCE_GUEST", "guest"))
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--strict", action="store_true", help="known firmware failures fail the run too")
    parser.add_argument("--repeat", type=int, default=int(os.environ.get("CONFORMANCE_REPEAT", "1")),
                        help="run each chosen case N times in a row (a flaky case's rate; default CONFORMANCE_REPEAT or 1)")
    args = parser.parse_args()
    if args.list:
        print("ID\tTest name")
        for i, (name, *_rest) in enumerate(CASES):
            print("%d\t%s" % (i, name))
        return 0
    wanted = {int(x) for x in args.only.split(",") if x.strip()}
    counts = {"ok": 0, "skip": 0, "fail": 0}
    known = []  # (id, role) of failures in KNOWN_FIRMWARE_FAILURES
    unknown_failures = 0
    rows = []
    chosen = [(case_id, case) for case_id, case in enumerate(CASES) if not wanted or case_id in wanted]
    guest_lost = 0  # directions in a row that found no test-peer control connection
    for case_id, (name, client, server, skip) in [entry for entry in chosen for _ in range(max(1, args.repeat))]:
        print("%d - %s..." % (case_id, name), end="", flush=True)
        if guest_lost >= GUEST_LOST_AFTER and not skip:
            # The guest stopped answering: each further case would wait out two control timeouts.
            counts["fail"] += 1
            unknown_failures += 1
            rows.append((case_id, name, "fail", "not run"))
            print("fail\n#   not run: the guest answered no control connection in the last %d directions" % guest_lost, flush=True)
            continue
        if skip:
            counts["skip"] += 1
            rows.append((case_id, name, "skip", skip))
            print("skip\n#   %s" % skip, flush=True)
            continue
        directions = []
        # Upstream's roles: a case without a server side (0) still runs both ways, the client
        # on either side of the link.
        for guest_is_server in (True, False):
            if args.direction == "server" and not guest_is_server or args.direction == "client" and guest_is_server:
                continue
            start = time.monotonic()
            status, detail, notes = run_direction(client, server, guest_is_server, args.guest_name)
            directions.append(("guest=server" if guest_is_server else "guest=client", status, detail, notes, time.monotonic() - start))
            guest_lost = guest_lost + 1 if NO_CONTROL in detail else 0
        statuses = {d[1] for d in directions}
        overall = "fail" if "fail" in statuses else "ok" if "ok" in statuses else "skip"
        for role, status, *_ in directions:
            if status == "fail" and args.guest_name.startswith("firmware") and (case_id, role) in KNOWN_FIRMWARE_FAILURES:
                known.append((case_id, role))
            elif status == "fail":
                unknown_failures += 1
        counts[overall] += 1
        rows.append((case_id, name, overall, "; ".join("%s %s%s" % (d[0], d[1], ": " + d[2] if d[2] else "") for d in directions)))
        print(overall, flush=True)
        for role, status, detail, notes, took in directions:
            print("#   %s %s %.2f s%s" % (role, status, took, (": " + detail) if detail else ""), flush=True)
            if status == "fail" and (case_id, role) in known:
                print("#     known failure: %s" % KNOWN_FIRMWARE_FAILURES[(case_id, role)], flush=True)
            for note in dict.fromkeys(notes):
                print("#     note: %s" % note, flush=True)
    print("\nconformance (%s, cid %d): %d ok, %d skip, %d fail%s" % (
        args.guest_name, GUEST_CID, counts["ok"], counts["skip"], counts["fail"],
        " (known: %s)" % ", ".join("%d %s" % k for k in known) if known else ""))
    # The closing line test tooling reads; known firmware failures fail it only with --strict.
    failed = unknown_failures + (len(known) if args.strict else 0)
    print("conformance: %d passed, %d failed%s" % (counts["ok"] + counts["skip"], counts["fail"],
                                                   ", %d of them known" % len(known) if known else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
