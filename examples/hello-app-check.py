#!/usr/bin/env python3
"""Host-side check for examples/hello-app.c (run inside the vhost-vsock host, e.g.
qemu/vsock-host.sh --image <APP image> --ready 'hello-app: .*listening' -- python3 examples/hello-app-check.py).
Connects to CID $VSOCK_CID (33) port 2000, sends text, expects it back uppercased; exit 0 on success."""
import os
import socket
import sys
import time

CID = int(os.environ.get("VSOCK_CID", "33"))
PORT = 2000


def connect(deadline):
    while True:
        s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        s.settimeout(10)
        try:
            s.connect((CID, PORT))
            return s
        except OSError:
            s.close()
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def main():
    message = b"hello, vsock! " * 1000 + b"the end\n"
    s = connect(time.time() + 20)
    s.sendall(message)
    s.shutdown(socket.SHUT_WR)
    reply = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        reply += chunk
    s.close()
    ok = reply == message.upper()
    print("hello-app: sent %d bytes, got %d, %s" % (len(message), len(reply), "ok" if ok else "MISMATCH"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
