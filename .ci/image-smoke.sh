#!/usr/bin/env bash
# Builds the connguard image from the Dockerfile on a machine with no Docker engine and no container
# registry, then starts its entrypoint once with --version. Not run by .ci/run (it takes minutes).
#
# Both base images of the Dockerfile are made locally from what the machine has:
#   BUILD_IMAGE  dash and busybox (a shell and tools for the Maven wrapper) + the whole JDK
#   BASE_IMAGE   a jlink'ed Java runtime and the shared libraries it needs, nothing else: no shell,
#                no /etc/passwd, so the run proves the image needs neither
# and `podman build --isolation=chroot` runs the Dockerfile as written; its Maven build fetches from
# Maven Central like any build. Needs root, podman (installed from Debian when missing) and a JDK 21+.
#
#   sudo .ci/image-smoke.sh            JDK=/path/to/jdk21+ to choose the JDK
set -euo pipefail
cd "$(dirname "$0")/.."

JDK=${JDK:-/usr/lib/jvm/temurin-25-jdk-amd64}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
BUILD_IMAGE=localhost/connguard-build-base:local
BASE_IMAGE=localhost/connguard-jre-base:local
IMAGE=localhost/connguard:smoke

log() { printf '\n== %s\n' "$*"; }

if ! command -v podman >/dev/null; then
  log "installing podman from Debian"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman
fi
"$JDK/bin/java" -version

# Copies into the root filesystem $1 every host library that the ELF files under $1 load.
add_libraries() {
  local root=$1 file lib
  find "$root" -type f \( -name '*.so*' -o -perm -u+x \) -print0 | while IFS= read -r -d '' file; do
    ldd "$file" 2>/dev/null | grep -o '/[^ ]*' || true
  done | sort -u | while read -r lib; do
    [ -e "$root$lib" ] && continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  # The dynamic loader, under the path every binary names.
  mkdir -p "$root/lib64" && cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"
}

# The Java runtime under $1 gets a real CA store: a distribution's JDK may link it to /etc/ssl.
add_ca_store() {
  cp -L --remove-destination "$JDK/lib/security/cacerts" "$1/opt/java/openjdk/lib/security/cacerts"
}

# Imports the root filesystem $1 as image $2 with PATH and JAVA_HOME set.
import_image() {
  tar -C "$1" -c . | podman import \
    --change 'ENV PATH=/opt/java/openjdk/bin:/usr/local/bin:/usr/bin:/bin' \
    --change 'ENV JAVA_HOME=/opt/java/openjdk' - "$2" >/dev/null
}

log "run base $BASE_IMAGE: jlink'ed runtime, no shell"
run_root=$WORK/run-root
# Empty mount points for the container runtime; /tmp stays read-only unless a volume is mounted.
mkdir -p "$run_root/opt/java" "$run_root/tmp" "$run_root/etc" "$run_root/proc" "$run_root/dev" "$run_root/sys"
chmod 1777 "$run_root/tmp"
"$JDK/bin/jlink" --add-modules java.se,jdk.unsupported,jdk.crypto.ec,jdk.management,jdk.naming.dns,jdk.zipfs \
  --strip-debug --no-man-pages --no-header-files --output "$run_root/opt/java/openjdk"
add_libraries "$run_root"
add_ca_store "$run_root"
test ! -e "$run_root/bin/sh"
import_image "$run_root" "$BASE_IMAGE"

log "build base $BUILD_IMAGE: dash, busybox and the JDK"
build_root=$WORK/build-root
mkdir -p "$build_root/bin" "$build_root/opt/java" "$build_root/tmp" "$build_root/root" "$build_root/etc"
chmod 1777 "$build_root/tmp"
(cd "$WORK" && apt-get download busybox-static dash >/dev/null 2>&1 \
   || { apt-get update -qq && apt-get download busybox-static dash >/dev/null; })
dpkg-deb -x "$WORK"/busybox-static_*.deb "$WORK/debs"
dpkg-deb -x "$WORK"/dash_*.deb "$WORK/debs"
cp "$WORK/debs/bin/busybox" "$WORK/debs/bin/dash" "$build_root/bin/"
for applet in $("$build_root/bin/busybox" --list); do
  # dash is the shell: busybox's own shell would run its wget applet, whose TLS fails against
  # Maven Central. Without wget and curl the Maven wrapper downloads Maven with its Java downloader.
  case $applet in sh|ash|wget|busybox) continue ;; esac
  ln -sf busybox "$build_root/bin/$applet"
done
ln -sf dash "$build_root/bin/sh"
cp -a "$JDK" "$build_root/opt/java/openjdk"
add_libraries "$build_root"
# Maven's console library (jansi) loads libutil; nothing links it, so add_libraries cannot see it.
cp -L /lib/x86_64-linux-gnu/libutil.so.1 "$build_root/lib/x86_64-linux-gnu/"
add_ca_store "$build_root"
echo 'root:x:0:0:root:/root:/bin/sh' > "$build_root/etc/passwd"
import_image "$build_root" "$BUILD_IMAGE"

log "podman build --isolation=chroot (the Dockerfile as written)"
podman build --isolation=chroot --network=host \
  --build-arg BUILD_IMAGE="$BUILD_IMAGE" --build-arg BASE_IMAGE="$BASE_IMAGE" \
  --build-arg REVISION="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  -t "$IMAGE" .

log "image configuration"
podman image inspect "$IMAGE" --format \
  'user={{.Config.User}} entrypoint={{json .Config.Entrypoint}} ports={{json .Config.ExposedPorts}} env={{json .Config.Env}}'
podman image inspect "$IMAGE" --format '{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}{{"\n"}}{{end}}'
test "$(podman image inspect "$IMAGE" --format '{{.Config.User}}')" = "65532:65532"

log "entrypoint --version: read-only root, user 65532, no network, no capabilities"
mapfile -t entrypoint < <(podman image inspect "$IMAGE" --format '{{range .Config.Entrypoint}}{{.}}{{"\n"}}{{end}}')
mapfile -t environment < <(podman image inspect "$IMAGE" --format '{{range .Config.Env}}{{.}}{{"\n"}}{{end}}')
if podman run --rm --read-only --read-only-tmpfs=false --network=none --cap-drop=ALL \
     --security-opt=no-new-privileges "$IMAGE" --version > "$WORK/version.txt" 2> "$WORK/run.err"; then
  echo "podman run: $(cat "$WORK/version.txt")"
else
  # Some sandboxes refuse the OCI runtime's setrlimit (RLIMIT_NPROC without CAP_SYS_RESOURCE). Then
  # run the image's own entrypoint, user and environment on its read-only root filesystem, with
  # only /proc mounted (the JVM finds its libraries through /proc/self/exe), in fresh namespaces.
  echo "podman run is not possible here ($(tail -1 "$WORK/run.err")); chroot into the image instead"
  root=$(podman image mount "$IMAGE")
  trap 'podman image unmount "$IMAGE" >/dev/null; rm -rf "$WORK"' EXIT
  unshare --mount --pid --net --fork sh -c 'mount -t proc proc "$0/proc" && exec "$@"' "$root" \
    env -i "${environment[@]}" "$(command -v chroot)" --userspec="$(podman image inspect "$IMAGE" --format '{{.Config.User}}')" \
    "$root" "${entrypoint[@]}" --version > "$WORK/version.txt"
  echo "chroot: $(cat "$WORK/version.txt")"
  test ! -e "$root/bin/sh"
fi
grep -q '^connguard ' "$WORK/version.txt"
log "image smoke test passed: $(cat "$WORK/version.txt")"
