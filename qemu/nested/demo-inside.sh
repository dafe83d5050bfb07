#!/bin/bash
# The live demo's host side, run on the vhost-vsock host by qemu/demo.sh (via qemu/vsock-host.sh):
# the boot greeting, a python echo, ncat and socat exchanges with the firmware (CID $VSOCK_CID),
# then the tail of the firmware log.
set -u
cid=${VSOCK_CID:-33}
show() { printf '  %-34s %s\n' "$1" "$2"; }

for _ in $(seq 100); do [ -s "$RESULTS/greeting.txt" ] && break; sleep 0.1; done
show "greeting on host port 4050:" "$(cat "$RESULTS/greeting.txt" 2>/dev/null || echo '(none yet)')"

reply=$(/usr/bin/python3 - "$cid" <<'PY'
import socket, sys, time
cid = int(sys.argv[1])
deadline = time.monotonic() + 20
while True:
    s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect((cid, 1234))
        break
    except OSError:
        s.close()
        if time.monotonic() > deadline:
            raise
        time.sleep(0.1)
s.sendall(b"hello from python")
print(s.recv(100).decode(errors="replace"))
s.close()
PY
)
show "python  -> echo 1234, reply:" "$reply"
show "ncat    -> echo 1234, reply:" "$(echo 'hello from ncat' | timeout 20 ncat --vsock "$cid" 1234)"
show "socat   -> echo 1234, reply:" "$(echo 'hello from socat' | timeout 20 socat -t 5 - "VSOCK-CONNECT:$cid:1234")"
show "socat   -> source 1236, 32 bytes:" "$(echo 32 | timeout 20 socat -t 5 - "VSOCK-CONNECT:$cid:1236" | od -An -tx1 | tr -s ' \n' ' ')"
show "socat   -> sink 1235, answer:" "$(head -c 100000 /dev/zero | timeout 20 socat -t 5 - "VSOCK-CONNECT:$cid:1235")"
echo "  firmware log (tail):"
tail -n 12 "$FW_LOG" | sed 's/^/    | /'
