#!/usr/bin/env bash
# Installs (Debian, as root) and starts the Docker engine colony's container tests use,
# and builds their image locally (no registry is reachable from CI): Debian's
# busybox-static in a root filesystem, `docker import`ed as colony-test/busybox:latest.
# Idempotent: installs only what is missing, starts dockerd only when it is not
# answering, imports the image only when it is absent.
set -euo pipefail
# Only the KEY=value lines below go to stdout (callers eval them); everything the
# commands print (apt, pg_ctlcluster's "Removed stale pid file.", ...) goes to stderr.
exec 3>&1 1>&2  # (daemons started below get 3>&- so they do not hold the caller's pipe open)

IMAGE=colony-test/busybox:latest
SOCK=/var/run/docker.sock

need=()
command -v dockerd >/dev/null || need+=(docker.io)
# socat serves the engine over mutual TLS in test/docker-tls.test.ts.
command -v socat >/dev/null || need+=(socat)
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx sh || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "missing packages: ${need[*]} (run as root to install)" >&2; exit 1; fi
  apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  }
fi

ping_engine() {
  # Prefer curl when present; else the docker client; both talk to the socket.
  if command -v curl >/dev/null; then
    curl -fsS --unix-socket "$SOCK" http://localhost/_ping >/dev/null 2>&1
  else
    docker version >/dev/null 2>&1
  fi
}

if ! ping_engine; then
  # vfs works everywhere (no overlay mounts inside containers or odd filesystems).
  nohup dockerd --storage-driver=vfs >/tmp/dockerd.log 2>&1 3>&- &
  for _ in $(seq 150); do ping_engine && break; sleep 0.2; done
  ping_engine || { echo "dockerd did not start; see /tmp/dockerd.log" >&2; tail -20 /tmp/dockerd.log >&2; exit 1; }
fi

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/root" "$root/proc" "$root/sys" "$root/dev"
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]' - "$IMAGE" >/dev/null
fi

echo "COLONY_TEST_DOCKER_IMAGE=$IMAGE" >&3
