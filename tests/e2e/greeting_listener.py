"""Host listener for the firmware's boot greeting (CID 2 port 4050); started by vsock-host.sh --pre
before the inner QEMU, so the greeting sent once at boot has somewhere to land.
Writes what the first connection sent (until EOF) to $RESULTS/greeting.txt and its peer to stdout.
"""
import os
import socket
import sys

PORT = 4050
ACCEPT_TIMEOUT = 300
READ_TIMEOUT = 20


def main():
    results = os.environ["RESULTS"]
    server = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    server.bind((socket.VMADDR_CID_ANY, PORT))
    server.listen(4)
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
    print("greeting listener: %d bytes from cid %d port %d" % (len(received), peer[0], peer[1]), flush=True)
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
