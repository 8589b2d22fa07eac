# Sourced by scripts/test, scripts/sshca and scripts/bench: installs what they need when missing.
# Debian packages need root (CI and these machines run as root); without root it says what to run.

sshca_apt_install() {
    local missing=()
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "sshca: missing Debian packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
        return 1
    fi
    echo "sshca: installing ${missing[*]} ..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Build dependencies: libcrypto headers found through pkg-config, SQLite's headers (GRDB, CSQLiteShim).
sshca_build_deps() {
    command -v swift >/dev/null || { echo "sshca: the Swift toolchain (swift) is not on PATH" >&2; return 1; }
    sshca_apt_install pkg-config libssl-dev libsqlite3-dev
}

# Stamps the commit into the next build (sshca --version, the sshca_build_info metric): writes
# Sources/CBuildStamp/stamp.h (kept out of git) only when it changes, so an unchanged commit
# rebuilds nothing. Exports SSHCA_BUILD_COMMIT, which the tests compare with the binary's.
sshca_stamp_build() {
    local root commit stamp
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    commit="unknown"
    if command -v git >/dev/null && git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
        commit="$(git -C "$root" rev-parse --short=12 HEAD)"
        git -C "$root" diff --quiet HEAD -- 2>/dev/null || commit="$commit-dirty"
    fi
    stamp="$root/Sources/CBuildStamp/stamp.h"
    local text="#define SSHCA_COMMIT \"$commit\""
    [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$text" ] || printf '%s\n' "$text" > "$stamp"
    export SSHCA_BUILD_COMMIT="$commit"
}

# The real peers the tests and benchmarks run against.
sshca_peer_deps() {
    sshca_apt_install openssh-client openssh-server openssh-tests putty-tools openssl hyperfine sshpass sqlite3 curl systemd wrk
    # Python cryptography >= 40 verifies OpenSSH certificates (Debian's 38 cannot).
    if ! python3 -c 'import cryptography, sys; sys.exit(int(cryptography.__version__.split(".")[0]) < 40)' 2>/dev/null; then
        echo "sshca: installing Python cryptography>=40 from PyPI ..." >&2
        python3 -m pip install -q 'cryptography>=40' >&2
    fi
    # scripts/openapi_check.py checks the running service against docs/openapi.yaml.
    if ! python3 -c 'import yaml, openapi_schema_validator, openapi_spec_validator.validation' 2>/dev/null; then
        echo "sshca: installing Python openapi-spec-validator from PyPI ..." >&2
        python3 -m pip install -q 'openapi-spec-validator>=0.7' 'openapi-schema-validator>=0.6' PyYAML >&2
    fi
    # sshd refuses to start as root without its privilege-separation directory.
    if [ "$(id -u)" -eq 0 ] && [ ! -d /run/sshd ]; then mkdir -p /run/sshd && chmod 0755 /run/sshd; fi
}
