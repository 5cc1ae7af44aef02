#!/usr/bin/env bash
# Local stand-ins for the Dockerfiles' base images, for machines that reach no image registry.
#
#   docker/stand-in.sh python       -> localhost/stand-in/python:3.11-bookworm
#   docker/stand-in.sh tensorflow   -> localhost/stand-in/tensorflow:2.21.0-cpu
#
# The Python base is Debian bookworm's Python 3.11.2 made with debootstrap (root needed), with a
# venv at /usr/local: python and pip on PATH and no Debian Python packages visible, the layout of
# python:3.11-slim. It is NOT the pinned upstream base (trixie, Python 3.11.15). The root
# filesystem is kept as a tarball in the cache, so only the first run on a machine debootstraps.
# Environment: ENGINE (docker|podman), MNIST_CACHE (default ~/.cache/mnist-kfp), DEBIAN_MIRROR,
# BUILD_OPTIONS (extra `build` options: podman's -v for a wheel cache; see build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON_STAND_IN=localhost/stand-in/python:3.11-bookworm
TENSORFLOW_STAND_IN=localhost/stand-in/tensorflow:2.21.0-cpu
CACHE=${MNIST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mnist-kfp}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ENGINE=${ENGINE:?set ENGINE to docker or podman}

python_base() {
    if $ENGINE image inspect "$PYTHON_STAND_IN" >/dev/null 2>&1; then
        return
    fi
    local tarball=$CACHE/python-3.11-bookworm-rootfs.tar
    if [ ! -s "$tarball" ]; then
        command -v debootstrap >/dev/null || { echo "stand-in: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
        [ "$(id -u)" = 0 ] || { echo "stand-in: debootstrap needs root" >&2; exit 1; }
        local root
        root=$(mktemp -d)
        trap 'rm -rf "$root"' RETURN
        echo "stand-in: debootstrap bookworm from $MIRROR (about a minute)" >&2
        debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,netbase,tzdata \
            bookworm "$root" "$MIRROR" >"$root.log" 2>&1 \
            || { tail -5 "$root.log" >&2; echo "stand-in: debootstrap failed (log: $root.log)" >&2; exit 1; }
        rm -f "$root.log"
        chroot "$root" python3 -m venv /usr/local
        rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/log/* "$root"/usr/share/doc/* \
            "$root"/usr/share/man/* "$root"/usr/share/locale/*
        mkdir -p "$CACHE"
        tar -C "$root" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
    fi
    $ENGINE import \
        --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        "$tarball" "$PYTHON_STAND_IN" >/dev/null
    echo "stand-in: made $PYTHON_STAND_IN (Debian bookworm, Python 3.11.2)" >&2
}

tensorflow_base() {
    python_base
    if $ENGINE image inspect "$TENSORFLOW_STAND_IN" >/dev/null 2>&1; then
        return
    fi
    # shellcheck disable=SC2086  # BUILD_OPTIONS is a list of arguments
    $ENGINE build ${BUILD_OPTIONS:-} --build-arg BASE_IMAGE="$PYTHON_STAND_IN" \
        -f docker/stand-in/tensorflow-gpu.Containerfile -t "$TENSORFLOW_STAND_IN" docker/stand-in >/dev/null
    echo "stand-in: made $TENSORFLOW_STAND_IN (the Python stand-in plus tensorflow==2.21.0, no CUDA)" >&2
}

case "${1:-}" in
    python) python_base; echo "$PYTHON_STAND_IN" ;;
    tensorflow) tensorflow_base; echo "$TENSORFLOW_STAND_IN" ;;
    *) echo "usage: docker/stand-in.sh python|tensorflow" >&2; exit 2 ;;
esac
