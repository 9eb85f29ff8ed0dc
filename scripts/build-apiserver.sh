#!/usr/bin/env bash
# Builds a real kube-apiserver (and, with --with-controller-manager, a
# kube-controller-manager) offline from Debian 12's `kubernetes` source package
# (upstream 1.20 with its vendor/ tree) using Debian's Go, with no module proxy.
# The recipe is that of the design notes (TESTING.md, "A real kube-apiserver,
# offline"), plus one source patch for Go 1.19 (see below).
#
# The binaries are cached in ${KVIP_CACHE:-/var/cache/kvip}/bin so only the
# first run pays; the build tree lives in a temp dir under the cache and is
# deleted afterwards. Idempotent: a cached binary built by this RECIPE that
# runs `--version` is kept.
# Always makes sure etcd and openssl (needed to *run* the API server) are there.
set -euo pipefail

usage() {
    echo "usage: $0 [--with-controller-manager]" >&2
    exit 2
}

with_controller_manager=0
for arg in "$@"; do
    case "$arg" in
    --with-controller-manager) with_controller_manager=1 ;;
    -h | --help) usage ;;
    *) usage ;;
    esac
done

cache="${KVIP_CACHE:-/var/cache/kvip}"
# Bump when the build changes: cached binaries of another recipe are rebuilt.
# (tests/lab/apiserver.py reads this line too.)
RECIPE=2
bindir="$cache/bin"
runtime_packages=(etcd-server openssl curl)
build_packages=(etcd-server golang-go golang-github-modern-go-reflect2-dev make rsync openssl curl)

log() { echo "build-apiserver: $*" >&2; }

binary_works() {
    [ -x "$bindir/$1" ] && [ "$(cat "$bindir/$1.recipe" 2>/dev/null)" = "$RECIPE" ] \
        && "$bindir/$1" --version >/dev/null 2>&1
}

missing_packages() {
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || echo "$pkg"
    done
}

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        log "$1 needs root; run this script as root"
        exit 1
    fi
}

apt_install() {
    local missing
    mapfile -t missing < <(missing_packages "$@")
    [ ${#missing[@]} -eq 0 ] && return 0
    need_root "installing ${missing[*]}"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Writes a deb-src stanza for bookworm main, derived from the host's own `deb`
# stanza (same mirror and keyring), so the script works behind whatever mirror
# the machine is configured with.
ensure_deb_src() {
    local src=/etc/apt/sources.list.d/debian.sources
    local out=/etc/apt/sources.list.d/kvip-deb-src.sources
    if apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Package: kubernetes'; then
        return 0
    fi
    if [ ! -f "$out" ]; then
        [ -f "$src" ] || {
            log "no $src to derive a deb-src source from"
            exit 1
        }
        # Pick the first `Types: deb` stanza whose Suites list bookworm itself.
        awk '
            BEGIN { RS = ""; FS = "\n" }
            {
                types = ""; uris = ""; suites = ""; signed = ""
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^Types:/) types = $i
                    else if ($i ~ /^URIs:/) uris = $i
                    else if ($i ~ /^Suites:/) suites = $i
                    else if ($i ~ /^Signed-By:/) signed = $i
                }
                if (types ~ /(^|[ \t])deb([ \t]|$)/ && suites ~ /[ \t]bookworm([ \t]|$)/) {
                    print "Types: deb-src"; print uris; print "Suites: bookworm"
                    print "Components: main"
                    if (signed != "") print signed
                    found = 1; exit
                }
            }
            END { if (!found) exit 1 }
        ' "$src" >"$out.tmp" || {
            rm -f "$out.tmp"
            log "no 'Types: deb' stanza for bookworm in $src"
            exit 1
        }
        mv "$out.tmp" "$out"
        log "added deb-src source $out"
    fi
    apt-get update -qq
}

# Builds the given cmd/ targets in one source tree (they share the Go build
# cache) and installs each binary into the cache as soon as it is built.
build() {
    local targets=("$@")
    need_root "building ${targets[*]}"
    log "first run builds ${targets[*]} from Debian's kubernetes source package:" \
        "about 8 minutes for the API server, 2 more for the controller manager" \
        "(cached in $bindir afterwards)"
    local started=$SECONDS
    ensure_deb_src
    apt_install "${build_packages[@]}"

    mkdir -p "$cache" "$bindir"
    local tree
    tree="$(mktemp -d "$cache/build.XXXXXX")"
    # shellcheck disable=SC2064 # expand now: the trap must remove this tree
    trap "rm -rf '$tree'" EXIT

    log "downloading the kubernetes source package"
    (cd "$tree" && apt-get source --download-only -qq kubernetes/bookworm >/dev/null)
    local orig
    orig="$(find "$tree" -maxdepth 1 -name 'kubernetes_*.orig.tar.*' | head -n1)"
    [ -n "$orig" ] || {
        log "no orig tarball in $tree"
        exit 1
    }
    mkdir "$tree/src"
    tar -xf "$orig" -C "$tree/src" --strip-components=1

    # The vendored reflect2 1.0.1 panics on the first CRD create under Go >= 1.18;
    # Debian's packaged copy is fixed. Without go.mod it stays part of the main module.
    local reflect2=/usr/share/gocode/src/github.com/modern-go/reflect2
    rm -rf "$tree/src/vendor/github.com/modern-go/reflect2"
    cp -a "$reflect2" "$tree/src/vendor/github.com/modern-go/reflect2"
    rm -f "$tree/src/vendor/github.com/modern-go/reflect2/go.mod"

    # The vendored OpenAPI validators test "is this value null?" by comparing
    # reflect.Values of the value and of its type's zero. Built with Debian's
    # Go (1.19) both point at the same shared zero buffer for "", so every
    # empty string in a custom resource is rejected as null ("must be of type
    # string"). With the Go 1.20 was released with, the check only matched nil.
    local validator
    for validator in vendor/k8s.io/kube-openapi/pkg/validation/validate/type.go \
        vendor/github.com/go-openapi/validate/type.go; do
        local file="$tree/src/$validator" zero_check='reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data)), reflect.ValueOf(data))'
        grep -qF "$zero_check" "$file" || {
            log "expected null check not found in $validator"
            exit 1
        }
        sed -i 's/if data == nil || reflect\.DeepEqual(reflect\.Zero(reflect\.TypeOf(data)), reflect\.ValueOf(data)) {/if data == nil {/' "$file"
        ! grep -qF "$zero_check" "$file" || {
            log "could not patch the null check in $validator"
            exit 1
        }
    done

    # No .git here: give `--version` the upstream version from the tarball name
    # (e.g. kubernetes_1.20.5+really1.20.2.orig.tar.gz -> v1.20.2).
    local upstream
    upstream="$(basename "$orig" | sed -E 's/^kubernetes_//; s/\.orig\.tar\..*$//; s/.*really//; s/[+~].*$//')"
    if [[ "$upstream" =~ ^([0-9]+)\.([0-9]+)\.[0-9]+$ ]]; then
        cat >"$tree/version.env" <<EOF
KUBE_GIT_VERSION='v$upstream'
KUBE_GIT_MAJOR='${BASH_REMATCH[1]}'
KUBE_GIT_MINOR='${BASH_REMATCH[2]}'
KUBE_GIT_TREE_STATE='clean'
KUBE_GIT_COMMIT='debian'
EOF
        export KUBE_GIT_VERSION_FILE="$tree/version.env"
    fi

    local target name
    for target in "${targets[@]}"; do
        name="$(basename "$target")"
        log "compiling $name (log: $tree/make-$name.log)"
        if ! (cd "$tree/src" &&
            GOFLAGS=-mod=vendor GOPROXY=off CGO_ENABLED=0 \
                GOPATH="$tree/gopath" GOCACHE="$tree/gocache" \
                make WHAT="$target" >"$tree/make-$name.log" 2>&1); then
            tail -n 40 "$tree/make-$name.log" >&2
            log "building $name failed"
            exit 1
        fi
        install -m 0755 "$tree/src/_output/bin/$name" "$bindir/$name.new"
        mv "$bindir/$name.new" "$bindir/$name"
        echo "$RECIPE" >"$bindir/$name.recipe"
        log "cached $bindir/$name ($("$bindir/$name" --version)) after $((SECONDS - started)) s"
    done
}

main() {
    mkdir -p "$cache" 2>/dev/null || true
    local targets=()
    binary_works kube-apiserver || targets+=(cmd/kube-apiserver)
    if [ "$with_controller_manager" -eq 1 ]; then
        binary_works kube-controller-manager || targets+=(cmd/kube-controller-manager)
    fi
    if [ ${#targets[@]} -gt 0 ]; then
        # One build at a time per cache: a second caller waits, then finds the
        # binaries built.
        need_root "building ${targets[*]}"
        exec 9>"$cache/build.lock"
        flock 9
        targets=()
        binary_works kube-apiserver || targets+=(cmd/kube-apiserver)
        if [ "$with_controller_manager" -eq 1 ]; then
            binary_works kube-controller-manager || targets+=(cmd/kube-controller-manager)
        fi
        [ ${#targets[@]} -eq 0 ] || build "${targets[@]}"
    fi
    apt_install "${runtime_packages[@]}"
}

main
