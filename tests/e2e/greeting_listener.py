"""Host listener for the firmware's boot greeting (CID 2 port 4050; over the vhost-user backend
<uds-path>_4050, see transport.py); started before the guest boots, so the greeting sent once at
boot has somewhere to land.
Writes what the first connection sent (until EOF) to $RESULTS/greeting.txt and its peer to stdout.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import transport  # noqa: E402

PORT = 4050
ACCEPT_TIMEOUT = 300
READ_TIMEOUT = 20


def main():
    results = os.environ["RESULTS"]
    server = transport.listen_host_port(PORT)
    server.settimeout(ACCEPT_TIMEOUT)
    if os.environ.get("PRE_READY"):
        open(os.environ["PRE_READY"], "w").close()
    print("greeting listener: listening on port %d" % PORT, flush=True)
    conn, peer = server.accept()
    conn.settimeout(READ_TIMEOUT)
    received = b""
    try:
        while len(received) < 4096:
            data = conn.recv(4096)
            if not data:
                break
            received += data
    except OSError as e:
        print("greeting listener: read stopped: %s" % e, flush=True)
    with open(os.path.join(results, "greeting.txt.new"), "wb") as out:
        out.write(received)
    os.rename(os.path.join(results, "greeting.txt.new"), os.path.join(results, "greeting.txt"))
    source = "cid %d port %d" % peer if isinstance(peer, tuple) else "the vhost-user backend"
    print("greeting listener: %d bytes from %s" % (len(received), source), flush=True)
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
