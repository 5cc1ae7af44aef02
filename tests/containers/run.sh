#!/usr/bin/env bash
# `make test-containers`: build the images and run the container tier (tests/containers).
#
# Uses docker when a Docker engine answers; otherwise podman, installed with apt when missing
# (root), run with the project's containers.conf and its Docker-compatible socket, so that
# kfp.local's DockerRunner drives it. Base images come from docker/build.sh: the pinned upstream
# ones where a registry answers, local stand-ins where none does.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}

if docker info >/dev/null 2>&1; then
    export ENGINE=docker
else
    missing=()
    for tool in podman buildah runc debootstrap; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        [ "$(id -u)" = 0 ] || { echo "test-containers: install ${missing[*]} (apt), or run as root" >&2; exit 1; }
        echo "test-containers: apt-get install ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman buildah runc debootstrap uidmap >/dev/null
    fi
    export ENGINE=podman
    # runc and cgroupfs (crun refuses hybrid cgroups here), ulimits within the host's hard limits
    export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/docker/podman-containers.conf}
    socket_dir=$(mktemp -d)
    podman system service --time=0 "unix://$socket_dir/podman.sock" &
    service=$!
    trap 'kill $service 2>/dev/null; rm -rf "$socket_dir"' EXIT
    export DOCKER_HOST=unix://$socket_dir/podman.sock
    for _ in $(seq 100); do [ -S "$socket_dir/podman.sock" ] && break; sleep 0.1; done
fi

start=$SECONDS
docker/build.sh
echo "test-containers: images built in $((SECONDS - start)) s"
"$PY" -m pytest -m containers tests/containers "$@"
