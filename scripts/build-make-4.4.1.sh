#!/usr/bin/env bash
# Test set-up only (never shipped): build GNU make 4.4.1 from Debian trixie's
# `make-dfsg` source package, for the e2e tests that run real make 4.4.1
# (e2e/make-4.4.1-*.e2e.test.ts). Debian 12 ships make 4.3, which has no fifo
# jobserver (`--jobserver-auth=fifo:PATH` is new in 4.4).
#
#   ./scripts/build-make-4.4.1.sh      # prints the binary's path on stdout
#
# The binary is cached in $STEVE_MAKE_441_CACHE (default
# /var/cache/steve-tests/make-4.4.1 for root, ~/.cache/steve-tests/make-4.4.1
# otherwise); when it exists and says 4.4.1 nothing else happens. apt runs with
# a private sources list, state and cache: the system's apt lists are untouched.
set -euo pipefail

if [ "$(id -u)" -eq 0 ]; then
  default_cache=/var/cache/steve-tests/make-4.4.1
else
  default_cache="${XDG_CACHE_HOME:-$HOME/.cache}/steve-tests/make-4.4.1"
fi
CACHE="${STEVE_MAKE_441_CACHE:-$default_cache}"
BINARY="$CACHE/bin/make"

is_441() { [ -x "$1" ] && "$1" --version 2>/dev/null | head -n 1 | grep -qx 'GNU Make 4.4.1'; }

if is_441 "$BINARY"; then
  echo "$BINARY"
  exit 0
fi

mkdir -p "$CACHE"
# One build at a time per cache (two test runs may start together).
exec 9>"$CACHE/.lock"
flock 9
if is_441 "$BINARY"; then
  echo "$BINARY"
  exit 0
fi

# dpkg-source (dpkg-dev) unpacks the source package; a C compiler and make build it.
missing=()
command -v dpkg-source >/dev/null || missing+=(dpkg-dev)
command -v cc >/dev/null || missing+=(gcc)
command -v make >/dev/null || missing+=(make)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "building make 4.4.1 needs: ${missing[*]}; install them (sudo apt-get install ${missing[*]}) and run again" >&2
    exit 1
  fi
  echo "installing Debian packages: ${missing[*]}" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/build-make-4.4.1.XXXXXX")
trap 'rm -rf "$work"' EXIT

# A private apt: only trixie's deb-src, its own lists and cache. The trixie
# archive keys come with Debian 12's debian-archive-keyring.
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/apt/parts" "$work/apt/prefs"
cat >"$work/apt/sources.list" <<'EOF'
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
EOF
apt_private=(
  -o "Dir::Etc::SourceList=$work/apt/sources.list"
  -o "Dir::Etc::SourceParts=$work/apt/parts"
  -o "Dir::Etc::PreferencesParts=$work/apt/prefs"
  -o "Dir::State::Lists=$work/apt/lists"
  -o "Dir::Cache=$work/apt/cache"
  -o "Dir::State::status=/dev/null"
  # The work directory is private to us: no download as the _apt user.
  -o "APT::Sandbox::User=$(id -un)"
  -o "Debug::NoLocking=1"
)

echo "fetching make-dfsg from Debian trixie (deb-src)" >&2
apt-get "${apt_private[@]}" -qq update >&2
(cd "$work" && apt-get "${apt_private[@]}" -qq source --download-only make-dfsg >&2)
dsc=$(find "$work" -maxdepth 1 -name 'make-dfsg_4.4.1-*.dsc' | head -n 1)
if [ -z "$dsc" ]; then
  echo "trixie's make-dfsg is not 4.4.1 any more: $(ls "$work"/*.dsc 2>/dev/null)" >&2
  exit 1
fi
# --no-check: the .dsc came over apt, whose Sources index is signed and
# lists the files' hashes (apt-get checked them); dpkg-source would want the
# uploader's key, which Debian 12 does not have.
dpkg-source --no-check -x "$dsc" "$work/src" >&2

cd "$work/src"
# The dfsg tarball drops doc/ (the manual is GFDL); configure still writes
# doc/Makefile, and the shipped Makefile.in still lists doc/make.1 (man_MANS):
# give it a stub Makefile whose targets do nothing and an empty manual page.
[ -e doc/make.1 ] || { mkdir -p doc && echo '.\" stub: no manual in make-dfsg' >doc/make.1; }
if [ ! -e doc/Makefile.in ]; then
  mkdir -p doc
  cat >doc/Makefile.in <<'EOF'
# Stub: Debian's make-dfsg has no doc/ (see scripts/build-make-4.4.1.sh).
all install install-strip uninstall check installcheck clean distclean mostlyclean maintainer-clean info dvi pdf ps html tags ctags cscopelist distdir:
	@:
.PHONY: all install install-strip uninstall check installcheck clean distclean mostlyclean maintainer-clean info dvi pdf ps html tags ctags cscopelist distdir
EOF
fi
# Keep the shipped configure and Makefile.in: no autotools run (timestamps
# from the tarball can look stale after patching).
find . -name configure -o -name 'Makefile.in' -o -name aclocal.m4 -o -name config.h.in | xargs touch
./configure --disable-nls --quiet >&2
make -j"$(nproc)" >&2 MAKEINFO=true
if ! is_441 ./make; then
  echo "the build produced no working make 4.4.1: $(./make --version 2>&1 | head -n 1)" >&2
  exit 1
fi
mkdir -p "$CACHE/bin"
install -m 0755 ./make "$CACHE/bin/make.new"
mv -f "$CACHE/bin/make.new" "$BINARY"
echo "$BINARY"
