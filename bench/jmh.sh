#!/usr/bin/env bash
# The JMH micro-benchmarks (src/test/java/**/*Benchmark.java): the protocol scanners and trackers in
# protocol-postgres and protocol-mysql, the per-client accounting in proxy-core. They are compiled with
# the tests but never run by ./mvnw verify.
#
#   bench/jmh.sh                          every benchmark of the three modules, with -prof gc
#   bench/jmh.sh postgres                 one module (postgres | mysql | core)
#   bench/jmh.sh mysql -p conversation=sysbench-point-select -f 1 -wi 2 -i 3    any JMH options after it
#   JAVA=/usr/lib/jvm/temurin-25-jdk-amd64/bin/java bench/jmh.sh              on another JVM
#
# Read the `relay:bytes` rows (bytes relayed per second on one core) and `gc.alloc.rate.norm` (bytes
# allocated per pass over the conversation: ~0 on the relay path); ClientSeriesBenchmark's ns/op is the
# accounting of one query with two loops busy at once (compare with `-t 1`).
set -euo pipefail
cd "$(dirname "$0")/.."
JAVA=${JAVA:-java}
modules=(proxy-core protocol-postgres protocol-mysql)
case "${1:-}" in
  postgres | mysql) modules=("protocol-$1"); shift ;;
  core) modules=(proxy-core); shift ;;
esac
list=$(IFS=,; echo "${modules[*]}")
./mvnw -q -pl "$list" -am test-compile dependency:build-classpath \
  -Dmdep.outputFile=target/jmh.classpath -Dmdep.includeScope=test
for module in "${modules[@]}"; do
  # A protocol module's classpath holds proxy-core's test classes (its test support), benchmarks included.
  only_own=()
  [ "$module" = proxy-core ] || only_own=(-e 'io\.connguard\.core\.')
  "$JAVA" -cp "$module/target/test-classes:$module/target/classes:$(cat "$module/target/jmh.classpath")" \
    org.openjdk.jmh.Main -prof gc "${only_own[@]}" "$@"
done
