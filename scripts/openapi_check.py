#!/usr/bin/env python3
"""Checks a running `sshca serve` against its OpenAPI document (docs/openapi.yaml).

    scripts/openapi_check.py URL SPEC --security-token T --engineer-token T
        [--host-token T] [--sshsig-user NAME --sshsig-key KEY] [--ca-home DIR]

1. Validates SPEC as an OpenAPI 3.0 document (openapi-spec-validator), and checks that every
   object schema in a response is closed (additionalProperties: false).
2. Sends real requests for every operation: valid ones, and bad ones (malformed JSON, missing
   and mistyped members, a body over max_request_bytes, no or bad credentials, a non-staff
   token on staff routes, unknown serials, If-None-Match with the current ETag, ...).
3. Validates every response against SPEC: the status must be documented for the operation,
   the Content-Type must be one the response lists (no body where it lists none), the body
   must match the schema (openapi-schema-validator, OAS 3.0 rules), required headers must be
   present and match theirs, and an error's `code` must be one of the response's
   `x-error-codes`. Bodies of the valid requests are checked against the request schemas
   too, so the document cannot refuse what the server accepts.
4. Checks coverage: every status documented for an operation must have been seen, except
   the few listed in UNREACHABLE (failures that cannot be caused from outside).

The tokens: one of a role with `security = true`, one of a role without it that may get user
certificates, and optionally a host token (a role with host_certificates = true and
principals = ["{user}"]). --sshsig-user/--sshsig-key: an enrolled user and its private
identity key, to sign in with a signed challenge (needs ssh-keygen). --ca-home: the CA home
of the server, to check the 503 answers of /healthz and /v1/krl by moving revoked.krl away
for a moment. The rate limit (429) is checked last: for a minute, failed sign-ins from this
address get 429 (valid credentials still pass).

Exit status: 0 when everything matches, 1 when something does not (each mismatch is
printed), 2 when the document is invalid or the arguments are wrong.
"""

import argparse
import http.client
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse

try:
    import yaml
    from openapi_schema_validator import OAS30Validator, oas30_format_checker
    from openapi_spec_validator import OpenAPIV30SpecValidator
except ImportError as error:  # pragma: no cover
    sys.stderr.write(f"openapi_check: {error}; install with: python3 -m pip install openapi-spec-validator PyYAML\n")
    sys.exit(2)

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

# Documented statuses that a client cannot cause: (method, path, status) -> why.
UNREACHABLE = {
    ("*", "*", "500"): "an unexpected internal failure",
    ("get", "/v1/krl.sig", "404"): "a CA home with [krl] sign = false",
    ("post", "/v1/certificates", "503"): "a ledger failure",
    ("get", "/v1/certificates", "503"): "a ledger failure",
    ("get", "/v1/hosts", "503"): "a ledger failure",
    ("get", "/v1/certificates/{serial}", "503"): "a ledger failure",
    ("post", "/v1/revocations", "503"): "a ledger failure",
}
NEEDS_CA_HOME = {("get", "/healthz", "503"), ("get", "/v1/krl", "503"), ("get", "/v1/krl.sig", "503")}

MAX_REQUEST_BYTES = 65536


class Failure(Exception):
    pass


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lowercased name -> list of values
        self.body = body

    def header(self, name):
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def json(self):
        return json.loads(self.body.decode("utf-8"))


class Checker:
    def __init__(self, base_url, spec):
        self.base = urllib.parse.urlsplit(base_url.rstrip("/"))
        if self.base.scheme not in ("http", "https"):
            raise SystemExit(f"openapi_check: {base_url} is not an http(s) URL")
        self.spec = spec
        self.checks = 0
        self.mismatches = []
        self.seen = set()

    # -- the document -----------------------------------------------------------------------

    def resolve(self, node, seen=()):
        """The node with every local $ref inlined (the document has no recursive schemas)."""
        if isinstance(node, dict):
            if "$ref" in node:
                ref = node["$ref"]
                if not ref.startswith("#/") or ref in seen:
                    raise Failure(f"unsupported or recursive $ref {ref}")
                target = self.spec
                for part in ref[2:].split("/"):
                    target = target[part.replace("~1", "/").replace("~0", "~")]
                return self.resolve(target, seen + (ref,))
            return {key: self.resolve(value, seen) for key, value in node.items()}
        if isinstance(node, list):
            return [self.resolve(item, seen) for item in node]
        return node

    def operation(self, method, path):
        item = self.spec.get("paths", {}).get(path)
        if item is None or method.lower() not in item:
            raise Failure(f"{method.upper()} {path} is not in the document")
        return self.resolve(item[method.lower()])

    def documented(self):
        for path, item in self.spec.get("paths", {}).items():
            for method in METHODS:
                if method in item:
                    for status in item[method].get("responses", {}):
                        yield method, path, str(status)

    # -- HTTP -------------------------------------------------------------------------------

    def send(self, method, path, headers=None, body=None):
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        if body is not None:
            headers.setdefault("Content-Type", "application/json")
        cls = http.client.HTTPSConnection if self.base.scheme == "https" else http.client.HTTPConnection
        connection = cls(self.base.hostname, self.base.port, timeout=30)
        try:
            connection.request(method, (self.base.path or "") + path, body=body, headers=headers)
            raw = connection.getresponse()
            data = raw.read()
            collected = {}
            for name, value in raw.getheaders():
                collected.setdefault(name.lower(), []).append(value)
            return Response(raw.status, collected, data)
        finally:
            connection.close()

    # -- one exchange -----------------------------------------------------------------------

    def exchange(self, what, method, template, path=None, headers=None, body=None, expect=None,
                 expect_code=None, query=None):
        """Sends one request and checks the response against the document.

        `template` is the documented path, `path` the real one (default: the template).
        `expect`: the status this scenario must produce; `expect_code`: the error code."""
        path = path or template
        if query:
            path += "?" + urllib.parse.urlencode(query)
        label = f"{method} {template} [{what}]"
        self.checks += 1
        problems = []
        try:
            operation = self.operation(method, template)
            if expect is not None and 200 <= expect < 300:
                problems += self.check_request(operation, body, query)
            response = self.send(method, path, headers, body)
            self.seen.add((method.lower(), template, str(response.status)))
            if expect is not None and response.status != expect:
                problems.append(f"the scenario should get {expect}, the server sent {response.status}: {response.body[:300]!r}")
            problems += self.check_response(operation, response, expect_code)
        except Failure as failure:
            problems.append(str(failure))
            response = None
        except (OSError, http.client.HTTPException) as error:
            problems.append(f"request failed: {error!r}")
            response = None
        status = response.status if response is not None else "---"
        if problems:
            for problem in problems:
                self.mismatches.append(f"{label}: {problem}")
            print(f"FAIL {status} {label}")
            for problem in problems:
                print(f"       {problem}")
        else:
            print(f"ok   {status} {label}")
        sys.stdout.flush()
        return response

    def check_request(self, operation, body, query):
        """The document must accept the requests that the server accepts."""
        problems = []
        if body is not None and isinstance(body, (dict, list)):
            content = operation.get("requestBody", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema")
            if schema is None:
                problems.append("the document lists no application/json request body")
            else:
                problems += [f"the request schema refuses a request the server accepts: {e}"
                             for e in schema_errors(schema, body)]
        for name, value in (query or {}).items():
            parameter = next((p for p in operation.get("parameters", []) if p.get("in") == "query" and p["name"] == name), None)
            if parameter is None:
                problems.append(f"query parameter {name} is not documented")
                continue
            schema = parameter.get("schema", {})
            typed = int(value) if schema.get("type") == "integer" and re.fullmatch(r"-?[0-9]+", value) else value
            problems += [f"query parameter {name}={value}: {e}" for e in schema_errors(schema, typed)]
        return problems

    def check_response(self, operation, response, expect_code):
        problems = []
        responses = operation.get("responses", {})
        documented = responses.get(str(response.status))
        if documented is None:
            return [f"status {response.status} is not documented for this operation "
                    f"(documented: {', '.join(sorted(map(str, responses)))}); body {response.body[:300]!r}"]
        # Headers.
        for name, header in (documented.get("headers") or {}).items():
            value = response.header(name)
            if value is None:
                if header.get("required"):
                    problems.append(f"header {name} is required but missing")
                continue
            problems += [f"header {name}: {e}" for e in schema_errors(header.get("schema", {}), value)]
        # Content type and body.
        content = documented.get("content") or {}
        content_type = response.header("content-type")
        if not content:
            if response.body:
                problems.append(f"the document lists no body, the server sent {len(response.body)} bytes")
            if content_type:
                problems.append(f"the document lists no body, the server sent Content-Type {content_type}")
            return problems
        if content_type is None:
            return problems + ["Content-Type is missing"]
        media = next((m for m in content if same_media_type(m, content_type)), None)
        if media is None:
            return problems + [f"Content-Type {content_type!r} is not one of {sorted(content)}"]
        schema = content[media].get("schema", {})
        base = media.split(";")[0].strip().lower()
        if base == "application/json" or base.endswith("+json"):
            try:
                data = response.json()
            except (UnicodeDecodeError, ValueError) as error:
                return problems + [f"the body is not JSON ({error}): {response.body[:200]!r}"]
            problems += [f"body: {e}" for e in schema_errors(schema, data)]
            codes = documented.get("x-error-codes")
            code = data.get("error", {}).get("code") if isinstance(data, dict) and isinstance(data.get("error"), dict) else None
            if codes is not None and code not in codes:
                problems.append(f"error code {code!r} is not one of this response's x-error-codes {codes}")
            if expect_code is not None and code != expect_code:
                problems.append(f"the scenario should get error code {expect_code!r}, the server sent {code!r}: {data}")
        elif schema.get("format") in ("binary", "byte"):
            if not response.body:
                problems.append("the body is empty")
        elif base.startswith("text/"):
            try:
                text = response.body.decode("utf-8")
            except UnicodeDecodeError as error:
                return problems + [f"the body is not UTF-8 text: {error}"]
            problems += [f"body: {e}" for e in schema_errors(schema, text)]
        return problems

    # -- summary ----------------------------------------------------------------------------

    def coverage(self, skipped):
        missing = []
        excused = []
        for method, path, status in self.documented():
            if (method, path, status) in self.seen:
                continue
            why = UNREACHABLE.get((method, path, status)) or UNREACHABLE.get(("*", "*", status)) or skipped.get((method, path, status))
            if why:
                excused.append(f"{method.upper()} {path} {status} ({why})")
            else:
                missing.append(f"{method.upper()} {path} {status}")
        return missing, excused


def same_media_type(documented, actual):
    def parts(text):
        pieces = [p.strip().lower() for p in text.split(";")]
        return pieces[0], sorted(p.replace(" ", "") for p in pieces[1:] if p)
    return parts(documented) == parts(actual)


def schema_errors(schema, instance):
    validator = OAS30Validator(schema, format_checker=oas30_format_checker)
    errors = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        errors.append(f"at {where}: {error.message}")
    return errors


def closed_schema_problems(node, where):
    """Every object schema in a response must say whether other members may appear."""
    problems = []
    if isinstance(node, dict):
        if node.get("type") == "object" and node.get("additionalProperties") is not False:
            problems.append(f"{where}: object schema without additionalProperties: false")
        for key, value in node.items():
            problems += closed_schema_problems(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            problems += closed_schema_problems(value, f"{where}/{index}")
    return problems


def load_spec(path):
    with open(path, encoding="utf-8") as handle:
        spec = yaml.safe_load(handle)
    if not isinstance(spec, dict):
        raise SystemExit(f"openapi_check: {path} is not a YAML mapping")
    problems = []
    if not str(spec.get("openapi", "")).startswith("3.0."):
        problems.append(f"openapi is {spec.get('openapi')!r}; this checker reads OpenAPI 3.0 documents")
    for error in OpenAPIV30SpecValidator(spec).iter_errors():
        where = "/".join(str(p) for p in error.path) or "(top)"
        problems.append(f"{where}: {error.message}")
    if not problems:
        checker = Checker("http://localhost", spec)
        for method, route, status in checker.documented():
            operation = checker.operation(method, route)
            if "security" not in operation:
                problems.append(f"{method.upper()} {route}: no security requirement (use security: [] for public routes)")
            if not operation.get("description"):
                problems.append(f"{method.upper()} {route}: no description")
            response = operation["responses"][status]
            for media, body in (response.get("content") or {}).items():
                problems += closed_schema_problems(body.get("schema", {}), f"{method.upper()} {route} {status} {media}")
    if problems:
        print(f"openapi_check: {path} is not a valid OpenAPI 3.0 document for this checker:")
        for problem in sorted(set(problems)):
            print(f"  {problem}")
        sys.exit(2)
    return spec


# -- keys -----------------------------------------------------------------------------------

class Keys:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    def new(self, *arguments):
        if shutil.which("ssh-keygen") is None:
            raise SystemExit("openapi_check: ssh-keygen is needed (Debian: openssh-client)")
        self.count += 1
        path = os.path.join(self.directory, f"key{self.count}")
        subprocess.run(["ssh-keygen", "-q", "-N", "", "-C", f"openapi-check-{self.count}", "-f", path, *arguments],
                       check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        with open(path + ".pub", encoding="utf-8") as handle:
            return handle.read().strip()

    def fingerprint(self, public_line):
        """SHA256:... of an OpenSSH public key line, as ssh-keygen -l prints it."""
        result = subprocess.run(["ssh-keygen", "-l", "-f", "-"], input=public_line.encode(), check=True, capture_output=True)
        return result.stdout.decode().split()[1]

    def sign_in(self, private_key, user, nonce, ca_line, method, path, body=b"", certify_line=None):
        """The SSHSIG of the sign-in message sshca login builds (ServiceAPI.SignInMessage)."""
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode().rstrip("=")
        lines = ["sshca sign-in v1", f"ca: {self.fingerprint(ca_line)}", f"identity: {user}", f"nonce: {nonce}",
                 f"request: {method} {path}", f"certify: {self.fingerprint(certify_line) if certify_line else '-'}", f"body: SHA256:{digest}"]
        return self.sign(private_key, "\n".join(lines) + "\n")

    def sign(self, private_key, text):
        """The base64 of the binary SSHSIG signature of `text` in namespace sshca."""
        self.count += 1
        message = os.path.join(self.directory, f"nonce{self.count}")
        with open(message, "w", encoding="utf-8") as handle:
            handle.write(text)
        subprocess.run(["ssh-keygen", "-q", "-Y", "sign", "-n", "sshca", "-f", private_key, message],
                       check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        with open(message + ".sig", encoding="utf-8") as handle:
            armored = handle.read().splitlines()
        return "".join(line for line in armored if line and not line.startswith("-----"))


# -- the scenarios --------------------------------------------------------------------------

def run(args, spec, directory):
    c = Checker(args.url, spec)
    keys = Keys(directory)
    security = {"Authorization": f"Bearer {args.security_token}"}
    engineer = {"Authorization": f"Bearer {args.engineer_token}"}
    wrong_secret = re.sub(r"_[A-Za-z0-9_-]{43}$", "_" + "A" * 43, args.engineer_token)
    if wrong_secret == args.engineer_token:
        raise SystemExit("openapi_check: --engineer-token does not look like sshca_<id>_<secret>")
    skipped = {}
    oversized = {"identity": "x", "padding": "x" * (MAX_REQUEST_BYTES + 1024)}

    print("== public routes")
    c.exchange("healthy", "GET", "/healthz", expect=200)
    c.exchange("Prometheus text", "GET", "/metrics", expect=200)
    c.exchange("user CA", "GET", "/v1/ca/user.pub", expect=200)
    c.exchange("host CA", "GET", "/v1/ca/host.pub", expect=200)
    krl = c.exchange("first fetch", "GET", "/v1/krl", expect=200)
    etag = krl.header("etag") if krl is not None else None
    if etag:
        c.exchange("If-None-Match: current ETag", "GET", "/v1/krl", headers={"If-None-Match": etag}, expect=304)
        c.exchange("If-None-Match: list with the ETag", "GET", "/v1/krl", headers={"If-None-Match": f'"0123", {etag}'}, expect=304)
        c.exchange("If-None-Match: weak form of the ETag", "GET", "/v1/krl", headers={"If-None-Match": f"W/{etag}"}, expect=304)
        c.exchange("If-None-Match: *", "GET", "/v1/krl", headers={"If-None-Match": "*"}, expect=304)
    c.exchange("If-None-Match: another ETag", "GET", "/v1/krl", headers={"If-None-Match": '"' + "0" * 32 + '"'}, expect=200)
    signature = c.exchange("detached signature", "GET", "/v1/krl.sig", expect=200)
    if signature is not None and etag and signature.header("etag") != etag:
        c.mismatches.append("GET /v1/krl.sig: its ETag is not the KRL's")

    print("== sign-in challenges")
    c.exchange("valid identity", "POST", "/v1/challenge", body={"identity": "alice"}, expect=200)
    c.exchange("unknown identity gets a nonce too", "POST", "/v1/challenge", body={"identity": "nobody.enrolled@example"}, expect=200)
    c.exchange("malformed JSON", "POST", "/v1/challenge", body='{"identity": ', expect=400, expect_code="bad-json")
    c.exchange("empty body", "POST", "/v1/challenge", body="", expect=400, expect_code="bad-json")
    c.exchange("missing identity", "POST", "/v1/challenge", body={}, expect=400, expect_code="bad-json")
    c.exchange("identity of the wrong type", "POST", "/v1/challenge", body={"identity": 7}, expect=400, expect_code="bad-json")
    c.exchange("JSON array", "POST", "/v1/challenge", body=["alice"], expect=400, expect_code="bad-json")
    c.exchange("unknown member", "POST", "/v1/challenge", body={"identity": "alice", "identiy": "x"}, expect=400, expect_code="bad-json")
    c.exchange("invalid user name", "POST", "/v1/challenge", body={"identity": "bad name!"}, expect=400, expect_code="bad-request")
    c.exchange("name starting with -", "POST", "/v1/challenge", body={"identity": "-alice"}, expect=400, expect_code="bad-request")
    c.exchange("body over max_request_bytes", "POST", "/v1/challenge", body=oversized, expect=413, expect_code="too-large")

    print("== certificates")
    key = keys.new("-t", "ed25519")
    issued = c.exchange("engineer, role defaults", "POST", "/v1/certificates", headers=engineer, body={"publicKey": key}, expect=201)
    first_serial = issued.json()["serial"] if issued is not None and issued.status == 201 else 1
    # Key ids are NAME:CREDENTIAL:SERIAL; the name is the engineer's {user} principal.
    engineer_name = issued.json().get("keyId", "bob").split(":")[0] if issued is not None and issued.status == 201 else "bob"
    c.exchange("engineer, all members", "POST", "/v1/certificates", headers=engineer,
               body={"publicKey": keys.new("-t", "ecdsa", "-b", "256"), "type": "user", "principals": [engineer_name], "validity": "1h30m"}, expect=201)
    c.exchange("security staff may get user certificates", "POST", "/v1/certificates", headers=security, body={"publicKey": key}, expect=201)
    c.exchange("host certificate for a user role", "POST", "/v1/certificates", headers=engineer,
               body={"publicKey": key, "type": "host"}, expect=403, expect_code="policy")
    c.exchange("principal the role does not allow", "POST", "/v1/certificates", headers=engineer,
               body={"publicKey": key, "principals": ["root"]}, expect=403, expect_code="policy")
    c.exchange("empty principal list", "POST", "/v1/certificates", headers=engineer,
               body={"publicKey": key, "principals": []}, expect=403, expect_code="policy")
    c.exchange("validity over the role's maximum", "POST", "/v1/certificates", headers=engineer,
               body={"publicKey": key, "validity": "1000d"}, expect=403, expect_code="policy")
    c.exchange("validity that is no duration", "POST", "/v1/certificates", headers=engineer,
               body={"publicKey": key, "validity": "banana"}, expect=400, expect_code="bad-request")
    c.exchange("unknown certificate type", "POST", "/v1/certificates", headers=engineer,
               body={"publicKey": key, "type": "robot"}, expect=400, expect_code="bad-request")
    c.exchange("publicKey that is no key", "POST", "/v1/certificates", headers=engineer,
               body={"publicKey": "ssh-ed25519 not-base64!"}, expect=400, expect_code="bad-key")
    c.exchange("RSA key under min_rsa_bits", "POST", "/v1/certificates", headers=engineer,
               body={"publicKey": keys.new("-t", "rsa", "-b", "1024")}, expect=400, expect_code="bad-key")
    c.exchange("malformed JSON", "POST", "/v1/certificates", headers=engineer, body="{publicKey:", expect=400, expect_code="bad-json")
    c.exchange("missing publicKey", "POST", "/v1/certificates", headers=engineer, body={"type": "user"}, expect=400, expect_code="bad-json")
    c.exchange("misspelt member", "POST", "/v1/certificates", headers=engineer, body={"publicKey": key, "validty": "1h"},
               expect=400, expect_code="bad-json")
    c.exchange("principals of the wrong type", "POST", "/v1/certificates", headers=engineer,
               body={"publicKey": key, "principals": engineer_name}, expect=400, expect_code="bad-json")
    c.exchange("body over max_request_bytes", "POST", "/v1/certificates", headers=engineer,
               body={"publicKey": key, "padding": "x" * (MAX_REQUEST_BYTES + 1024)}, expect=413, expect_code="too-large")
    c.exchange("no credentials", "POST", "/v1/certificates", body={"publicKey": key}, expect=401, expect_code="unauthenticated")
    c.exchange("empty Authorization", "POST", "/v1/certificates", headers={"Authorization": ""}, body={"publicKey": key},
               expect=401, expect_code="unauthenticated")
    c.exchange("unknown scheme", "POST", "/v1/certificates", headers={"Authorization": "Basic Ym9iOnNlY3JldA=="},
               body={"publicKey": key}, expect=401, expect_code="unauthenticated")
    c.exchange("incomplete SSHSIG header", "POST", "/v1/certificates", headers={"Authorization": "SSHSIG identity=alice"},
               body={"publicKey": key}, expect=401, expect_code="unauthenticated")
    # The next ones count as failed sign-ins (at most 10 a minute per address: keep them few).
    c.exchange("token with a wrong secret", "POST", "/v1/certificates", headers={"Authorization": f"Bearer {wrong_secret}"},
               body={"publicKey": key}, expect=401, expect_code="unauthenticated")
    c.exchange("malformed token", "POST", "/v1/certificates", headers={"Authorization": "Bearer sshca_nope"},
               body={"publicKey": key}, expect=401, expect_code="unauthenticated")

    if args.host_token:
        host = {"Authorization": f"Bearer {args.host_token}"}
        host_key = keys.new("-t", "ed25519")
        c.exchange("host token, host certificate", "POST", "/v1/certificates", headers=host,
                   body={"publicKey": host_key, "type": "host", "validity": "30d"}, expect=201)
        c.exchange("host token, user certificate", "POST", "/v1/certificates", headers=host,
                   body={"publicKey": host_key}, expect=403, expect_code="policy")

    if args.sshsig_user:
        print("== signing in with a signed challenge")
        challenge = c.exchange("challenge for the enrolled user", "POST", "/v1/challenge", body={"identity": args.sshsig_user}, expect=200)
        if challenge is not None and challenge.status == 200:
            nonce = challenge.json()["nonce"]
            ca_line = c.send("GET", "/v1/ca/user.pub").body.decode()
            subject = keys.new("-t", "ed25519")
            request = {"publicKey": subject}
            signature = keys.sign_in(args.sshsig_key, args.sshsig_user, nonce, ca_line, "POST", "/v1/certificates",
                                     json.dumps(request).encode(), certify_line=subject)
            answer = {"Authorization": f"SSHSIG identity={args.sshsig_user},nonce={nonce},signature={signature}"}
            c.exchange("SSHSIG answer", "POST", "/v1/certificates", headers=answer, body=request, expect=201)
            c.exchange("SSHSIG answer used twice", "POST", "/v1/certificates", headers=answer, body={"publicKey": key},
                       expect=401, expect_code="unauthenticated")
        challenge = c.exchange("another challenge", "POST", "/v1/challenge", body={"identity": args.sshsig_user}, expect=200)
        if challenge is not None and challenge.status == 200:
            nonce = challenge.json()["nonce"]
            forged = {"Authorization": f"SSHSIG identity={args.sshsig_user},nonce={nonce},signature=AAAAC1NTSFNJRwAAAAE="}
            c.exchange("SSHSIG signature that is not one", "GET", "/v1/certificates", headers=forged,
                       expect=401, expect_code="unauthenticated")

    print("== security staff: listing")
    c.exchange("everything", "GET", "/v1/certificates", headers=security, expect=200)
    c.exchange("active, limit 1", "GET", "/v1/certificates", headers=security, query={"status": "active", "limit": "1"}, expect=200)
    # Paging: pages of one, each `next` fed back as `after`, give every certificate once, in order.
    everything = c.exchange("all, for paging", "GET", "/v1/certificates", headers=security, query={"limit": "100000"}, expect=200)
    paged, after = [], None
    for _ in range(1000):
        query = {"limit": "1"} if after is None else {"limit": "1", "after": str(after)}
        page = c.exchange("a page of one", "GET", "/v1/certificates", headers=security, query=query, expect=200)
        if page is None or page.status != 200:
            break
        paged += [item["serial"] for item in page.json()["certificates"]]
        after = page.json().get("next")
        if after is None:
            break
    if everything is not None and everything.status == 200:
        expected = [item["serial"] for item in everything.json()["certificates"]]
        if paged != expected or len(expected) < 2:
            c.mismatches.append(f"GET /v1/certificates paged by 1: {paged} instead of {expected}")
        if "next" in everything.json():
            c.mismatches.append("GET /v1/certificates: `next` on a page that holds every match")
    c.exchange("after that is no serial", "GET", "/v1/certificates", headers=security, query={"after": "-1"}, expect=400, expect_code="bad-request")
    c.exchange("by principal and key id", "GET", "/v1/certificates", headers=security,
               query={"principal": engineer_name, "keyId": engineer_name, "status": "any"}, expect=200)
    c.exchange("expired (none)", "GET", "/v1/certificates", headers=security, query={"status": "expired"}, expect=200)
    c.exchange("unknown status", "GET", "/v1/certificates", headers=security, query={"status": "valid"}, expect=400, expect_code="bad-request")
    c.exchange("limit 0", "GET", "/v1/certificates", headers=security, query={"limit": "0"}, expect=400, expect_code="bad-request")
    c.exchange("limit that is no number", "GET", "/v1/certificates", headers=security, query={"limit": "ten"}, expect=400, expect_code="bad-request")
    c.exchange("not security staff", "GET", "/v1/certificates", headers=engineer, expect=403, expect_code="forbidden")
    c.exchange("no credentials", "GET", "/v1/certificates", expect=401, expect_code="unauthenticated")
    c.exchange("a server introduces itself", "GET", "/v1/krl", headers={"X-SSHCA-Host": "web-01.example.test"}, expect=200)
    hosts = c.exchange("servers that synced", "GET", "/v1/hosts", headers=security, expect=200)
    if hosts is not None and hosts.status == 200 and not any(h.get("name") == "web-01.example.test" for h in hosts.json()):
        c.mismatches.append("GET /v1/hosts: the server that introduced itself is not listed")
    c.exchange("not security staff", "GET", "/v1/hosts", headers=engineer, expect=403, expect_code="forbidden")
    c.exchange("no credentials", "GET", "/v1/hosts", expect=401, expect_code="unauthenticated")
    one = "/v1/certificates/{serial}"
    c.exchange("issued serial", "GET", one, path=f"/v1/certificates/{first_serial}", headers=security, expect=200)
    c.exchange("unknown serial", "GET", one, path="/v1/certificates/987654321", headers=security, expect=404, expect_code="not-found")
    c.exchange("serial that is no number", "GET", one, path="/v1/certificates/abc", headers=security, expect=400, expect_code="bad-request")
    c.exchange("negative serial", "GET", one, path="/v1/certificates/-1", headers=security, expect=400, expect_code="bad-request")
    c.exchange("not security staff", "GET", one, path=f"/v1/certificates/{first_serial}", headers=engineer, expect=403, expect_code="forbidden")
    c.exchange("no credentials", "GET", one, path=f"/v1/certificates/{first_serial}", expect=401, expect_code="unauthenticated")

    print("== security staff: revoking")
    revoked = c.exchange("one serial", "POST", "/v1/revocations", headers=security,
                         body={"serial": first_serial, "reason": "openapi check"}, expect=201)
    if revoked is not None and revoked.status == 201 and revoked.json().get("isNew") is not True:
        c.mismatches.append("POST /v1/revocations [one serial]: isNew should be true the first time")
    again = c.exchange("the same serial again", "POST", "/v1/revocations", headers=security,
                       body={"serial": first_serial, "reason": "openapi check, again"}, expect=200)
    if again is not None and again.status == 200 and again.json().get("isNew") is not False:
        c.mismatches.append("POST /v1/revocations [the same serial again]: isNew should be false")
    c.exchange("revoked certificate shows its revocation", "GET", one, path=f"/v1/certificates/{first_serial}", headers=security, expect=200)
    c.exchange("revoked ones", "GET", "/v1/certificates", headers=security, query={"status": "revoked"}, expect=200)
    c.exchange("a range of serials", "POST", "/v1/revocations", headers=security,
               body={"serials": f"{first_serial}-{first_serial + 1}", "reason": "openapi check"}, expect=201)
    c.exchange("a key id", "POST", "/v1/revocations", headers=security, body={"keyId": "gone-robot", "reason": "openapi check"}, expect=201)
    c.exchange("a principal", "POST", "/v1/revocations", headers=security, body={"principal": "nobody-here", "reason": "openapi check"}, expect=201)
    stolen = keys.new("-t", "ed25519")
    c.exchange("a public key", "POST", "/v1/revocations", headers=security, body={"publicKey": stolen, "reason": "openapi check"}, expect=201)
    c.exchange("certificate for a revoked key", "POST", "/v1/certificates", headers=engineer, body={"publicKey": stolen},
               expect=403, expect_code="refused")
    c.exchange("two targets", "POST", "/v1/revocations", headers=security,
               body={"serial": first_serial, "keyId": "x", "reason": "openapi check"}, expect=400, expect_code="bad-request")
    c.exchange("no target", "POST", "/v1/revocations", headers=security, body={"reason": "openapi check"}, expect=400, expect_code="bad-request")
    c.exchange("serials that are no range", "POST", "/v1/revocations", headers=security,
               body={"serials": "7--9", "reason": "openapi check"}, expect=400, expect_code="bad-request")
    c.exchange("a range of serials from 0", "POST", "/v1/revocations", headers=security,
               body={"serials": "0-3", "reason": "openapi check"}, expect=400, expect_code="bad-request")
    c.exchange("serial 0", "POST", "/v1/revocations", headers=security, body={"serial": 0, "reason": "openapi check"}, expect=400, expect_code="bad-request")
    c.exchange("empty reason", "POST", "/v1/revocations", headers=security, body={"keyId": "x", "reason": " "}, expect=400, expect_code="bad-request")
    c.exchange("publicKey that is no key", "POST", "/v1/revocations", headers=security,
               body={"publicKey": "nope", "reason": "openapi check"}, expect=400, expect_code="bad-key")
    c.exchange("malformed JSON", "POST", "/v1/revocations", headers=security, body="[", expect=400, expect_code="bad-json")
    c.exchange("missing reason", "POST", "/v1/revocations", headers=security, body={"keyId": "x"}, expect=400, expect_code="bad-json")
    c.exchange("unknown member", "POST", "/v1/revocations", headers=security, body={"keyId": "x", "reason": "r", "serail": 3},
               expect=400, expect_code="bad-json")
    c.exchange("serial of the wrong type", "POST", "/v1/revocations", headers=security,
               body={"serial": "12", "reason": "openapi check"}, expect=400, expect_code="bad-json")
    c.exchange("unknown serial", "POST", "/v1/revocations", headers=security,
               body={"serial": 987654321, "reason": "openapi check"}, expect=404, expect_code="not-found")
    c.exchange("unknown range", "POST", "/v1/revocations", headers=security,
               body={"serials": "987654321-987654399", "reason": "openapi check"}, expect=404, expect_code="not-found")
    c.exchange("body over max_request_bytes", "POST", "/v1/revocations", headers=security,
               body={"keyId": "x", "reason": "x" * (MAX_REQUEST_BYTES + 1024)}, expect=413, expect_code="too-large")
    c.exchange("not security staff", "POST", "/v1/revocations", headers=engineer,
               body={"keyId": "x", "reason": "openapi check"}, expect=403, expect_code="forbidden")
    c.exchange("no credentials", "POST", "/v1/revocations", body={"keyId": "x", "reason": "openapi check"},
               expect=401, expect_code="unauthenticated")

    print("== the KRL after revocations")
    if etag:
        after = c.exchange("old ETag no longer matches", "GET", "/v1/krl", headers={"If-None-Match": etag}, expect=200)
        if after is not None and after.header("etag") == etag:
            c.mismatches.append("GET /v1/krl: the ETag did not change after revocations")

    if args.ca_home:
        print("== a missing KRL file")
        path = os.path.join(args.ca_home, "revoked.krl")
        moved = path + ".openapi-check"
        os.rename(path, moved)
        try:
            c.exchange("KRL file missing", "GET", "/healthz", expect=503)
            c.exchange("KRL file missing", "GET", "/v1/krl", expect=503, expect_code="unavailable")
        finally:
            os.rename(moved, path)
        c.exchange("KRL file back", "GET", "/healthz", expect=200)
        signature_path = path + ".sig"
        with open(signature_path, "rb") as f:
            kept = f.read()
        try:
            with open(signature_path + ".tmp", "wb") as f:
                f.write(b"-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n")
            os.rename(signature_path + ".tmp", signature_path)
            c.exchange("a signature that does not match the KRL", "GET", "/v1/krl.sig", expect=503, expect_code="unavailable")
        finally:
            with open(signature_path + ".tmp", "wb") as f:
                f.write(kept)
            os.rename(signature_path + ".tmp", signature_path)
        c.exchange("signature file back", "GET", "/v1/krl.sig", expect=200)
    else:
        for entry in NEEDS_CA_HOME:
            skipped[entry] = "needs --ca-home"

    print("== open challenges per address (100 at most)")
    capped = None
    for attempt in range(120):
        response = c.send("POST", "/v1/challenge", None, json.dumps({"identity": "flood"}).encode())
        if response.status == 429:
            capped = attempt
            break
    if capped is None:
        c.mismatches.append("POST /v1/challenge: 120 unanswered challenges from one address were never refused with 429")
    c.exchange("one address holding 100 open challenges", "POST", "/v1/challenge", body={"identity": "flood"},
               expect=429, expect_code="rate-limited")

    print("== rate limit on failed sign-ins (failures from this address get 429 for a minute)")
    limited = None
    for attempt in range(60):
        response = c.send("POST", "/v1/certificates", {"Authorization": f"Bearer {wrong_secret}"}, json.dumps({"publicKey": key}).encode())
        if response.status == 429:
            limited = attempt
            break
        if response.status != 401:
            c.mismatches.append(f"POST /v1/certificates [rate limit]: a wrong token got {response.status}, not 401 or 429")
            break
    if limited is None:
        c.mismatches.append("POST /v1/certificates [rate limit]: 60 failed sign-ins in a row were never refused with 429")
    c.exchange("wrong token after too many failures", "POST", "/v1/certificates", headers={"Authorization": f"Bearer {wrong_secret}"},
               body={"publicKey": key}, expect=429, expect_code="rate-limited")
    c.exchange("wrong token, listing, from a locked-out address", "GET", "/v1/certificates",
               headers={"Authorization": f"Bearer {wrong_secret}"}, expect=429, expect_code="rate-limited")
    c.exchange("wrong token, one certificate, from a locked-out address", "GET", one, path=f"/v1/certificates/{first_serial}",
               headers={"Authorization": f"Bearer {wrong_secret}"}, expect=429, expect_code="rate-limited")
    c.exchange("wrong token, servers, from a locked-out address", "GET", "/v1/hosts",
               headers={"Authorization": f"Bearer {wrong_secret}"}, expect=429, expect_code="rate-limited")
    c.exchange("wrong token, revoking, from a locked-out address", "POST", "/v1/revocations",
               headers={"Authorization": f"Bearer {wrong_secret}"}, body={"keyId": "x", "reason": "openapi check"},
               expect=429, expect_code="rate-limited")
    # Valid credentials still pass: a shared address (a proxy) is not locked out by someone else's failures.
    c.exchange("valid token from a locked-out address", "GET", "/v1/certificates", headers=security, expect=200)
    c.exchange("valid token issuing from a locked-out address", "POST", "/v1/certificates", headers=engineer,
               body={"publicKey": key}, expect=201)
    c.exchange("public routes stay open", "GET", "/v1/ca/user.pub", expect=200)

    missing, excused = c.coverage(skipped)
    print("== coverage")
    for line in excused:
        print(f"not exercised (cannot be caused from outside): {line}")
    for line in missing:
        c.mismatches.append(f"documented but never produced by any scenario: {line}")

    print(f"{c.checks} exchanges checked, {len(c.mismatches)} mismatches")
    if c.mismatches:
        print("MISMATCHES:")
        for line in c.mismatches:
            print(f"  {line}")
        return 1
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the service, such as http://127.0.0.1:8443")
    parser.add_argument("spec", help="the OpenAPI document, such as docs/openapi.yaml")
    parser.add_argument("--security-token", help="a token of a role with security = true")
    parser.add_argument("--engineer-token", help="a token of a role that may get user certificates and is not security staff")
    parser.add_argument("--host-token", help="a token of a role with host_certificates = true")
    parser.add_argument("--sshsig-user", help="an enrolled user to sign in as with a signed challenge")
    parser.add_argument("--sshsig-key", help="that user's private identity key file")
    parser.add_argument("--ca-home", help="the server's CA home (to check the 503 of a missing KRL)")
    parser.add_argument("--spec-only", action="store_true", help="only validate the document")
    args = parser.parse_args()
    if not args.spec_only and not (args.security_token and args.engineer_token):
        parser.error("--security-token and --engineer-token are needed (or --spec-only)")
    if bool(args.sshsig_user) != bool(args.sshsig_key):
        parser.error("--sshsig-user and --sshsig-key go together")
    spec = load_spec(args.spec)
    print(f"{args.spec}: a valid OpenAPI {spec['openapi']} document")
    if args.spec_only:
        return 0
    with tempfile.TemporaryDirectory(prefix="openapi-check-") as directory:
        return run(args, spec, directory)


if __name__ == "__main__":
    sys.exit(main())
