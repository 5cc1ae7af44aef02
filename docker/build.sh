#!/usr/bin/env bash
# Build the step images that components/images.py names (CPU, slim, GPU), with docker or podman.
#
#   docker/build.sh           build the three images, tagged $MNIST_IMAGE_REGISTRY/<name>:<version>
#   docker/build.sh --push    build, then push them
#
# Each Dockerfile's BASE_IMAGE default is the pinned upstream image. When that image is neither
# here nor pullable (a machine that reaches no registry), the build uses a local stand-in
# (docker/stand-in.sh) and says so: never push what was built on a stand-in.
# Environment: ENGINE (docker|podman; default: the one that answers), PLATFORM (linux/amd64),
# MNIST_IMAGE_REGISTRY, MNIST_CACHE (default ~/.cache/mnist-kfp), PY (the project's python).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
PLATFORM=${PLATFORM:-linux/amd64}
CACHE=${MNIST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mnist-kfp}
PUSH=${1:-}

if [ -z "${ENGINE:-}" ]; then
    if docker info >/dev/null 2>&1; then ENGINE=docker
    elif podman info >/dev/null 2>&1; then ENGINE=podman
    else echo "build: neither docker nor podman answers (docker info / podman info)" >&2; exit 1
    fi
fi
export ENGINE

# podman (buildah) can mount host paths into a build; the mounts are never part of an image.
# Where this machine is of the images' kind (Linux x86_64, CPython 3.11), the host's pip (with
# its own index and CA settings) fills a cache with every pinned file, and the builds install
# from it alone, with no network. Elsewhere they use the index, trusting the host pip's CA file.
# docker builds use the index as usual.
BUILD_OPTIONS=""
if [ "$(basename "$ENGINE")" = podman ]; then
    mkdir -p "$CACHE"
    conf=$CACHE/pip.conf
    printf '[global]\n' >"$conf.part"
    if "$PY" -c 'import sys, platform; sys.exit(not (sys.version_info[:2] == (3, 11) and platform.system() == "Linux" and platform.machine() == "x86_64"))'; then
        wheels=$CACHE/wheels
        for lock in docker/requirements.txt docker/requirements-slim.txt; do
            if ! log=$("$PY" -m pip download --quiet --no-deps --require-hashes -r "$lock" -d "$wheels" 2>&1); then
                echo "$log" | grep -v '^WARNING' >&2
                echo "build: could not fetch the files that $lock pins" >&2
                exit 1
            fi
        done
        # What pip builds sdists (kfp-server-api) and the project itself with, offline.
        "$PY" -m pip download --quiet 'setuptools>=77' wheel -d "$wheels" 2>/dev/null
        printf 'no-index = true\nfind-links = /run/mnist-build/wheels\n' >>"$conf.part"
        BUILD_OPTIONS="-v $wheels:/run/mnist-build/wheels:ro"
    else
        cert=$("$PY" -m pip config get global.cert 2>/dev/null || echo "${PIP_CERT:-}")
        if [ -n "$cert" ]; then
            printf 'cert = /run/mnist-build/ca.crt\n' >>"$conf.part"
            BUILD_OPTIONS="-v $cert:/run/mnist-build/ca.crt:ro"
        fi
    fi
    mv "$conf.part" "$conf"
    # Docker's image format keeps SHELL (docker/Dockerfile.gpu's pipefail); OCI would drop it.
    BUILD_OPTIONS="$BUILD_OPTIONS -v $conf:/etc/pip.conf:ro --format docker"
fi
export BUILD_OPTIONS

# The base a Dockerfile will use: its pinned default when present or pullable, else a stand-in.
base_for() {
    local dockerfile=$1 kind=$2 pinned
    pinned=$(sed -n 's/^ARG BASE_IMAGE=//p' "$dockerfile")
    if $ENGINE image inspect "$pinned" >/dev/null 2>&1 \
        || timeout 120 "$ENGINE" pull --quiet "$pinned" >/dev/null 2>&1; then
        echo "$pinned"
        return
    fi
    local stand_in
    stand_in=$(docker/stand-in.sh "$kind")
    echo "build: $pinned cannot be pulled here; building on the local stand-in $stand_in" >&2
    echo "$stand_in"
}

cpu_base=$(base_for docker/Dockerfile python)
gpu_base=$(base_for docker/Dockerfile.gpu tensorflow)
if [ "$PUSH" = --push ]; then
    case "$cpu_base $gpu_base" in
        *localhost/stand-in/*) echo "build: not pushing images built on a stand-in base: build where the pinned bases can be pulled" >&2; exit 1 ;;
    esac
fi

"$PY" -m components.images | while read -r image dockerfile requirements; do
    args=(--platform "$PLATFORM" -f "$dockerfile" --build-arg REQUIREMENTS="$requirements")
    if [ "$dockerfile" = docker/Dockerfile.gpu ]; then
        args+=(--build-arg BASE_IMAGE="$gpu_base")
        # The stand-in has no CUDA: no cuDNN for it (see docker/Dockerfile.gpu).
        case $gpu_base in localhost/stand-in/*) args+=(--build-arg CUDNN_VERSION=) ;; esac
    else
        args+=(--build-arg BASE_IMAGE="$cpu_base")
    fi
    start=$SECONDS
    # shellcheck disable=SC2086  # BUILD_OPTIONS is a list of arguments
    $ENGINE build --quiet $BUILD_OPTIONS "${args[@]}" -t "$image" . >/dev/null
    size=$($ENGINE image inspect --format '{{.Size}}' "$image")
    echo "built $image in $((SECONDS - start)) s: $((size / 1000000)) MB"
    if [ "$PUSH" = --push ]; then
        $ENGINE push "$image"
    fi
done
