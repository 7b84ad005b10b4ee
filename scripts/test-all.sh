#!/usr/bin/env bash
# The one command that tests everything, on a fresh Debian 12 machine with
# Node 20 and npm only: it installs what it needs (Debian packages when root,
# pnpm through npx), then installs, builds, lints and runs every test.
#
#   ./scripts/test-all.sh
set -euo pipefail
cd "$(dirname "$0")/.."

export TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1 TURBO_NO_UPDATE_NOTIFIER=1
export COREPACK_INTEGRITY_KEYS=0

# Debian packages the build and the tests use (checked with dpkg, installed when
# missing). qemu-system-x86 for the CUSE check in a VM is installed by its own
# script (e2e/cuse-vm/run.sh), with the kernel it boots. Real Portage (run from
# the test peers' sources by emerge-shim's tests) needs git, xz-utils, and for
# its test harness gnupg, bzip2 and zstd.
DEBIAN_PACKAGES=(make g++ python3 pkg-config libfuse3-dev fuse3 tmux cargo librust-jobserver-dev
  python3-pytest python3-pytest-xdist python3-pip python3-setuptools python3-wheel
  git xz-utils gnupg bzip2 zstd)
missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]}; install them (sudo apt-get install ${missing[*]}) and run again" >&2
    exit 1
  fi
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# pnpm, pinned by package.json's packageManager field, through npx (corepack's
# signature check fails on some Node 20 builds).
PNPM_VERSION=$(node -p "require('./package.json').packageManager.split('@')[1]")
pnpm() { npx -y "pnpm@${PNPM_VERSION}" "$@"; }

pnpm install --frozen-lockfile
# GNU make 4.4.1 for the e2e tests (Debian 12 has 4.3), built from Debian trixie's source, cached.
./scripts/build-make-4.4.1.sh >/dev/null
rm -f packages/*/.vitest-report.json packaging/.vitest-report.json e2e/.vitest-report.json e2e/.vitest-chaos-report.json bench/.vitest-report.json \
  .cuse-vm-summary .suite-status
# Every suite runs even when an earlier one failed; each one's exit status goes
# to .suite-status, and the summary's last line counts a suite that failed or
# could not run (no build, no VM) as a failure.
status=0
suite() {
  local name=$1 rc=0
  shift
  "$@" || rc=$?
  echo "$name $rc" >>.suite-status
  if [ "$rc" -ne 0 ]; then status=1; fi
}
suite build pnpm build
suite test pnpm test
suite test:e2e pnpm test:e2e
# The chaos suite: every way builds share a descriptor, under faults (e2e/chaos).
suite test:chaos pnpm test:chaos
# The CUSE front, for real, in a Debian kernel under qemu (this kernel has no CUSE).
cuse_vm() {
  set -o pipefail
  pnpm test:cuse-vm 2>&1 | tee .cuse-vm.log
  local rc=$?
  tail -n 1 .cuse-vm.log >.cuse-vm-summary
  return "$rc"
}
suite test:cuse-vm cuse_vm
node scripts/test-summary.mjs || status=1
exit "$status"
