#!/usr/bin/env python3
"""Python cryptography's SSHCertificateBuilder signing rate, the peer for sshca's in-process
signing benchmark: the same certificate shape (one principal, the five default extensions,
a random nonce, a day of validity), built, signed and serialised once per iteration."""
import sys
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import SSHCertificateBuilder, SSHCertificateType

EXTENSIONS = [b"permit-X11-forwarding", b"permit-agent-forwarding", b"permit-port-forwarding",
              b"permit-pty", b"permit-user-rc"]


def make_ca(kind):
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "rsa-3072":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    raise SystemExit(f"unknown CA type {kind}")


def main():
    kind = sys.argv[1]
    seconds = float(sys.argv[2])
    ca = make_ca(kind)
    subject = ed25519.Ed25519PrivateKey.generate().public_key()
    now = int(time.time())
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        builder = (SSHCertificateBuilder()
                   .public_key(subject)
                   .serial(count + 1)
                   .type(SSHCertificateType.USER)
                   .key_id(b"alice@laptop")
                   .valid_principals([b"alice"])
                   .valid_after(now - 300)
                   .valid_before(now + 86400))
        for name in EXTENSIONS:
            builder = builder.add_extension(name, b"")
        cert = builder.sign(ca)
        cert.public_bytes()
        count += 1
        if count % 64 == 0 and time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - start
    print(f"{count / elapsed:.1f}")


if __name__ == "__main__":
    main()
