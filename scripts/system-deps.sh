#!/usr/bin/env bash
# Install the system programs the tests use as real parts: PostgreSQL (the reference for
# jsonb text, dumps and live snapshots), jq (the seed's recipes), Chromium (renders the
# evidence report), node (JSON.stringify, the admin chain's reference) and Java 17 (the
# Spark engine's local session). Idempotent: does nothing when they are present.
set -euo pipefail

missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql postgresql-contrib)
command -v jq >/dev/null 2>&1 || missing+=(jq)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# the admin chain's JSON.stringify is checked against a real JavaScript engine
command -v node >/dev/null 2>&1 || missing+=(nodejs)
# the C kernel of verify links OpenSSL's libcrypto (optional: without it verify is slower)
[ -f /usr/include/openssl/sha.h ] || missing+=(libssl-dev)
command -v cc >/dev/null 2>&1 || missing+=(gcc)
# Spark (--engine spark) runs on Java 17; a newer default java is passed over (spark/__init__.py)
ls /usr/lib/jvm/java-17-openjdk-*/bin/java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "system-deps: missing ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root" >&2
    exit 1
fi
echo "system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
