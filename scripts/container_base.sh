#!/usr/bin/env bash
# Builds a Debian bookworm base image with debootstrap, for machines that cannot pull from a
# registry (CI here): `podman build --build-arg BASE_IMAGE=localhost/debian:bookworm`.
# Cached as a `podman save` archive (loading it takes a second, debootstrap ~45 s).
# Usage: scripts/container_base.sh [IMAGE]   (root; needs podman and debootstrap)
set -euo pipefail
image=${1:-localhost/debian:bookworm}
cache=${B3_CACHE_DIR:-$HOME/.cache/b3-pipeline}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
archive="$cache/$(tr -c 'a-zA-Z0-9.\n-' '_' <<<"$image").tar"

if podman image exists "$image"; then exit 0; fi
if [ -s "$archive" ] && podman load -q -i "$archive" >/dev/null && podman image exists "$image"; then
  exit 0
fi

mkdir -p "$cache"
rootfs=$(mktemp -d /var/tmp/b3-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "container_base: debootstrap bookworm -> $image" >&2
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 ||
  { tail -20 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
rm -f "$rootfs.log"
# Security and point-release updates, as the official images have (chromium lives there).
cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror%/debian}/debian-security bookworm-security main
EOF
# Like the official slim images: no docs or man pages, no recommends.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
EOF
echo 'APT::Install-Recommends "false";' >"$rootfs/etc/apt/apt.conf.d/00no-recommends"
rm -f "$rootfs"/var/cache/apt/archives/*.deb
rm -rf "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" --numeric-owner -c . |
  podman import -q --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
podman save -q -o "$archive.tmp" "$image" && mv "$archive.tmp" "$archive"
