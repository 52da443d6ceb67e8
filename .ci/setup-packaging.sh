#!/usr/bin/env bash
# Installs the tools the packaging tests need, idempotently, into fixed places (run as root by .ci/run):
#   /opt/connguard-ci/node_modules/.bin/dockerfile-utils   the Dockerfile linter (DockerfileLintTest)
# The Helm tests need nothing here: helm-java brings Helm from Maven Central.
set -euo pipefail

PREFIX=/opt/connguard-ci
DOCKERFILE_UTILS_VERSION=0.16.3

installed=$(node -p "require('$PREFIX/node_modules/dockerfile-utils/package.json').version" 2>/dev/null || true)
if [ "$installed" != "$DOCKERFILE_UTILS_VERSION" ]; then
  mkdir -p "$PREFIX"
  npm install --no-fund --no-audit --no-save --prefix "$PREFIX" "dockerfile-utils@$DOCKERFILE_UTILS_VERSION"
fi
"$PREFIX/node_modules/.bin/dockerfile-utils" --version
