#!/usr/bin/env python3
"""Independent OpenSSH certificate verifier (PyPI `cryptography` >= 40).

Usage: verify_cert.py CERT_FILE CA_PUB_FILE

Exits 0 and prints the certificate's fields as JSON when the certificate parses,
its signature verifies, and the key that signed it is the CA public key in
CA_PUB_FILE. Exits 1 with a message on stderr otherwise (2 for usage errors).
A CA signature made with "ssh-rsa" (SHA-1) is refused too, as OpenSSH refuses it.

Output keys: keyId, serial, principals, validAfter, validBefore, type ("user" or
"host"), criticalOptions and extensions (name -> value; "" for flags), and
signatureAlgorithm.

`cryptography` cannot load sk- (FIDO) certificate types; those fail with exit 1.
"""

import json
import sys


def fail(message, code=1):
    print(f"verify_cert: {message}", file=sys.stderr)
    sys.exit(code)


def signature_algorithm(cert_text):
    """The algorithm name inside the certificate's trailing signature string.

    The blob ends with string(signature) where signature = string(alg) string(bytes);
    find the last offset whose length prefix spans exactly to the end and whose
    content parses as two strings filling it.
    """
    import base64
    import struct

    fields = cert_text.split()
    if len(fields) < 2:
        return None
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except Exception:
        return None

    def read_string(data, offset):
        if offset + 4 > len(data):
            return None, offset
        (n,) = struct.unpack(">I", data[offset:offset + 4])
        if offset + 4 + n > len(data):
            return None, offset
        return data[offset + 4:offset + 4 + n], offset + 4 + n

    for start in range(len(blob) - 4, 3, -1):
        (n,) = struct.unpack(">I", blob[start:start + 4])
        if n != len(blob) - start - 4:
            continue
        sig = blob[start + 4:]
        alg, off = read_string(sig, 0)
        if alg is None:
            continue
        raw, off = read_string(sig, off)
        if raw is None or off != len(sig):
            continue
        try:
            return alg.decode("ascii")
        except UnicodeDecodeError:
            continue
    return None


def main(argv):
    if len(argv) != 3:
        fail("usage: verify_cert.py CERT_FILE CA_PUB_FILE", 2)

    try:
        import cryptography
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import serialization
    except ImportError as exc:  # pragma: no cover - environment problem
        fail(f"python package 'cryptography' is not importable: {exc}")

    major = int(cryptography.__version__.split(".")[0])
    if major < 40 or not hasattr(serialization, "load_ssh_public_identity"):
        fail(f"cryptography >= 40 is required (found {cryptography.__version__})")

    cert_path, ca_path = argv[1], argv[2]
    try:
        with open(cert_path, "rb") as f:
            cert_data = f.read()
        with open(ca_path, "rb") as f:
            ca_data = f.read()
    except OSError as exc:
        fail(str(exc))

    try:
        cert = serialization.load_ssh_public_identity(cert_data.strip())
    except Exception as exc:  # ValueError, UnsupportedAlgorithm, ...
        fail(f"cannot load certificate {cert_path}: {exc}")
    if not isinstance(cert, serialization.SSHCertificate):
        fail(f"{cert_path} holds a plain public key, not a certificate")

    try:
        ca_key = serialization.load_ssh_public_key(ca_data.strip())
    except Exception as exc:
        fail(f"cannot load CA public key {ca_path}: {exc}")

    try:
        cert.verify_cert_signature()
    except InvalidSignature:
        fail("certificate signature does not verify")
    except Exception as exc:
        fail(f"certificate signature cannot be verified: {exc}")

    sig_alg = signature_algorithm(cert_data)
    if sig_alg is None:
        fail("cannot locate the signature at the end of the certificate")
    if sig_alg == "ssh-rsa":
        fail("certificate is signed with ssh-rsa (SHA-1), which OpenSSH refuses by default")

    def openssh_blob(key):
        return key.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )

    if openssh_blob(cert.signature_key()) != openssh_blob(ca_key):
        fail("certificate was signed by a different key than the given CA")

    def text(value):
        return value.decode("utf-8", errors="backslashreplace")

    def options(mapping):
        return {text(k): text(v) for k, v in mapping.items()}

    cert_type = {
        serialization.SSHCertificateType.USER: "user",
        serialization.SSHCertificateType.HOST: "host",
    }.get(cert.type, str(cert.type))

    result = {
        "keyId": text(cert.key_id),
        "serial": cert.serial,
        "principals": [text(p) for p in cert.valid_principals],
        "validAfter": cert.valid_after,
        "validBefore": cert.valid_before,
        "type": cert_type,
        "criticalOptions": options(cert.critical_options),
        "extensions": options(cert.extensions),
        "signatureAlgorithm": sig_alg,
    }
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
