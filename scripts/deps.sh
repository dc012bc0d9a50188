#!/usr/bin/env bash
# Installs the Debian packages ferrokube's build and tests need (idempotent).
#   build: protobuf-compiler (etcd client code generation)
#   tests: etcd-server (the etcd backend); busybox-static (the test images' root
#          filesystem); runc and crun (the kubelet's alternative OCI runtimes);
#          docker-registry and skopeo (a local registry to pull from); nftables, iptables and conntrack
#          (kube-proxy's data paths); dnsutils (dig, to check cluster DNS);
#          containernetworking-plugins (standard CNI plugins for --cni-conf-dir); a Python venv with the official
#          `kubernetes` client in target/test-venv for the client-library test
set -euo pipefail
need=()
for pkg in protobuf-compiler etcd-server busybox-static runc crun docker-registry skopeo nftables iptables conntrack dnsutils containernetworking-plugins; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q "${need[@]}" >/dev/null
fi

venv="$(dirname "$0")/../target/test-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import kubernetes" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "kubernetes==33.1.0"
fi
