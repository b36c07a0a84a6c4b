#!/usr/bin/env bash
# gocker's one build helper. Run as root on Debian 12.
#
#   ./build.sh demo    install what is missing, build the static release binary,
#                      run a first container from the built-in busybox image
#   ./build.sh test    install what is missing, build the release binary, fetch the
#                      cgroup v2 test kernel (once), run the whole test suite
#   ./build.sh deps    only install the Debian packages gocker needs
#   ./build.sh release only build .build/release/gocker (fully static) and its gocker-oci link
#   ./build.sh bench   build the release binary and time container starts (`gocker bench
#                      --matrix`) with runc and crun too when installed; writes the chart
#                      to .ci/bench.svg and every sample to .build/bench.json
#   ./build.sh vm      only fetch the pure cgroup v2 test kernel into .build/vm (see test)
#   ./build.sh order   trace a start and write .ci/hot-symbols.txt, the order in
#                      which the release binary's code and data are laid out (minutes)
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages: busybox-static is the built-in image's source; uidmap's
# newuidmap and newgidmap map a rootless user's ranges (csrc/rootless.c) and
# slirp4netns is a rootless container's default network; libcgroup-dev
# the cgroup backend's library; libseccomp-dev compiles seccomp profiles
# (linked statically); libssl-dev for its libcrypto, the SHA-256 of image
# and layer digests, and its libssl, TLS to registries (both linked
# statically); zlib
# and liblzma read gzip and xz image tarballs, libdeflate inflates a gzip
# layer that is a whole file in one call (statically linked too) (`gocker import`); procps the
# host's ps for `gocker top CONTAINER OPTIONS`; qemu-system-x86 and cpio boot the static binary on a pure cgroup
# v2 kernel (Tests/IntegrationTests/CgroupV2VMTests.swift); containerd (with
# runc) is what the tests import a `gocker save` archive into; strace shows
# a test the files the release binary opens; gcc and libc6-dev build the
# static probe program the seccomp tests run inside a container; podman (with
# conmon) drives gocker-oci in the tests as it drives runc; docker-registry
# (the distribution registry) is the registry the tests start on loopback,
# skopeo puts images into it that gocker did not write, and openssl makes
# the tests' own CA and certificates.
PACKAGES=(busybox-static uidmap slirp4netns libcgroup-dev libseccomp-dev libssl-dev pkg-config zlib1g-dev liblzma-dev libdeflate-dev procps qemu-system-x86 cpio containerd strace gcc libc6-dev nftables iproute2 podman docker-registry skopeo openssl)

deps() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing: ${missing[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        # The package's own registry service listens on every address:
        # where systemd runs, it stays off (the tests start their own).
        if [ -d /run/systemd/system ] && printf '%s\n' "${missing[@]}" | grep -qx docker-registry; then
            systemctl disable --now docker-registry >/dev/null 2>&1 || true
        fi
    fi
    # A rootless container's network (slirp4netns) opens /dev/net/tun as
    # its user: udev leaves it 0666 on Debian; a host without udev has the
    # kernel's 0600.
    if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
        chmod 0666 /dev/net/tun
    fi
}

# The test kernel: Debian's cloud kernel (cgroup v2 with every controller),
# unpacked under .build/vm/<package>, with .build/vm/kernel pointing at it.
# Fetched once; a rerun finds it.
vmkernel() {
    local pkg
    pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
    if [ -z "$pkg" ]; then
        apt-get update -qq
        pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
    fi
    [ -n "$pkg" ] || { echo "build.sh: no linux-image-cloud-amd64 kernel package found" >&2; return 1; }
    mkdir -p .build/vm
    if ! ls ".build/vm/$pkg/boot/"vmlinuz-* >/dev/null 2>&1; then
        echo "fetching $pkg" >&2
        rm -rf ".build/vm/$pkg" ".build/vm/$pkg.tmp" .build/vm/*.deb
        # A stale package list may name a version the mirror no longer has.
        (cd .build/vm && { apt-get download -qq -o APT::Sandbox::User=root "$pkg" || { apt-get update -qq && apt-get download -qq -o APT::Sandbox::User=root "$pkg"; }; })
        dpkg-deb -x .build/vm/"$pkg"_*.deb ".build/vm/$pkg.tmp"
        rm -f .build/vm/*.deb
        mv ".build/vm/$pkg.tmp" ".build/vm/$pkg"
    fi
    ln -sfn "$pkg" .build/vm/kernel
}

# Every build this script makes treats a warning as an error, Swift's and
# the C core's (with -Wall): CI (.ci/run) fails on one. (-Wall after
# -Werror: SwiftPM 6.3 stops with an internal error on a -Werror that ends
# the C flags.)
WERROR=(-Xcc -Werror -Xcc -Wall -Xswiftc -warnings-as-errors)

# The release binary: fully static, each function (and each variable of
# the C core) in a section of its own, linked by lld in the order
# .ci/hot-symbols.txt gives (`./build.sh order` writes it): the code a
# start runs sits together, and so do the data it writes, so that a start
# faults in and maps a fraction of the binary's pages. Names the list has
# and the binary has not are skipped. Concrete generic types' metadata is
# reached through accessor functions, not mangled names the runtime
# demangles on first use (a short-lived process pays every first use).
# Each segment starts on a 2 MB boundary, in the file as in memory, with
# .rodata read only in the first one (.ci/release.lds), and the binary is
# written out again in 2 MB writes: the kernel then keeps it in its page
# cache in 2 MB folios (file systems with large folios: ext4 from Linux
# 6.16), and maps a start's code and constants with a handful of 2 MB
# entries instead of faulting in and mapping each 4 KB page of them (about
# 900 for a start, each one unmapped again at its exit). Where the page
# cache holds smaller folios (another file system, or after it dropped
# them and a start read the binary back in) the kernel maps 4 KB pages, as
# before.
# (swift build relinks on every run, the binary it finds not being the one
# it wrote: a change of the link flags, the script or the list takes
# effect at once. It does not see a change of the compiler's flags: after
# one, remove .build/*/release.)
release() {
    swift build -c release "${WERROR[@]}" --static-swift-stdlib -Xswiftc -static-executable \
        -Xswiftc -Xfrontend -Xswiftc -function-sections -Xcc -ffunction-sections -Xcc -fdata-sections -Xswiftc -use-ld=lld \
        -Xswiftc -Xfrontend -Xswiftc -disable-concrete-type-metadata-mangled-name-accessors \
        -Xlinker --symbol-ordering-file="$PWD/.ci/hot-symbols.txt" -Xlinker --no-warn-symbol-ordering \
        -Xlinker -z -Xlinker max-page-size=0x200000 -Xlinker -z -Xlinker separate-loadable-segments \
        -Xlinker -T -Xlinker "$PWD/${LINK_SCRIPT:-.ci/release.lds}" "$@"
    local g
    g=$(readlink -f .build/release/gocker)
    if ! { dd if="$g" of="$g.2m" bs=2M status=none && chmod 0755 "$g.2m"; }; then
        rm -f "$g.2m"
        return 1
    fi
    mv -f "$g.2m" "$g"
    ln -sf gocker .build/release/gocker-oci
}

# .ci/hot-symbols.txt: the functions `gocker oci run` of a bundle and then
# `gocker run --rm busybox true` execute, in the order they first do
# (.ci/first-touch.c single-steps them: minutes), then the data they write
# (.ci/touched-data.c, on a link with each data section on a page of its
# own), less the names the binary defines twice (local helpers and
# variables each object has its own copy of, which would drag whole
# sections along).
order() {
    release
    local tmp g=.build/release/gocker
    tmp=$(mktemp -d)
    # (EXIT: a failing step ends the script under set -e.)
    trap "rm -rf '$tmp'" EXIT
    clang -O2 -o "$tmp/first-touch" .ci/first-touch.c
    clang -O2 -o "$tmp/touched-data" .ci/touched-data.c
    export GOCKER_DATA_ROOT="$tmp/data" GOCKER_STATE_ROOT="$tmp/state"
    # A plain bundle: the created container's config (its binds of
    # /etc/hostname and the like stay in its directory until rm) over its
    # root exported to a directory (gocker's overlay is its own, never
    # named in a bundle).
    local id
    id=$("$g" create busybox true)
    mkdir -p "$tmp/bundle/rootfs"
    "$g" export "$id" | tar -x -C "$tmp/bundle/rootfs"
    cp "$GOCKER_DATA_ROOT/containers/$id/config.json" "$tmp/bundle/"
    # The bundle every OCI user starts from (`runc spec`'s, with a
    # "cgroup" mount), as `./build.sh bench` makes it.
    mkdir "$tmp/runc-spec"
    if command -v runc >/dev/null; then runc spec --bundle "$tmp/runc-spec"; else rmdir "$tmp/runc-spec"; fi
    "$g" bench --write-bundle "$tmp/runc-spec"
    # One start of each untraced first: the seccomp programs are then in
    # the cache, as on every start but a machine's first (compiling one is
    # millions of single steps under the tracer, and not the path to lay out).
    warm() {
        "$g" oci run --bundle "$tmp/bundle" gocker-warm
        "$g" oci run --bundle "$tmp/runc-spec" gocker-warm
        "$g" run --rm busybox true
    }
    warm
    "$tmp/first-touch" "$g" -- "$g" oci run --bundle "$tmp/bundle" gocker-order >"$tmp/oci"
    "$tmp/first-touch" "$g" -- "$g" oci run --bundle "$tmp/runc-spec" gocker-order >"$tmp/spec"
    "$tmp/first-touch" "$g" -- "$g" run --rm busybox true >"$tmp/run"
    LINK_SCRIPT=.ci/page-per-section.lds release
    warm
    "$tmp/touched-data" "$g" -- "$g" oci run --bundle "$tmp/bundle" gocker-order >"$tmp/data-oci"
    "$tmp/touched-data" "$g" -- "$g" oci run --bundle "$tmp/runc-spec" gocker-order >"$tmp/data-spec"
    "$tmp/touched-data" "$g" -- "$g" run --rm busybox true >"$tmp/data-run"
    "$g" rm "$id" >/dev/null
    nm --defined-only "$g" | awk '{ print $3 }' | sort | uniq -d >"$tmp/twice"
    # The data sections smallest first: a large one among them (a table of
    # which a start touches a few pages) would keep the small ones apart.
    cat "$tmp/data-oci" "$tmp/data-spec" "$tmp/data-run" | sort -s -n -k1,1 | awk '{ print $2 }' >"$tmp/hot-data"
    awk 'FILENAME == ARGV[1] { twice[$0] = 1; next } !($0 in twice) && !seen[$0]++' "$tmp/twice" \
        "$tmp/oci" "$tmp/spec" "$tmp/run" "$tmp/hot-data" >.ci/hot-symbols.txt
    release
    echo "build.sh: $(wc -l <.ci/hot-symbols.txt) names in .ci/hot-symbols.txt, the release binary relinked" >&2
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
    # A row for the bundle every OCI user starts from: runc spec's config
    # (runc's own where it is installed, else gocker oci spec's) running
    # `true` without a terminal, on a busybox root.
    bundles=$(mktemp -d)
    trap 'rm -rf "$bundles"' EXIT
    mkdir "$bundles/runc-spec"
    if command -v runc >/dev/null; then runc spec --bundle "$bundles/runc-spec"; else rmdir "$bundles/runc-spec"; fi
    .build/release/gocker bench --write-bundle "$bundles/runc-spec"
    echo "+ gocker bench --matrix ${runtimes[*]} --bundle $bundles/runc-spec --json .build/bench.json --svg .ci/bench.svg $*" >&2
    .build/release/gocker bench --matrix "${runtimes[@]}" --bundle "$bundles/runc-spec" \
        --json .build/bench.json --svg .ci/bench.svg "$@"
    ;;
vm) deps; vmkernel ;;
order) deps; order ;;
test)
    shift
    deps
    # The cgroup v2 VM test boots the static release binary on the test kernel.
    release
    vmkernel
    exec swift test "${WERROR[@]}" "$@"
    ;;
*)
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
