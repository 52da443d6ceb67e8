#!/usr/bin/env bash
# Installs the tools the packaging tests need, idempotently, into fixed places (run as root by .ci/run):
#   /opt/connguard-ci/node_modules/.bin/dockerfile-utils   Dockerfile linter (DockerfileLintTest)
#   /opt/connguard-ci/bin/promtool                         Prometheus rule checker (PackagingMonitoringTest)
# promtool is taken out of Debian's prometheus package without installing it, so no Prometheus
# server is set up or started. The Helm tests need nothing here: helm-java brings Helm.
set -euo pipefail

PREFIX=/opt/connguard-ci
DOCKERFILE_UTILS_VERSION=0.16.3

installed=$(node -p "require('$PREFIX/node_modules/dockerfile-utils/package.json').version" 2>/dev/null || true)
if [ "$installed" != "$DOCKERFILE_UTILS_VERSION" ]; then
  mkdir -p "$PREFIX"
  npm install --no-fund --no-audit --no-save --prefix "$PREFIX" "dockerfile-utils@$DOCKERFILE_UTILS_VERSION"
fi
"$PREFIX/node_modules/.bin/dockerfile-utils" --version

if ! "$PREFIX/bin/promtool" --version >/dev/null 2>&1; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && { apt-get download prometheus 2>/dev/null || { apt-get update -qq && apt-get download prometheus; }; })
  dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
  install -D -m 0755 "$work/root/usr/bin/promtool" "$PREFIX/bin/promtool"
fi
"$PREFIX/bin/promtool" --version | head -1
