# shellcheck shell=bash
# Shared by tests/realkernel/build-test-kernels and tests/realkernel/vmtest (sourced, not run):
# where the test kernels come from and where they are cached.
#
# Cache layout under $VMMGR_KERNEL_CACHE (default /var/cache/vmmgr/kernels):
#   stock-<key>/     bzImage, config, build.log, build-seconds
#   patched-<key>/   the same for the patched kernel
#   tree-<key>/      the build tree (stock key), kept for incremental
#                    rebuilds of the patched kernel; removable at any time
# A stock key hashes the source package's version, the config fragment and
# the build recipe's revision; a patched key adds the patches.  Editing the
# cover letter changes neither.

VMMGR_KSRC_PACKAGE=${VMMGR_KSRC_PACKAGE:-linux-source-6.1}
VMMGR_KSRC_TARBALL=${VMMGR_KSRC_TARBALL:-/usr/src/linux-source-6.1.tar.xz}
VMMGR_KERNEL_CACHE=${VMMGR_KERNEL_CACHE:-/var/cache/vmmgr/kernels}
# Bump when tests/realkernel/build-test-kernels changes what it builds.
VMMGR_KBUILD_REV=1

# kernel_patches REPO_ROOT: the series to apply, in order.  The cover
# letter (0000-*) is prose: neither applied nor hashed.
kernel_patches() {
        local p
        for p in "$1"/kernel/patches/[0-9][0-9][0-9][0-9]-*.patch; do
                [ -e "$p" ] || continue
                case ${p##*/} in 0000-*) continue ;; esac
                printf '%s\n' "$p"
        done
}

# kernel_key REPO_ROOT stock|patched: prints the cache key.  Returns 1,
# with the reason on stderr, when the kernel source is not installed.
kernel_key() {
        local root=$1 flavour=$2 version p
        if ! version=$(dpkg-query -W -f='${Version}' "$VMMGR_KSRC_PACKAGE" 2>/dev/null) ||
                [ -z "$version" ] || [ ! -r "$VMMGR_KSRC_TARBALL" ]; then
                echo "$VMMGR_KSRC_PACKAGE is not installed ($VMMGR_KSRC_TARBALL missing)" >&2
                return 1
        fi
        {
                printf 'source %s %s\nrecipe %s\n' "$VMMGR_KSRC_PACKAGE" "$version" "$VMMGR_KBUILD_REV"
                sha256sum <"$root/tests/realkernel/testkernel/vmmgr.config"
                if [ "$flavour" = patched ]; then
                        while read -r p; do
                                sha256sum <"$p"
                        done < <(kernel_patches "$root")
                fi
        } | sha256sum | cut -c1-16
}

# kernel_dir REPO_ROOT stock|patched: the cache directory of that kernel.
kernel_dir() {
        local key
        key=$(kernel_key "$1" "$2") || return 1
        printf '%s/%s-%s\n' "$VMMGR_KERNEL_CACHE" "$2" "$key"
}
