# shellcheck shell=bash
# Shared by tests/realkernel/build-test-kernels, tests/realkernel/vmtest and
# tests/realkernel/check (sourced, not run): which test kernels there are,
# where they come from and where they are cached.
#
# Flavours: BASE or BASE-KVER, BASE one of
#   stock    Debian's linux-source-KVER + tinyconfig + vmmgr.config
#   patched  the same + kernel/patches/KVER/ (cpu.max.runtime)
#   lockdep  patched + lockdep.config (PROVE_LOCKING, DEBUG_ATOMIC_SLEEP)
# and KVER 6.1 (the default: stock, patched, lockdep) or 6.12 (stock-6.12,
# patched-6.12, lockdep-6.12).  A KVER other than 6.1 also merges
# vmmgr-KVER.config when there is one (what that kernel's Kconfig needs).
#
# Cache layout under $VMMGR_KERNEL_CACHE (default /var/cache/vmmgr/kernels):
#   FLAVOUR-<key>/   bzImage, config, build.log, build-seconds, release
#                    (patched and lockdep: test_cpu, the patched selftest)
#   tree-<key>/      a build tree: the stock key of its source and config,
#   tree-KIND-<key>/ KIND empty for stock/patched 6.1 (so its name is what
#                    it always was), else lockdep, 6.12, lockdep-6.12; one
#                    tree per kind, kept for incremental rebuilds of the
#                    patched kernel; removable at any time
# A key hashes the source package's version, the config fragments and the
# build recipe's revision; patched and lockdep add their patches.  For
# stock and patched 6.1 it hashes exactly what it did before flavours
# existed, so those kernels keep their keys.  Editing the cover letter
# changes no key.

VMMGR_KSRC_DIR=${VMMGR_KSRC_DIR:-/usr/src}
VMMGR_KERNEL_CACHE=${VMMGR_KERNEL_CACHE:-/var/cache/vmmgr/kernels}
# Bump when tests/realkernel/build-test-kernels changes what it builds.
VMMGR_KBUILD_REV=1
# Every flavour build-test-kernels --all builds.
# shellcheck disable=SC2034 # for the scripts that source this
VMMGR_ALL_FLAVOURS="stock patched lockdep stock-6.12 patched-6.12"

# flavour_parse FLAVOUR: sets fl_base (stock|patched|lockdep), fl_kver
# (6.1|6.12) and fl_tag (the flavour in figure names: patched, stock_6_12).
# Returns 1 with a message on stderr for anything else.
flavour_parse() {
        local f=$1
        fl_base=${f%%-*} fl_kver=6.1
        case $f in *-*) fl_kver=${f#*-} ;; esac
        case $fl_base in stock | patched | lockdep) ;; *) fl_base='' ;; esac
        case $fl_kver in 6.1 | 6.12) ;; *) fl_base='' ;; esac
        if [ -z "$fl_base" ] || [ "$f" = "$fl_base-6.1" ]; then
                echo "unknown test kernel flavour '$f' (stock, patched, lockdep, each optionally -6.12)" >&2
                return 1
        fi
        # shellcheck disable=SC2034 # for the scripts that source this
        if [ "$fl_kver" = 6.1 ]; then fl_tag=$fl_base; else fl_tag=${fl_base}_${fl_kver//./_}; fi
}

# flavour_has_series FLAVOUR: true for the kernels carrying the series.
flavour_has_series() {
        flavour_parse "$1" && [ "$fl_base" != stock ]
}

# kernel_patches REPO_ROOT [KVER]: the series for KVER (default 6.1) in
# order.  The cover letter (kernel/patches/0000-*) is prose: neither
# applied nor hashed.
kernel_patches() {
        local p
        for p in "$1/kernel/patches/${2:-6.1}"/[0-9][0-9][0-9][0-9]-*.patch; do
                [ -e "$p" ] || continue
                case ${p##*/} in 0000-*) continue ;; esac
                printf '%s\n' "$p"
        done
}

# kernel_fragments REPO_ROOT FLAVOUR: the config fragments merged on top of
# tinyconfig, in order.
kernel_fragments() {
        local d=$1/tests/realkernel/testkernel
        flavour_parse "$2" || return 1
        printf '%s\n' "$d/vmmgr.config"
        if [ "$fl_kver" != 6.1 ] && [ -e "$d/vmmgr-$fl_kver.config" ]; then
                printf '%s\n' "$d/vmmgr-$fl_kver.config"
        fi
        [ "$fl_base" != lockdep ] || printf '%s\n' "$d/lockdep.config"
}

# ksrc_package / ksrc_tarball KVER: the Debian source package and its tarball.
ksrc_package() { printf 'linux-source-%s\n' "$1"; }
ksrc_tarball() { printf '%s/linux-source-%s.tar.xz\n' "$VMMGR_KSRC_DIR" "$1"; }

# kernel_key REPO_ROOT FLAVOUR [tree]: prints the cache key (with "tree":
# the key of its build tree, which leaves the patches out).  Returns 1,
# with the reason on stderr, when the kernel source is not installed.
kernel_key() {
        local root=$1 flavour=$2 what=${3:-} version p pkg tarball
        flavour_parse "$flavour" || return 1
        pkg=$(ksrc_package "$fl_kver") tarball=$(ksrc_tarball "$fl_kver")
        if ! version=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null) ||
                [ -z "$version" ] || [ ! -r "$tarball" ]; then
                echo "$pkg is not installed ($tarball missing)" >&2
                return 1
        fi
        {
                printf 'source %s %s\nrecipe %s\n' "$pkg" "$version" "$VMMGR_KBUILD_REV"
                # vmmgr.config alone for 6.1, as before flavours existed.
                while read -r p; do
                        sha256sum <"$p"
                done < <(kernel_fragments "$root" "$flavour")
                if [ "$fl_base" != stock ] && [ "$what" != tree ]; then
                        while read -r p; do
                                sha256sum <"$p"
                        done < <(kernel_patches "$root" "$fl_kver")
                fi
        } | sha256sum | cut -c1-16
}

# kernel_dir REPO_ROOT FLAVOUR: the cache directory of that kernel.
kernel_dir() {
        local key
        key=$(kernel_key "$1" "$2") || return 1
        printf '%s/%s-%s\n' "$VMMGR_KERNEL_CACHE" "$2" "$key"
}

# tree_kind FLAVOUR: the kind of build tree the flavour is built in (empty
# for stock and patched 6.1, which share the tree they always had).
tree_kind() {
        flavour_parse "$1" || return 1
        local k=''
        [ "$fl_base" != lockdep ] || k=lockdep
        if [ "$fl_kver" != 6.1 ]; then
                k=${k:+$k-}$fl_kver
        fi
        printf '%s\n' "$k"
}

# tree_dir REPO_ROOT FLAVOUR: the build tree's directory (tree-<key> or
# tree-KIND-<key>), keyed by its stock configuration.
tree_dir() {
        local key kind
        key=$(kernel_key "$1" "$2" tree) || return 1
        kind=$(tree_kind "$2")
        printf '%s/tree-%s%s\n' "$VMMGR_KERNEL_CACHE" "${kind:+$kind-}" "$key"
}
