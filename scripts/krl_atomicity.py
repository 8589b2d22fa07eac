#!/usr/bin/env python3
"""The worker behind scripts/krl-atomicity (Python standard library only).

  krl_atomicity.py --url URL --token T --security-token S --home DIR --sshca BINARY
                   --key KEY.pub --probe PROBE.pub --rewrites N [--reads-per-rewrite 3]

Issues ceil(N/2) certificates, then rewrites DIR/revoked.krl N times from two writers at once:
  - the service: POST /v1/revocations of successive serials, ceil(N/2) times;
  - the CLI: `sshca krl write --home DIR --output DIR/revoked.krl`, floor(N/2) times;
both at the same time, so the two kinds of writer race for the file. Meanwhile two readers run until the writers are done:
  - ssh-keygen -Q -f DIR/revoked.krl PROBE.pub, again and again: a read is valid when it exits
    0 or 1 and prints nothing about the KRL on stderr; anything else is a torn or invalid read;
  - a Python reader, as fast as it goes, that reads the file in one go and parses its whole
    framing (header, sections, signature sections), and follows its version: a version lower
    than one already seen is a regression (an older KRL put back over a newer one).
So that the ssh-keygen figure means something, the writers keep pace with that reader: a writer
starts rewrite number k only once ssh-keygen has made 3*k reads (--reads-per-rewrite), waiting
at most 1 s for it. Fewer than 3 ssh-keygen reads per rewrite at the end fails the run.
At the end the file must hold the newest version anyone published and revoke every serial whose
revocation was acknowledged. Prints the figures, last the headline
  krl-atomicity: R rewrites; ssh-keygen reader: K reads (X per rewrite), T torn or invalid;
  python reader: P reads, Q torn or invalid, G regressions
(one line); exits 1 on any torn or invalid read by either reader, regression, failed rewrite,
final inconsistency, or too few ssh-keygen reads.
"""
import argparse
import http.client
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

MAGIC = b"SSHKRL\n\0"


def parse_krl(data):
    """Checks the complete framing of an OpenSSH KRL; returns its version. Raises ValueError."""
    if len(data) < 8 + 4 + 8 + 8 + 8 or data[:8] != MAGIC:
        raise ValueError("no KRL magic (%d bytes)" % len(data))
    o = 8
    (format_version,) = struct.unpack_from(">I", data, o)
    o += 4
    if format_version != 1:
        raise ValueError("format version %d" % format_version)
    (version, _date, _flags) = struct.unpack_from(">QQQ", data, o)
    o += 24

    def string(o):
        if o + 4 > len(data):
            raise ValueError("truncated at %d" % o)
        (n,) = struct.unpack_from(">I", data, o)
        if o + 4 + n > len(data):
            raise ValueError("a %d-byte string at %d runs past the end (%d bytes)" % (n, o, len(data)))
        return data[o + 4:o + 4 + n], o + 4 + n

    _reserved, o = string(o)
    _comment, o = string(o)
    signatures = 0
    while o < len(data):
        kind = data[o]
        o += 1
        if kind == 4:  # KRL_SECTION_SIGNATURE: string key, string signature
            _key, o = string(o)
            _sig, o = string(o)
            signatures += 1
        elif kind in (1, 2, 3, 5, 255):
            if signatures:
                raise ValueError("a revocation section after a signature")
            _section, o = string(o)
        else:
            raise ValueError("unknown section type %d at %d" % (kind, o - 1))
    return version


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.values = {}
        self.examples = []

    def add(self, name, n=1, example=None):
        with self.lock:
            self.values[name] = self.values.get(name, 0) + n
            if example and len(self.examples) < 20:
                self.examples.append("%s: %s" % (name, example))

    def __getitem__(self, name):
        with self.lock:
            return self.values.get(name, 0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--security-token", required=True)
    parser.add_argument("--home", required=True)
    parser.add_argument("--sshca", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--probe", required=True)
    parser.add_argument("--rewrites", type=int, default=1000)
    parser.add_argument("--ssh-keygen", default="ssh-keygen")
    parser.add_argument("--reads-per-rewrite", type=int, default=3,
                        help="ssh-keygen -Q reads wanted per rewrite; the writers wait (at most --pace-wait s) for them")
    parser.add_argument("--pace-wait", type=float, default=1.0)
    args = parser.parse_args()

    url = urllib.parse.urlsplit(args.url)
    krl_path = os.path.join(args.home, "revoked.krl")
    with open(args.key) as f:
        key_line = f.read().strip()
    service_rewrites = (args.rewrites + 1) // 2
    cli_rewrites = args.rewrites // 2
    counts = Counters()

    def post(conn, path, token, body):
        conn.request("POST", path, body=json.dumps(body),
                     headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()

    # 1. The certificates to revoke, one per service rewrite.
    started = time.monotonic()
    issued = {}
    issue_lock = threading.Lock()

    def issue(n):
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        for _ in range(n):
            status, data = post(conn, "/v1/certificates", args.token, {"publicKey": key_line})
            if status != 201:
                raise SystemExit("krl-atomicity: issuing failed: HTTP %d %s" % (status, data[:300]))
            answer = json.loads(data)
            with issue_lock:
                issued[int(answer["serial"])] = answer["certificate"].strip()
        conn.close()

    workers = 4
    share = [service_rewrites // workers + (1 if i < service_rewrites % workers else 0) for i in range(workers)]
    issuers = [threading.Thread(target=issue, args=(n,)) for n in share]
    for t in issuers:
        t.start()
    for t in issuers:
        t.join()
    if len(issued) != service_rewrites:
        raise SystemExit("krl-atomicity: issued %d certificates, wanted %d" % (len(issued), service_rewrites))
    serials = sorted(issued)
    print("krl-atomicity: issued %d certificates (serials %d-%d) in %.1f s" % (
        len(serials), serials[0], serials[-1], time.monotonic() - started), flush=True)

    # 2. Readers.
    done = threading.Event()
    published = {"max": 0}
    published_lock = threading.Lock()

    def note_published(version):
        with published_lock:
            published["max"] = max(published["max"], version)

    # Pacing: rewrite k (counting both writers) starts once ssh-keygen has read k * N times.
    pace = threading.Condition()
    pace_state = {"started": 0, "keygen_reads": 0}

    def keep_pace():
        with pace:
            pace_state["started"] += 1
            need = args.reads_per_rewrite * pace_state["started"]
            deadline = time.monotonic() + args.pace_wait
            while pace_state["keygen_reads"] < need:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    counts.add("pace_timeouts")
                    break
                pace.wait(remaining)

    def keygen_reader():
        while not done.is_set():
            run = subprocess.run([args.ssh_keygen, "-Q", "-f", krl_path, args.probe], capture_output=True, text=True)
            counts.add("reads")
            with pace:
                pace_state["keygen_reads"] += 1
                pace.notify_all()
            err = run.stderr.lower()
            if run.returncode not in (0, 1) or "krl" in err or "error" in err or "invalid" in err:
                counts.add("invalid", example="ssh-keygen exit %d: %s %s" % (
                    run.returncode, run.stderr.strip()[:200], run.stdout.strip()[:100]))
            elif run.returncode == 1:
                counts.add("probe_revoked")

    regressions = []  # (version read, higher version read before it), once each

    def python_reader():
        highest = 0
        previous = None
        while not done.is_set():
            try:
                with open(krl_path, "rb") as f:
                    data = f.read()
            except OSError as error:
                counts.add("py_reads")
                counts.add("py_invalid", example="open/read: %s" % error)
                continue
            counts.add("py_reads")
            try:
                version = parse_krl(data)
            except ValueError as error:
                counts.add("py_invalid", example=str(error))
                continue
            if version < highest:
                counts.add("regressed_reads")
                if (version, highest) not in regressions:
                    regressions.append((version, highest))
            if version != previous:
                counts.add("version_changes")
                previous = version
            highest = max(highest, version)
            time.sleep(0.0005)

    # 3. Writers.
    acked = {}

    def service_writer():
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        for serial in serials[:service_rewrites]:
            keep_pace()
            status, data = post(conn, "/v1/revocations", args.security_token, {"serial": serial, "reason": "krl-atomicity"})
            counts.add("service_rewrites")
            if status != 201:
                counts.add("write_failures", example="POST /v1/revocations serial %d: HTTP %d %s" % (serial, status, data[:200]))
                continue
            version = int(json.loads(data)["krlVersion"])
            acked[serial] = version
            note_published(version)
        conn.close()

    def cli_writer():
        for _ in range(cli_rewrites):
            keep_pace()
            run = subprocess.run([args.sshca, "krl", "write", "--home", args.home, "--output", krl_path, "--by", "krl-atomicity"],
                                 capture_output=True, text=True)
            counts.add("cli_rewrites")
            if run.returncode != 0:
                counts.add("write_failures", example="sshca krl write exit %d: %s" % (run.returncode, run.stderr.strip()[:200]))
                continue
            m = re.search(r"KRL version (\d+)", run.stdout)
            if m:
                note_published(int(m.group(1)))

    readers = [threading.Thread(target=keygen_reader), threading.Thread(target=python_reader)]
    writers = [threading.Thread(target=service_writer), threading.Thread(target=cli_writer)]
    started = time.monotonic()
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    done.set()
    for t in readers:
        t.join()
    elapsed = time.monotonic() - started

    # 4. The file left at the end.
    final_problems = []
    with open(krl_path, "rb") as f:
        final = f.read()
    try:
        final_version = parse_krl(final)
    except ValueError as error:
        final_version = None
        final_problems.append("the final %s does not parse: %s" % (krl_path, error))
    if final_version is not None and final_version != published["max"]:
        final_problems.append("the final %s has version %d, but version %d was published" % (krl_path, final_version, published["max"]))
    with tempfile.TemporaryDirectory(prefix="krl-atomicity-") as tmp:
        paths = {}
        for serial in acked:
            path = os.path.join(tmp, "c%d-cert.pub" % serial)
            with open(path, "w") as f:
                f.write(issued[serial] + "\n")
            paths[path] = serial
        run = subprocess.run([args.ssh_keygen, "-Q", "-f", krl_path] + list(paths), capture_output=True, text=True)
        if run.returncode not in (0, 1):
            final_problems.append("ssh-keygen -Q cannot load the final KRL: %s" % run.stderr.strip()[:300])
        else:
            not_revoked = [paths[line.split(" ", 1)[0].rstrip(":")] for line in run.stdout.splitlines() if line.endswith(": ok")]
            if not_revoked:
                final_problems.append("the final KRL does not revoke %d acknowledged serial(s): %s" % (
                    len(not_revoked), ",".join(map(str, sorted(not_revoked)[:20]))))

    rewrites = counts["service_rewrites"] + counts["cli_rewrites"]
    torn = counts["invalid"]
    reads = counts["reads"]
    too_few_reads = reads < args.reads_per_rewrite * rewrites
    print("krl-atomicity: %d service revocations, %d sshca krl write runs, in %.1f s; newest version %d, final file version %s" % (
        counts["service_rewrites"], counts["cli_rewrites"], elapsed, published["max"], final_version))
    print("krl-atomicity: python reader: %d reads, %d invalid, %d version changes seen, %d regressions (%d reads of a regressed file)" % (
        counts["py_reads"], counts["py_invalid"], counts["version_changes"], len(regressions), counts["regressed_reads"]))
    by_version = {}
    for serial, version in acked.items():
        by_version.setdefault(version, []).append(serial)
    for version, highest in regressions:
        lost = sorted(s for v in range(version + 1, highest + 1) for s in by_version.get(v, []))
        print("  REGRESSION: %s went back from KRL version %d to %d%s" % (
            krl_path, highest, version,
            "; the revocation of serial %s, already acknowledged (201) with KRL version %s, was missing from the file again"
            % (",".join(map(str, lost)), ",".join(str(acked[s]) for s in lost)) if lost else
            " (an older `sshca krl write` copy put back after a newer KRL)"))
    if counts["write_failures"]:
        print("krl-atomicity: failed rewrites: %d" % counts["write_failures"])
    for example in counts.examples:
        print("  " + example)
    for problem in final_problems:
        print("  FINDING: " + problem)
    if counts["pace_timeouts"]:
        print("krl-atomicity: pacing: %d rewrites started after waiting %.1f s for the ssh-keygen reader" % (counts["pace_timeouts"], args.pace_wait))
    if too_few_reads:
        print("  FINDING: the ssh-keygen reader made %d reads for %d rewrites (%.2f per rewrite), fewer than %d per rewrite: "
              "too few to say the file is never torn" % (reads, rewrites, reads / max(rewrites, 1), args.reads_per_rewrite))
    print("krl-atomicity: %d rewrites; ssh-keygen reader: %d reads (%.2f per rewrite), %d torn or invalid; "
          "python reader: %d reads, %d torn or invalid, %d regressions%s" % (
              rewrites, reads, reads / max(rewrites, 1), torn, counts["py_reads"], counts["py_invalid"], len(regressions),
              "; too few ssh-keygen reads (fewer than %d per rewrite)" % args.reads_per_rewrite if too_few_reads else ""))
    bad = torn or counts["py_invalid"] or regressions or counts["write_failures"] or final_problems or too_few_reads
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
