#!/usr/bin/env bash
# gocker's one build helper. Run as root on Debian 12.
#
#   ./build.sh demo    install what is missing, build the static release binary,
#                      run a first container from the built-in busybox image
#   ./build.sh test    install what is missing, run the whole test suite
#   ./build.sh deps    only install the Debian packages gocker needs
#   ./build.sh release only build .build/release/gocker (fully static) and its gocker-oci link
#   ./build.sh bench   build the release binary and time container starts (`gocker bench
#                      --matrix`) with runc and crun too when installed; writes the chart
#                      to .ci/bench.svg and every sample to .build/bench.json
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages: busybox-static is the built-in image's source; libcgroup-dev
# the cgroup backend's library; zlib and liblzma read gzip and xz image
# tarballs (`gocker import`); containerd (with runc) is what the tests import
# a `gocker save` archive into.
PACKAGES=(busybox-static libcgroup-dev pkg-config zlib1g-dev liblzma-dev containerd)

deps() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing: ${missing[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

release() {
    swift build -c release --static-swift-stdlib -Xswiftc -static-executable "$@"
    ln -sf gocker .build/release/gocker-oci
}

case "${1:-}" in
deps) deps ;;
release) shift; deps; release "$@" ;;
demo)
    deps
    release
    echo "+ gocker run --rm busybox sh -c 'echo hello from \$(hostname), I am PID \$\$; ls /'" >&2
    exec .build/release/gocker run --rm busybox sh -c 'echo hello from $(hostname), I am PID $$; ls /'
    ;;
bench)
    shift
    deps
    release
    runtimes=()
    for r in runc crun; do
        if command -v "$r" >/dev/null; then runtimes+=(--runtime "$r"); fi
    done
    echo "+ gocker bench --matrix ${runtimes[*]} --json .build/bench.json --svg .ci/bench.svg $*" >&2
    exec .build/release/gocker bench --matrix "${runtimes[@]}" --json .build/bench.json --svg .ci/bench.svg "$@"
    ;;
test)
    shift
    deps
    exec swift test "$@"
    ;;
*)
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
