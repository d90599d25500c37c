#!/usr/bin/python3
"""A SOCKS5 client with GSS-API authentication written from RFC 1961, on python3-gssapi: the lab tests' client
for l2proxy's method X'01' (a different path to MIT Kerberos than the proxy's P/Invoke, so the two ends do not
share a misreading). Prints one JSON object: what each step saw. Exit 0 unless the script itself broke.

  rfc1961_client.py --proxy ADDR:PORT --service NAME --level clear|integrity|confidentiality|per-message
                    [--connect ADDR:PORT --payload N] [--nec] [--save-token FILE | --replay-token FILE]
                    [--send-level N] [--raw-token HEX] [--oversize N] [--source ADDR]
                    [--method none] [--upload N] [--repeat N --seconds S]
                    [--bind] [--garbage-data] [--udp N --udp-target ADDR:PORT [--udp-bad]] [--stretch-tickets]
With --repeat (l2lab bench-proxy's load): up to N sessions one after another for at most S seconds, and one JSON
object with the count, the failures and this process's CPU seconds in the loop.
"""
import argparse, json, os, socket, struct, sys, threading, time

import gssapi

LEVELS = {"clear": 0, "integrity": 1, "confidentiality": 2, "per-message": 3}


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def read_message(sock):
    """One RFC 1961 message: (mtyp, token); the abort X'01' X'FF' is (0xFF, b'')."""
    head = recv_exact(sock, 2)
    if head[0] != 1:
        raise ValueError(f"VER {head[0]:#x}")
    if head[1] == 0xFF:
        return 0xFF, b""
    length = struct.unpack("!H", recv_exact(sock, 2))[0]
    return head[1], recv_exact(sock, length)


def message(mtyp, token):
    return struct.pack("!BBH", 1, mtyp, len(token)) + token


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--proxy", required=True)
    p.add_argument("--service", required=True, help="hostbased service name: socks@vip.example")
    p.add_argument("--level", default="clear", choices=LEVELS)
    p.add_argument("--send-level", type=int, help="the level octet to send instead of --level's (a wrong level)")
    p.add_argument("--connect", help="ADDR:PORT of an echo server to CONNECT to")
    p.add_argument("--payload", type=int, default=0, help="bytes to send through the CONNECT and expect back")
    p.add_argument("--nec", action="store_true", help="send the protection level unwrapped (NEC's client)")
    p.add_argument("--save-token", help="write the first context token to this file")
    p.add_argument("--replay-token", help="send this file's bytes as the first context token")
    p.add_argument("--capture-only", action="store_true", help="with --save-token: write the token, send nothing")
    p.add_argument("--raw-token", help="send these hex bytes as the first context token (a malformed token)")
    p.add_argument("--oversize", type=int, help="announce a token of this LEN and send that many bytes")
    p.add_argument("--source", help="the client address to connect from (the cluster lab's client addresses)")
    p.add_argument("--method", default="gssapi", choices=["gssapi", "none"], help="none: the same session with method X'00' (the bench's reference)")
    p.add_argument("--upload", type=int, default=0, help="after the CONNECT send this many bytes (16 KiB messages) and close")
    p.add_argument("--garbage-data", action="store_true", help="after the CONNECT reply send a token of random bytes and report whether the proxy closes")
    p.add_argument("--bind", action="store_true", help="BIND instead of CONNECT; the client connects back itself and echoes --payload")
    p.add_argument("--udp", type=int, default=0, help="UDP ASSOCIATE, then N datagrams to --udp-target, each expected back")
    p.add_argument("--udp-target", help="ADDR:PORT of a UDP echo server")
    p.add_argument("--udp-bad", action="store_true", help="after the first datagram also send it again (a replay), unwrapped, and a garbage token")
    p.add_argument("--stretch-tickets", action="store_true",
                   help="first rewrite the end time the credential cache keeps beside each ticket to an hour ahead: an expired ticket looks valid to this client only")
    p.add_argument("--repeat", type=int, help="run up to N sessions and print their count (a load)")
    p.add_argument("--seconds", type=float, default=10, help="with --repeat: stop starting sessions after this long")
    a = p.parse_args()
    if a.stretch_tickets:
        stretch_tickets(os.environ["KRB5CCNAME"].removeprefix("FILE:"), int(time.time()) + 3600)
    if a.repeat is None:
        return session(a)
    done, failures, first, start, cpu = 0, 0, None, time.monotonic(), os.times()
    while done + failures < a.repeat and time.monotonic() - start < a.seconds:
        out = session(a)
        if out.get("echo") == "ok" or out.get("uploaded") == a.upload > 0:
            done += 1
        else:
            failures += 1
            first = first or out
    end = os.times()
    return {"sessions": done, "failures": failures, "first_failure": first, "seconds": time.monotonic() - start,
            "cpu_seconds": (end.user - cpu.user) + (end.system - cpu.system)}


def stretch_tickets(path, endtime):
    """Sets the end time of every credential in a FILE ccache (format version 4, MIT's) to endtime. The ticket inside
    is the KDC's, sealed with the service's key, so the service still sees its real end time: an expired ticket that
    MIT's initiator, which checks the cache's copy, sends anyway."""
    data = bytearray(open(path, "rb").read())
    if data[:2] != b"\x05\x04":
        raise ValueError(f"ccache version {data[:2].hex()}")
    pos = 4 + struct.unpack("!H", data[2:4])[0]

    def counted(p):
        return p + 4 + struct.unpack("!I", data[p:p + 4])[0]

    def principal(p):
        components = struct.unpack("!I", data[p + 4:p + 8])[0]
        p = counted(p + 8)
        for _ in range(components):
            p = counted(p)
        return p

    pos = principal(pos)
    while pos < len(data):
        pos = principal(principal(pos))
        pos = counted(pos + 2)  # keyblock: enctype, key
        struct.pack_into("!I", data, pos + 8, endtime)  # authtime, starttime, endtime, renew_till
        pos += 16 + 1 + 4  # times, is_skey, ticket flags
        for _ in range(2):  # addresses, authorization data: a count of (type, counted data)
            count = struct.unpack("!I", data[pos:pos + 4])[0]
            pos += 4
            for _ in range(count):
                pos = counted(pos + 2)
        pos = counted(counted(pos))  # ticket, second ticket
    open(path, "wb").write(data)


def session(a):
    out = {}
    host, port = a.proxy.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10, source_address=(a.source, 0) if a.source else None)
    try:
        wanted = 1 if a.method == "gssapi" else 0
        sock.sendall(bytes([5, 1, wanted]))
        out["method"] = recv_exact(sock, 2)[1]
        if out["method"] != wanted:
            return out
        if wanted == 0:
            return relay(a, sock, out, None, False, False)
        if a.oversize is not None:
            # The header alone: the server refuses from LEN, before the token (and unread bytes would turn its close into a reset).
            sock.sendall(struct.pack("!BBH", 1, 1, a.oversize))
            return read_reply(sock, out)
        if a.raw_token is not None or a.replay_token is not None:
            token = bytes.fromhex(a.raw_token) if a.raw_token is not None else open(a.replay_token, "rb").read()
            sock.sendall(message(1, token))
            return read_reply(sock, out)
        name = gssapi.Name(a.service, gssapi.NameType.hostbased_service)
        flags = [gssapi.RequirementFlag.mutual_authentication, gssapi.RequirementFlag.integrity,
                 gssapi.RequirementFlag.confidentiality, gssapi.RequirementFlag.replay_detection,
                 gssapi.RequirementFlag.out_of_sequence_detection]
        ctx = gssapi.SecurityContext(name=name, usage="initiate", flags=flags)
        token = ctx.step()
        if a.save_token:
            with open(a.save_token, "wb") as f:
                f.write(token)
            if a.capture_only:
                out["captured"] = "ok"
                return out
        while True:
            if token:
                sock.sendall(message(1, token))
            if ctx.complete:
                break
            mtyp, reply = read_message(sock)
            if mtyp != 1:
                out["auth"] = f"mtyp {mtyp:#x}"
                return out
            token = ctx.step(reply)
        out["auth"] = "ok"
        level = LEVELS[a.level] if a.send_level is None else a.send_level
        octet = bytes([level])
        sock.sendall(message(2, octet if a.nec else ctx.wrap(octet, False).message))
        mtyp, reply = read_message(sock)
        if mtyp != 2:
            out["level"] = f"mtyp {mtyp:#x}"
            return out
        chosen = (reply if a.nec else ctx.unwrap(reply).message)[0]
        out["level"] = chosen
        return relay(a, sock, out, ctx, chosen != 0, chosen in (2, 3))
    except (EOFError, ConnectionError, socket.timeout) as e:
        out["closed"] = str(e)
        return out
    except gssapi.exceptions.GSSError as e:
        out["gss_error"] = str(e)
        return out
    finally:
        sock.close()


def relay(a, sock, out, ctx, protect, encrypt):
    """The SOCKS request and the data after the method subnegotiation: wrapped when the level protects (session's handlers catch its errors)."""
    def send(data):
        sock.sendall(message(3, ctx.wrap(data, encrypt).message) if protect else data)

    def reply():
        if protect:
            mtyp, token = read_message(sock)
            return ctx.unwrap(token).message if mtyp == 3 else b""
        return recv_exact(sock, 10)

    if a.udp:
        return udp(a, sock, out, ctx, protect, encrypt, send)
    if a.bind:
        # BIND naming no address; this client is also the host that connects back, and echoes what it gets there.
        send(b"\x05\x02\x00\x01" + socket.inet_aton("0.0.0.0") + struct.pack("!H", 0))
        rep = reply()
        out["reply"] = rep[1] if len(rep) > 1 else -1
        if out["reply"] != 0 or len(rep) < 10:
            return out
        peer = socket.create_connection((socket.inet_ntoa(rep[4:8]), struct.unpack("!H", rep[8:10])[0]), timeout=10)
        threading.Thread(target=echo, args=(peer,), daemon=True).start()
        rep = reply()
        out["second_reply"] = rep[1] if len(rep) > 1 else -1
        if out["second_reply"] != 0:
            return out
    elif not a.connect:
        return out
    else:
        dhost, dport = a.connect.rsplit(":", 1)
        send(b"\x05\x01\x00\x01" + socket.inet_aton(dhost) + struct.pack("!H", int(dport)))
        rep = reply()
        out["reply"] = rep[1] if len(rep) > 1 else -1
        if out["reply"] != 0:
            return out
        if a.garbage_data:
            # An encapsulation message whose token is random bytes: the proxy must end the session.
            sock.sendall(message(3, os.urandom(48)))
            try:
                out["after_garbage"] = "closed" if sock.recv(1) == b"" else "data"
            except ConnectionError:
                out["after_garbage"] = "closed"
            return out
    if a.upload > 0:
        block = os.urandom(16384)
        sent = 0
        while sent < a.upload:
            send(block[:min(len(block), a.upload - sent)])
            sent += min(len(block), a.upload - sent)
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass
        out["uploaded"] = sent
        return out
    if a.payload <= 0:
        return out
    payload = os.urandom(a.payload)
    received = b""
    sent = 0
    while sent < len(payload):
        chunk = payload[sent:sent + 8192]
        send(chunk)
        sent += len(chunk)
        while len(received) < sent:
            if protect:
                mtyp, token = read_message(sock)
                u = ctx.unwrap(token)
                if encrypt and not u.encrypted:
                    out["echo"] = "unencrypted data at a confidential level"
                    return out
                received += u.message
            else:
                received += sock.recv(65536)
    out["echo"] = "ok" if received == payload else "mismatch"
    return out


def echo(peer):
    """The connecting host of a BIND: sends back what it receives until the proxy closes."""
    try:
        while data := peer.recv(65536):
            peer.sendall(data)
    except OSError:
        pass
    finally:
        peer.close()


def udp(a, sock, out, ctx, protect, encrypt, send):
    """UDP ASSOCIATE; each datagram, SOCKS UDP header included, is one encapsulation message when the level protects (RFC 1961 section 5)."""
    send(b"\x05\x03\x00\x01" + socket.inet_aton("0.0.0.0") + struct.pack("!H", 0))
    if protect:
        mtyp, token = read_message(sock)
        rep = ctx.unwrap(token).message if mtyp == 3 else b""
    else:
        rep = recv_exact(sock, 10)
    out["reply"] = rep[1] if len(rep) > 1 else -1
    if out["reply"] != 0 or len(rep) < 10 or rep[3] != 1:
        return out
    relay_addr = (socket.inet_ntoa(rep[4:8]), struct.unpack("!H", rep[8:10])[0])
    thost, tport = a.udp_target.rsplit(":", 1)
    header = b"\x00\x00\x00\x01" + socket.inet_aton(thost) + struct.pack("!H", int(tport))
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(2)
    u.bind((a.source or "0.0.0.0", 0))
    echoed, unencrypted = 0, 0
    try:
        for i in range(a.udp):
            datagram = header + struct.pack("!I", i) + os.urandom(60)
            wire = message(3, ctx.wrap(datagram, encrypt).message) if protect else datagram
            u.sendto(wire, relay_addr)
            if a.udp_bad and i == 0:
                u.sendto(wire, relay_addr)
                u.sendto(datagram, relay_addr)
                u.sendto(message(3, os.urandom(48)), relay_addr)
            try:
                data = u.recv(65536)
            except socket.timeout:
                continue
            if protect:
                if len(data) < 4 or data[:2] != b"\x01\x03" or struct.unpack("!H", data[2:4])[0] != len(data) - 4:
                    continue
                w = ctx.unwrap(data[4:])
                unencrypted += 0 if w.encrypted or not encrypt else 1
                data = w.message
            if data == datagram:
                echoed += 1
        # Anything more is a datagram the relay should have dropped, echoed.
        u.settimeout(0.5)
        extra = 0
        try:
            while True:
                u.recv(65536)
                extra += 1
        except socket.timeout:
            pass
    finally:
        u.close()
    out["udp_echoed"] = echoed
    out["udp_extra"] = extra
    out["udp_unencrypted"] = unencrypted
    return out


def read_reply(sock, out):
    try:
        mtyp, _ = read_message(sock)
        out["auth"] = "abort" if mtyp == 0xFF else f"mtyp {mtyp:#x}"
    except (EOFError, ConnectionError, socket.timeout) as e:
        out["closed"] = str(e)
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
