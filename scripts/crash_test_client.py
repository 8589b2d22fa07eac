#!/usr/bin/env python3
"""The client and the checker behind scripts/crash-test (Python standard library only).

  crash_test_client.py load --url URL --token T [--security-token S --revoke] --keys A.pub,B.pub
                            --certs FILE --revocations FILE [--threads 16]
      Sustained issuance until SIGTERM: every 201 from POST /v1/certificates is appended to
      --certs as "SERIAL<TAB>CERTIFICATE LINE", flushed at once. With --revoke, one more thread
      revokes the newest serial received, again and again, through POST /v1/revocations, so that
      KRL rewrites are in flight when the service is killed; it writes "attempt SERIAL" before
      each request and "ack SERIAL KRLVERSION" after each 201. Prints one summary line at the end.

  crash_test_client.py check --work DIR --list LIST.json --krl KRL [--ssh-keygen PATH]
      Compares what every round's clients received (DIR/round-*.certs, DIR/round-*.revs) with the
      ledger (LIST.json, the output of `sshca list --json`) and the KRL (the one published after
      the restart: it must revoke every revocation in the ledger, acknowledged or not). Prints
      one line per finding ("FINDING: ..."), then "check: ..." with the counts ("stale": revoked
      in the ledger, never acknowledged, missing from the KRL). Exits 1 when there is a finding.

  crash_test_client.py krl-version KRL
      Prints the version in a KRL's header.
"""
import argparse
import base64
import glob
import http.client
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse


# ---------------------------------------------------------------------------------------------
# load

def load(args):
    url = urllib.parse.urlsplit(args.url)
    host, port = url.hostname, url.port
    keys = []
    for path in args.keys.split(","):
        with open(path) as f:
            keys.append(f.read().strip())
    stop = threading.Event()
    lock = threading.Lock()
    certs_out = open(args.certs, "a", buffering=1)
    revs_out = open(args.revocations, "a", buffering=1) if args.revocations else None
    received = []          # serials, in the order received
    stats = {"received": 0, "errors": 0, "statuses": {}, "revoked": 0, "revoke_errors": 0,
             "revoke_statuses": {}}

    def on_term(signum, frame):
        stop.set()
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    def connect():
        return http.client.HTTPConnection(host, port, timeout=args.timeout)

    def post(conn, path, token, body):
        conn.request("POST", path, body=json.dumps(body),
                     headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()

    def post_or_reconnect(conn, path, token, body, error_counter):
        """(connection, status, body); status None when the service is gone (killed) or the
        connection broke: no answer, so nothing counts as done. The connection is then a new one."""
        try:
            status, data = post(conn, path, token, body)
            return conn, status, data
        except (OSError, http.client.HTTPException):
            with lock:
                stats[error_counter] += 1
            conn.close()
            stop.wait(0.02)
            return connect(), None, None

    def issuer(index):
        conn = connect()
        n = index
        while not stop.is_set():
            key = keys[n % len(keys)]
            n += 1
            conn, status, data = post_or_reconnect(conn, "/v1/certificates", args.token, {"publicKey": key}, "errors")
            if status is None:
                continue
            if status == 201:
                issued = json.loads(data)
                serial = int(issued["serial"])
                line = issued["certificate"].strip()
                with lock:
                    certs_out.write("%d\t%s\n" % (serial, line))
                    certs_out.flush()
                    received.append(serial)
                    stats["received"] += 1
            else:
                with lock:
                    stats["statuses"][status] = stats["statuses"].get(status, 0) + 1
                if status in (429, 503):
                    stop.wait(0.05)
        conn.close()

    def revoker():
        conn = connect()
        revoked = set()
        while not stop.is_set():
            with lock:
                candidates = [s for s in received[-64:] if s not in revoked]
            if not candidates:
                stop.wait(0.01)
                continue
            serial = candidates[-1]
            revoked.add(serial)
            revs_out.write("attempt %d\n" % serial)
            revs_out.flush()
            conn, status, data = post_or_reconnect(conn, "/v1/revocations", args.security_token,
                                                   {"serial": serial, "reason": "crash-test"}, "revoke_errors")
            if status is None:
                continue
            if status == 201:
                answer = json.loads(data)
                revs_out.write("ack %d %d\n" % (serial, int(answer["krlVersion"])))
                revs_out.flush()
                with lock:
                    stats["revoked"] += 1
            else:
                with lock:
                    stats["revoke_statuses"][status] = stats["revoke_statuses"].get(status, 0) + 1
        conn.close()

    threads = [threading.Thread(target=issuer, args=(i,), daemon=True) for i in range(args.threads)]
    if args.revoke:
        threads.append(threading.Thread(target=revoker, daemon=True))
    for t in threads:
        t.start()
    while not stop.is_set():
        stop.wait(0.5)
    for t in threads:
        t.join(args.timeout + 5)
    certs_out.close()
    if revs_out:
        revs_out.close()
    print("received=%d errors=%d other=%s revoked=%d revoke_errors=%d revoke_other=%s" % (
        stats["received"], stats["errors"], json.dumps(stats["statuses"], sort_keys=True),
        stats["revoked"], stats["revoke_errors"], json.dumps(stats["revoke_statuses"], sort_keys=True)))


# ---------------------------------------------------------------------------------------------
# check

def read_string(blob, offset):
    (length,) = struct.unpack_from(">I", blob, offset)
    offset += 4
    if offset + length > len(blob):
        raise ValueError("string runs past the end")
    return blob[offset:offset + length], offset + length


def embedded_serial(b64):
    """The serial inside an OpenSSH certificate blob, or None for a type this does not parse."""
    blob = base64.b64decode(b64, validate=True)
    kind, o = read_string(blob, 0)
    _nonce, o = read_string(blob, o)
    kind = kind.decode()
    if kind == "ssh-ed25519-cert-v01@openssh.com":
        _, o = read_string(blob, o)
    elif kind.startswith("ecdsa-sha2-"):
        _, o = read_string(blob, o)
        _, o = read_string(blob, o)
    elif kind == "ssh-rsa-cert-v01@openssh.com":
        _, o = read_string(blob, o)
        _, o = read_string(blob, o)
    else:
        return None
    (serial,) = struct.unpack_from(">Q", blob, o)
    return serial


def krl_verdicts(ssh_keygen, krl, lines):
    """ssh-keygen -Q's verdict ("ok" or "REVOKED") for each certificate line, in one run."""
    verdicts = {}
    if not lines:
        return verdicts
    with tempfile.TemporaryDirectory(prefix="crash-test-krl-") as tmp:
        paths = {}
        for serial, line in lines.items():
            path = os.path.join(tmp, "c%d-cert.pub" % serial)
            with open(path, "w") as f:
                f.write(line + "\n")
            paths[path] = serial
        run = subprocess.run([ssh_keygen, "-Q", "-f", krl] + list(paths), capture_output=True, text=True)
        if run.returncode not in (0, 1):
            raise RuntimeError("ssh-keygen -Q -f %s failed (exit %d): %s" % (krl, run.returncode, run.stderr.strip()))
        for out in run.stdout.splitlines():
            path = out.split(" ", 1)[0].rstrip(":")
            if path in paths:
                verdicts[paths[path]] = "REVOKED" if out.endswith(": REVOKED") else ("ok" if out.endswith(": ok") else out)
    return verdicts


def check(args):
    findings = []

    def finding(text):
        findings.append(text)
        print("FINDING: " + text)

    with open(args.list) as f:
        listed = json.load(f)
    if isinstance(listed, dict):
        listed = listed.get("certificates", [])
    ledger = {}
    for entry in listed:
        serial = int(entry["serial"])
        if serial in ledger:
            finding("serial %d appears twice in the ledger (sshca list --json)" % serial)
        ledger[serial] = entry

    # Everything any client received, over all rounds so far.
    received = {}
    where = {}
    for path in sorted(glob.glob(os.path.join(args.work, "round-*.certs"))):
        name = os.path.basename(path)
        with open(path) as f:
            for number, text in enumerate(f, 1):
                if not text.endswith("\n"):
                    finding("%s:%d: a torn line in the client's own record (the client was not killed; this is a script bug)" % (name, number))
                    continue
                serial_text, line = text.rstrip("\n").split("\t", 1)
                serial = int(serial_text)
                if serial in received:
                    finding("serial %d was received twice in a 201 (%s and %s:%d)%s" % (
                        serial, where[serial], name, number,
                        "" if received[serial] == line else ", with different certificates"))
                    continue
                received[serial] = line
                where[serial] = "%s:%d" % (name, number)

    mismatched = missing = 0
    for serial, line in received.items():
        fields = line.split()
        try:
            inner = embedded_serial(fields[1])
        except Exception as error:
            finding("serial %d (%s): the certificate received does not parse: %s" % (serial, where[serial], error))
            continue
        if inner is not None and inner != serial:
            finding("serial %d (%s): the certificate received carries serial %d" % (serial, where[serial], inner))
        entry = ledger.get(serial)
        if entry is None:
            missing += 1
            if missing <= 20:
                finding("serial %d was answered 201 (%s) but is not in the ledger" % (serial, where[serial]))
            continue
        stored = entry.get("certificate", "").split()
        if len(stored) < 2 or stored[1] != fields[1]:
            mismatched += 1
            if mismatched <= 20:
                finding("serial %d (%s): the ledger holds a different certificate than the one answered" % (serial, where[serial]))
    if missing > 20:
        finding("... %d received serials missing from the ledger in all" % missing)
    if mismatched > 20:
        finding("... %d certificates differ from the ledger in all" % mismatched)

    # Revocations: every acknowledged one is in the ledger and in the KRL; every revocation in
    # the ledger was asked for; the KRL revokes nothing else.
    attempted, acked = set(), {}
    for path in sorted(glob.glob(os.path.join(args.work, "round-*.revs"))):
        with open(path) as f:
            for text in f:
                parts = text.split()
                if len(parts) >= 2 and parts[0] == "attempt":
                    attempted.add(int(parts[1]))
                elif len(parts) >= 3 and parts[0] == "ack":
                    acked[int(parts[1])] = int(parts[2])
    ledger_revoked = {s for s, e in ledger.items() if e.get("status") == "revoked" or e.get("revocation")}
    for serial in sorted(set(acked) - ledger_revoked):
        finding("serial %d: its revocation was acknowledged (201, KRL version %d) but the ledger does not show it revoked" % (serial, acked[serial]))
    for serial in sorted(ledger_revoked - attempted):
        finding("serial %d is revoked in the ledger, but no client asked for that" % serial)

    to_check = {s: ledger[s]["certificate"].strip() for s in ledger_revoked}
    unrevoked = sorted(s for s in ledger if s not in ledger_revoked)
    for s in unrevoked[-args.sample:]:
        to_check[s] = ledger[s]["certificate"].strip()
    try:
        verdicts = krl_verdicts(args.ssh_keygen, args.krl, to_check)
    except Exception as error:
        finding("the KRL %s cannot be checked: %s" % (args.krl, error))
        verdicts = {}
    stale = []
    for serial in sorted(to_check):
        verdict = verdicts.get(serial)
        if verdict is None and verdicts:
            finding("serial %d: ssh-keygen -Q gave no verdict" % serial)
        elif serial in ledger_revoked and verdict == "ok":
            if serial in acked:
                finding("serial %d: its revocation was acknowledged (KRL version %d) but %s does not revoke it" % (serial, acked[serial], args.krl))
            else:
                stale.append(serial)
        elif serial not in ledger_revoked and verdict == "REVOKED":
            finding("serial %d is not revoked in the ledger, but %s revokes it" % (serial, args.krl))
    if stale:
        finding("serial(s) %s revoked in the ledger (the request was cut by the kill, never acknowledged) but not in %s "
                "after the restart: the revocation was committed and the service died before publishing the KRL, and the "
                "restarted service did not republish it" % (",".join(map(str, stale)), args.krl))

    print("check: ledger=%d received=%d acked_revocations=%d ledger_revoked=%d krl_checked=%d stale=%d findings=%d" % (
        len(ledger), len(received), len(acked), len(ledger_revoked), len(verdicts), len(stale), len(findings)))
    return 1 if findings else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("load")
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--security-token")
    p.add_argument("--revoke", action="store_true")
    p.add_argument("--keys", required=True)
    p.add_argument("--certs", required=True)
    p.add_argument("--revocations")
    p.add_argument("--threads", type=int, default=16)
    p.add_argument("--timeout", type=float, default=10.0)
    c = sub.add_parser("check")
    c.add_argument("--work", required=True)
    c.add_argument("--list", required=True)
    c.add_argument("--krl", required=True)
    c.add_argument("--ssh-keygen", default="ssh-keygen")
    c.add_argument("--sample", type=int, default=200, help="unrevoked certificates checked against the KRL (the newest)")
    v = sub.add_parser("krl-version")
    v.add_argument("krl")
    args = parser.parse_args()
    if args.command == "krl-version":
        with open(args.krl, "rb") as f:
            head = f.read(20)
        if len(head) < 20 or head[:8] != b"SSHKRL\n\0":
            print("?")
            return 1
        print(struct.unpack(">Q", head[12:20])[0])
        return 0
    if args.command == "load":
        if args.revoke and not (args.security_token and args.revocations):
            parser.error("--revoke needs --security-token and --revocations")
        load(args)
        return 0
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
