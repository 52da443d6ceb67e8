#!/usr/bin/env bash
# Fuzzes connguard's parsers and trackers with Jazzer for a set time, one target after another, in one
# process each (a fuzzing JVM fuzzes a single @FuzzTest).
#
#   fuzz/run.sh                          every target, 5 minutes each
#   fuzz/run.sh 10m PgFuzzTest#session   one target for 10 minutes (durations: 30s, 10m, 1h)
#   fuzz/run.sh 2m PgFuzzTest            every target of a class
#
# Inputs that fail are written to the target's Inputs directory under src/test/resources (crash-*,
# timeout-*, ...), where `./mvnw verify` replays them from then on: fix the bug, keep the file. The corpus
# a run grows goes to <module>/.cifuzz-corpus/ (ignored by git) and is reused by the next run.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${1:-5m}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(ConfigFuzzTest PgFuzzTest MySqlFuzzTest)
fi

module_of() {
  case "$1" in
    Config*) echo proxy-core ;;
    Pg*) echo protocol-postgres ;;
    MySql*) echo protocol-mysql ;;
    *) echo "unknown fuzz test class: $1" >&2; exit 2 ;;
  esac
}

methods_of() {
  local class=$1 module
  module=$(module_of "$class")
  grep -A1 '@FuzzTest' "$(find "$module/src/test/java" -name "$class.java")" \
    | sed -n 's/^ *void \([A-Za-z0-9_]*\)(.*/\1/p'
}

seconds() {
  case "$1" in
    *h) echo $(( ${1%h} * 3600 )) ;;
    *m) echo $(( ${1%m} * 60 )) ;;
    *s) echo "${1%s}" ;;
    *) echo "$1" ;;
  esac
}

run_one() {
  local class=$1 method=$2 module
  module=$(module_of "$class")
  echo "=== fuzzing $class#$method for $duration"
  # The leak detector is off while fuzzing (FuzzAllocator checks every buffer itself, far faster);
  # -timeout: an input that runs for 10 s is reported as a hang.
  JAZZER_FUZZ=1 ./mvnw -q -pl "$module" -am test \
    -Dtest="$class#$method" -Dsurefire.failIfNoSpecifiedTests=false \
    -Dtest.argLine="-Dio.netty.leakDetection.level=disabled -XX:+EnableDynamicAgentLoading" \
    -Djazzer.internal.arg.0=fuzz \
    -Djazzer.internal.arg.1=-max_total_time="$(seconds "$duration")" \
    -Djazzer.internal.arg.2=-timeout=10
}

failed=()
for target in "${targets[@]}"; do
  class=${target%%#*}
  if [[ $target == *#* ]]; then
    methods=("${target#*#}")
  else
    mapfile -t methods < <(methods_of "$class")
  fi
  for method in "${methods[@]}"; do
    run_one "$class" "$method" || failed+=("$class#$method")
  done
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "findings (see the Inputs directories under src/test/resources): ${failed[*]}" >&2
  exit 1
fi
