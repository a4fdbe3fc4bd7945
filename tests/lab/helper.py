#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Host (L1) side helpers for the lab's device cases; standard library only.

usage: helper.py echo-client (--uds PATH | --cid CID) PORT FILE
         Connect to the guest's vsock port PORT, either through a VMM's unix socket PATH with
         Firecracker's handshake ("CONNECT PORT\\n" -> "OK HOSTPORT\\n") or directly over
         AF_VSOCK to CID; send FILE while reading the echo back; exit 0 when the echo is
         byte-for-byte FILE. Prints "echo-client sent=SHA back=SHA".
       helper.py echo-server (--uds PATH | --vsock PORT) SIZE
         Serve one connection (a guest connecting to the host, CID 2): echo what arrives until
         EOF or SIZE bytes, then close. --uds listens on the unix socket PATH (a VMM forwards
         guest connections to port P to "<uds>_P"); --vsock listens on AF_VSOCK port PORT.
       helper.py dns ADDR NAME IP
         A tiny DNS server on UDP ADDR:53 answering A queries for NAME with IP (NXDOMAIN for
         other names, no data for other types), for user-mode networking's 10.0.2.3.
Every network wait has a timeout (60 s, 300 s for the server's accept).
"""
import hashlib
import os
import socket
import struct
import sys
import threading


def fail(msg):
    print(f"helper: error: {msg}", file=sys.stderr)
    sys.exit(1)


def vsock_or_uds_connect(args, port):
    if args[0] == "--uds":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect(args[1])
        s.sendall(f"CONNECT {port}\n".encode())
        line = b""
        while not line.endswith(b"\n"):
            c = s.recv(1)
            if not c:
                fail(f"the VMM closed the connection during the handshake (got {line!r})")
            line += c
        if not line.startswith(b"OK "):
            fail(f"handshake answer {line!r}, not 'OK <port>'")
        return s
    if args[0] == "--cid":
        s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect((int(args[1]), port))
        return s
    fail("want --uds PATH or --cid CID")


def echo_client(argv):
    if len(argv) != 4:
        fail("echo-client (--uds PATH | --cid CID) PORT FILE")
    data = open(argv[3], "rb").read()
    s = vsock_or_uds_connect(argv[:2], int(argv[2]))
    err = []

    def sender():
        try:
            s.sendall(data)
        except OSError as e:
            err.append(e)

    t = threading.Thread(target=sender)
    t.start()
    back = bytearray()
    try:
        while len(back) < len(data):
            chunk = s.recv(min(65536, len(data) - len(back)))
            if not chunk:
                break
            back += chunk
    except OSError as e:
        err.append(e)
    t.join(60)
    s.close()
    sent, got = hashlib.sha256(data).hexdigest(), hashlib.sha256(back).hexdigest()
    print(f"echo-client sent={sent} back={got} bytes={len(back)}/{len(data)}")
    if err:
        fail(f"socket error: {err[0]}")
    sys.exit(0 if sent == got else 1)


def echo_server(argv):
    if len(argv) != 3:
        fail("echo-server (--uds PATH | --vsock PORT) SIZE")
    if argv[0] == "--uds":
        try:
            os.unlink(argv[1])
        except FileNotFoundError:
            pass
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ls.bind(argv[1])
    elif argv[0] == "--vsock":
        ls = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        ls.bind((socket.VMADDR_CID_ANY, int(argv[1])))
    else:
        fail("want --uds PATH or --vsock PORT")
    size = int(argv[2])
    ls.listen(1)
    ls.settimeout(300)
    print("echo-server listening", flush=True)
    c, _ = ls.accept()
    c.settimeout(60)
    n = 0
    h = hashlib.sha256()
    while n < size:
        chunk = c.recv(min(65536, size - n))
        if not chunk:
            break
        h.update(chunk)
        c.sendall(chunk)
        n += len(chunk)
    try:
        c.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    c.close()
    ls.close()
    print(f"echo-server echoed={n} sha={h.hexdigest()}")


def dns(argv):
    if len(argv) != 3:
        fail("dns ADDR NAME IP")
    addr, name, ip = argv[0], argv[1].lower().rstrip("."), socket.inet_aton(argv[2])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 53))
    print("dns listening", flush=True)
    while True:
        q, peer = s.recvfrom(512)
        if len(q) < 12:
            continue
        qid, flags, qd = struct.unpack(">HHH", q[:6])
        if qd != 1:
            continue
        i, labels = 12, []
        while i < len(q) and q[i]:
            labels.append(q[i + 1:i + 1 + q[i]].decode(errors="replace"))
            i += 1 + q[i]
        qend = i + 5
        if qend > len(q):
            continue
        qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
        qname = ".".join(labels).lower()
        question = q[12:qend]
        rd = flags & 0x0100
        if qname != name:
            hdr = struct.pack(">HHHHHH", qid, 0x8080 | rd | 3, 1, 0, 0, 0)   # NXDOMAIN
            s.sendto(hdr + question, peer)
            continue
        if qtype != 1:
            s.sendto(struct.pack(">HHHHHH", qid, 0x8480 | rd, 1, 0, 0, 0) + question, peer)
            continue
        answer = struct.pack(">HHHLH", 0xC00C, 1, 1, 60, 4) + ip
        s.sendto(struct.pack(">HHHHHH", qid, 0x8480 | rd, 1, 1, 0, 0) + question + answer, peer)


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    cmds = {"echo-client": echo_client, "echo-server": echo_server, "dns": dns}
    if sys.argv[1] not in cmds:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    cmds[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
