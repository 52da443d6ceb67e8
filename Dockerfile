# syntax=docker/dockerfile:1
# The connguard image: a build stage that runs the Maven wrapper, and a JRE-only run stage that holds
# nothing but the runnable jar. The run stage writes nothing at run time (read-only root filesystem),
# needs no shell (exec-form ENTRYPOINT) and runs as a numeric non-root user.
#
#   docker build -t connguard:dev .
#   docker run --rm connguard:dev --version
#
# Both base images can be replaced, e.g. by locally built ones where no registry is reachable:
#   --build-arg BUILD_IMAGE=...   any JDK 17+ image with a POSIX shell (the wrapper is a shell script);
#                                 the default is a JDK 21
#   --build-arg BASE_IMAGE=...    any JRE 17+ image with `java` on its PATH, no shell needed (the jar is
#                                 Java 17 bytecode, and Java 17, 21 and 25 accept the entrypoint's
#                                 flags); the default is a Java 25 runtime

ARG BUILD_IMAGE=eclipse-temurin:21-jdk
ARG BASE_IMAGE=eclipse-temurin:25-jre

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY mvnw pom.xml ./
COPY .mvn/ .mvn/
COPY proxy-core/ proxy-core/
COPY protocol-postgres/ protocol-postgres/
COPY protocol-mysql/ protocol-mysql/
COPY proxy-app/ proxy-app/
# The cache mount keeps ~/.m2 between builds without putting it into a layer.
RUN --mount=type=cache,target=/root/.m2 ./mvnw -q -B package -DskipTests

FROM ${BASE_IMAGE}
ARG BASE_IMAGE
ARG VERSION=0.1.0-SNAPSHOT
ARG REVISION=unknown
LABEL org.opencontainers.image.title="connguard" \
      org.opencontainers.image.description="Database connection guard: a PostgreSQL and MySQL sidecar proxy that caps connections per client, kills idle transactions and names leaks" \
      org.opencontainers.image.url="https://github.com/connguard/connguard" \
      org.opencontainers.image.source="https://github.com/connguard/connguard" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"

COPY --from=build /src/proxy-app/target/connguard.jar /opt/connguard/connguard.jar

# The configuration is a mounted file (a ConfigMap in Kubernetes); mount its directory, not the file
# with subPath, so that connguard sees updates and reloads them.
ENV CONNGUARD_CONFIG=/etc/connguard/connguard.yaml
# 65532 is the conventional "nonroot" id; numeric, so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
# The admin HTTP port (/metrics /healthz /readyz); the database listeners are configured per deployment.
EXPOSE 9633

# Memory: every part the JVM can grow is capped so that their sum stays inside the container's limit, and
# running out of one is a clean outcome, never the kernel's OOM kill (docs/memory.md has the arithmetic).
# The heap is 25% of the limit: Min- and MaxRAMPercentage both, because below 256 MiB the JVM takes
# MinRAMPercentage (default 50%) and ignores MaxRAMPercentage. Direct memory (Netty's buffers) is capped
# at the heap's size, the JVM's default for MaxDirectMemorySize, which Netty follows; a session whose
# buffer cannot be allocated is closed and logged, the proxy carries on. Metaspace (~14 MiB used) and the
# code cache (~6-12 MiB used) are capped; a full heap or metaspace exits the JVM (ExitOnOutOfMemoryError)
# for the orchestrator to restart it. In a 256 MiB container: 64 heap + 64 direct + 32 metaspace + 24
# code cache + ~44 for the JVM itself and its threads = 228 MiB.
# The serial collector with a 4 MiB young generation, chosen by measurement (bench/README.md,
# "Footprint"): the relay path allocates nothing, so young collections come only with connection churn;
# no concurrent GC threads wake an idle sidecar (ZGC's director runs 100 times a second); a young
# generation is resident memory once touched, and 16 MiB of it bought nothing. TrimNativeHeapInterval
# hands memory the JIT compiler freed back to the system once a second. On Java 25, Netty
# leaves sun.misc.Unsafe alone unless the JDK allows its memory access without a warning; the property
# below does that (it is what --sun-misc-unsafe-memory-access=allow sets, an option Java 21 and 17 would
# refuse, while they ignore the property), so that buffers get Netty's fast Unsafe paths and copying a
# header out of a direct buffer allocates nothing. PerfDisableSharedMem keeps the JVM from writing
# /tmp/hsperfdata_*. Netty extracts its native epoll library to java.io.tmpdir (and, for a listener
# with clientTls, BoringSSL's, 3 MB): mount a writable emptyDir at /tmp (the Helm chart does) or
# connguard falls back to Java NIO and the JDK's TLS. Extra JVM flags: the Helm chart's sidecar.jvmOptions,
# which it puts after these on the container's command so that they override them; the chart repeats these
# flags (connguard.imageJvmFlags in helm/connguard/templates/_sidecar.tpl; a test keeps the two equal).
ENTRYPOINT ["java", \
            "-XX:MinRAMPercentage=25", \
            "-XX:MaxRAMPercentage=25", \
            "-XX:MaxMetaspaceSize=32m", \
            "-XX:ReservedCodeCacheSize=24m", \
            "-XX:+UseSerialGC", \
            "-Xmn4m", \
            "-XX:TrimNativeHeapInterval=1000", \
            "-Dsun.misc.unsafe.memory.access=allow", \
            "-XX:+ExitOnOutOfMemoryError", \
            "-XX:+PerfDisableSharedMem", \
            "--enable-native-access=ALL-UNNAMED", \
            "-Djava.io.tmpdir=/tmp", \
            "-jar", "/opt/connguard/connguard.jar"]
