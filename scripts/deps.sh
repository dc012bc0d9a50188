#!/usr/bin/env bash
# Installs the Debian packages ferrokube's build and tests need (idempotent).
#   build: protobuf-compiler (etcd client code generation)
#   tests: etcd-server (the etcd backend), python3-venv for the Python client test
set -euo pipefail
need=()
for pkg in protobuf-compiler etcd-server; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q "${need[@]}" >/dev/null
fi
