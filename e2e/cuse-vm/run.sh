#!/usr/bin/env bash
# pnpm test:cuse-vm — the CUSE front of steve-daemon, tested for real.
#
# The development hosts have FUSE but no CUSE, so this boots Debian 12's own
# kernel (where cuse is a module) in qemu (TCG, no KVM needed) with a busybox
# initramfs. The guest sees the host's / read-only over 9p under a tmpfs
# overlay, so it runs the repo's built daemon with the host's node, make,
# python3 and the real clients (make 4.4.1, cargo, pytest-xdist); a second,
# writable 9p share brings the results back.
# See README.md next to this file.
#
# Needs: root (apt-get, and qemu reads all of / to share it), the Debian
# archive, a built repo (pnpm install && pnpm build); for the real clients
# GNU make 4.4.1 (scripts/build-make-4.4.1.sh builds and caches it), a Rust
# toolchain whose cargo knows fifo: auth (rustup's, ~/.cargo/bin) and
# python3-pytest-xdist.
# Env: CUSE_VM_TIMEOUT (seconds for the whole VM run, default 900);
# CUSE_VM_KEEP=1 keeps the work dir (console log, daemon logs, initramfs);
# CUSE_VM_OUT=DIR copies the guest's results share there at the end.
# CUSE_VM_MODE=bench runs `pnpm bench cuse`'s rounds (guest-bench.sh) instead
# of the checks: no real clients, bench/native/fair-cuse-server.c compiled
# here, one vCPU unless CUSE_VM_SMP says otherwise, a warm-up of
# CUSE_VM_BENCH_WARMUP s per target (default 10), then CUSE_VM_BENCH_ROUNDS
# rounds (default 7) of CUSE_VM_BENCH_SECONDS s (default 2) per target; the
# raw numbers land in the results share as cuse-bench.json.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=$repo/vm-cache
timeout_s=${CUSE_VM_TIMEOUT:-900}
mode=${CUSE_VM_MODE:-checks}
case $mode in
checks) smp=${CUSE_VM_SMP:-2} ;;
bench) smp=${CUSE_VM_SMP:-1} ;;
*)
	echo "cuse-vm: CUSE_VM_MODE must be checks or bench, not '$mode'" >&2
	exit 2
	;;
esac
# Load order resolved from each module's `depends=` (see PITFALLS.md).
modules=(virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio virtio_pci
	9pnet 9pnet_virtio netfs fscache 9p overlay fuse cuse)

say() { echo "cuse-vm: $*"; }
die() {
	echo "cuse-vm: $*" >&2
	exit 1
}
started=$(date +%s.%N)
since() { python3 -c "import sys,time; print(f'{time.time() - float(sys.argv[1]):.1f}')" "$1"; }

[[ $(id -u) == 0 ]] || die "must run as root (apt-get; qemu shares / with the guest)"
[[ -f $repo/packages/steve-daemon/build/Release/steve_native.node && -d $repo/packages/steve-daemon/dist ]] ||
	die "steve-daemon is not built; run: npx pnpm@10.34.9 install && npx pnpm@10.34.9 build"

# --- host tools ---------------------------------------------------------
missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
command -v timeout >/dev/null || missing+=(coreutils)
command -v xz >/dev/null || missing+=(xz-utils)
command -v python3 >/dev/null || missing+=(python3-minimal)
if ((${#missing[@]})); then
	say "installing ${missing[*]}"
	t0=$(date +%s.%N)
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	say "installed in $(since "$t0") s"
fi

# --- kernel and busybox, cached in vm-cache/ ----------------------------
mkdir -p "$cache"
t0=$(date +%s.%N)
# linux-image-amd64 is a metapackage; the kernel is the linux-image-6.1.* it depends on.
kernel_pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
	awk '$1 == "Depends:" && $2 ~ /^linux-image-6\.1\..*-amd64$/ { print $2; exit }') || true
if [[ -z $kernel_pkg ]]; then
	# No package lists (or an offline host): reuse whatever kernel the cache has.
	kernel_pkg=$(cd "$cache" && ls -d linux-image-6.1.*-amd64 2>/dev/null | tail -n 1) || true
	[[ -n $kernel_pkg ]] || die "cannot resolve linux-image-amd64's kernel package (apt-get update?)"
fi

fetch() { # fetch PACKAGE -> unpacked into $cache/PACKAGE
	local pkg=$1
	if [[ -f $cache/$pkg/.unpacked ]]; then return; fi
	say "downloading $pkg"
	rm -rf "${cache:?}/$pkg"
	(cd "$cache" && rm -f "${pkg}"_*.deb && apt-get download -qq "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
	local deb
	deb=$(ls "$cache/${pkg}"_*.deb 2>/dev/null | head -n 1)
	[[ -n $deb ]] || die "apt-get download $pkg failed"
	dpkg -x "$deb" "$cache/$pkg"
	touch "$cache/$pkg/.unpacked"
}
fetch "$kernel_pkg"
fetch busybox-static

kroot=$cache/$kernel_pkg
kver=$(ls "$kroot/lib/modules" | head -n 1)
vmlinuz=$kroot/boot/vmlinuz-$kver
[[ -f $vmlinuz ]] || die "no $vmlinuz in the unpacked $kernel_pkg"
busybox=$cache/busybox-static/bin/busybox
[[ -x $busybox ]] || die "no busybox in the unpacked busybox-static"
say "kernel $kver and busybox ready in $(since "$t0") s"

# --- initramfs ------------------------------------------------------------
work=$(mktemp -d /tmp/cuse-vm.XXXXXX)
results=$work/results
qemu_pid=
cleanup() {
	if [[ -n $qemu_pid ]]; then kill "$qemu_pid" 2>/dev/null || true; fi
	if [[ -n ${CUSE_VM_OUT:-} && -d $results ]]; then
		mkdir -p "$CUSE_VM_OUT" && cp -r "$results"/. "$CUSE_VM_OUT"/ || true
	fi
	if [[ -n ${CUSE_VM_KEEP:-} ]]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
mkdir -p "$results" "$work/initramfs"/{bin,dev,proc,sys,etc,modules}
chmod 0777 "$results"

# --- the real clients the guest runs (from the host's /, read-only) ---------
# GNU make 4.4.1 (Debian 12 has 4.3): built once from Debian trixie's source
# and cached by scripts/build-make-4.4.1.sh, which prints its path.
t0=$(date +%s.%N)
make441=
cargo_bin= rustc_bin=
if [[ $mode == bench ]]; then
	# The bench's fair C CUSE server, built against the host's libfuse3 (the
	# guest runs the host's libraries); the guest copies it out of the share.
	cc -O2 -Wall -o "$results/fair-cuse-server" "$repo/bench/native/fair-cuse-server.c" \
		$(pkg-config --cflags --libs fuse3) || die "cannot compile bench/native/fair-cuse-server.c"
	say "fair-cuse-server compiled ($(since "$t0") s)"
elif make441=$(bash "$repo/scripts/build-make-4.4.1.sh" 2>"$work/build-make-4.4.1.log" | tail -n 1) &&
	[[ -x $make441 ]]; then
	say "GNU make 4.4.1: $make441 ($(since "$t0") s)"
else
	# The guest records the make 4.4.1 checks as failed.
	say "scripts/build-make-4.4.1.sh failed ($(tail -c 300 "$work/build-make-4.4.1.log" | tr "\n" " "))"
	make441=
fi
# cargo and rustc: the toolchain's own binaries (rustup's proxies would
# re-resolve the toolchain on every rustc run, slowly under TCG).
rustc_cmd=$(PATH="${HOME:-/root}/.cargo/bin:$PATH" command -v rustc || true)
if [[ $mode == bench ]]; then
	: # no real clients in the bench
elif [[ -n $rustc_cmd ]] && sysroot=$("$rustc_cmd" --print sysroot 2>/dev/null) &&
	[[ -x $sysroot/bin/cargo && -x $sysroot/bin/rustc ]]; then
	cargo_bin=$sysroot/bin/cargo
	rustc_bin=$sysroot/bin/rustc
	say "cargo: $("$cargo_bin" --version)"
else
	say "no cargo/rustc toolchain found (the guest records the cargo checks as failed)"
fi

t0=$(date +%s.%N)
initramfs=$work/initramfs
cp "$busybox" "$initramfs/bin/busybox"
cp "$here/guest-init.sh" "$initramfs/init"
chmod 0755 "$initramfs/init"
conf() { printf "%s='%s'\n" "$1" "${2//\'/\'\\\'\'}"; }
{
	conf REPO "$repo"
	conf MAKE441 "$make441"
	conf CARGO "$cargo_bin"
	conf RUSTC "$rustc_bin"
	conf MODE "$mode"
	conf BENCH_ROUNDS "${CUSE_VM_BENCH_ROUNDS:-7}"
	conf BENCH_SECONDS "${CUSE_VM_BENCH_SECONDS:-2}"
	conf BENCH_WARMUP "${CUSE_VM_BENCH_WARMUP:-10}"
	conf ACCEL tcg
} >"$initramfs/etc/cuse-vm.conf"
for module in "${modules[@]}"; do
	ko=$(find "$kroot/lib/modules/$kver/kernel" -name "$module.ko" -o -name "$module.ko.xz" | head -n 1)
	if [[ -z $ko ]]; then
		# Built into this kernel: nothing to load.
		grep -q "/$module.ko\$" "$kroot/lib/modules/$kver/modules.builtin" 2>/dev/null && continue
		die "module $module not found in $kernel_pkg"
	fi
	# busybox insmod cannot rely on xz support: decompress here.
	case $ko in
	*.xz) xz -dc "$ko" >"$initramfs/modules/$module.ko" ;;
	*) cp "$ko" "$initramfs/modules/$module.ko" ;;
	esac
	echo "$module" >>"$initramfs/modules/order"
done
if command -v cpio >/dev/null; then
	(cd "$initramfs" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --owner 0:0 --quiet) | gzip -1 >"$work/initrd.gz"
else
	python3 "$here/mkinitramfs.py" "$initramfs" "$work/initrd.gz"
fi
say "initramfs built in $(since "$t0") s ($(du -k "$work/initrd.gz" | cut -f1) KiB)"

# --- boot -------------------------------------------------------------------
console=$work/console.log
say "booting (TCG, $smp vCPU, $mode, timeout ${timeout_s} s)"
t0=$(date +%s.%N)
set +e
timeout --kill-after=10 "$timeout_s" qemu-system-x86_64 \
	-machine q35 -accel tcg -cpu max -smp "$smp" -m 2048 -nographic -no-reboot -nic none \
	-kernel "$vmlinuz" -initrd "$work/initrd.gz" \
	-append 'console=ttyS0 quiet panic=-1 rdinit=/init' \
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
	-virtfs "local,path=$results,mount_tag=results,security_model=none" \
	-virtfs "local,path=$repo,mount_tag=repo,security_model=none,readonly=on,multidevs=remap" \
	</dev/null >"$console" 2>&1 &
qemu_pid=$!
wait "$qemu_pid"
qemu_status=$?
qemu_pid=
set -e
boot_s=$(since "$t0")
say "VM ran for $boot_s s (qemu exit $qemu_status)"
grep -ao 'cuse-vm init: .*' "$console" | sed 's/^/  guest: /' || true
if [[ -s $results/timings.txt ]]; then
	say "guest timings (s): $(tr '\n' ' ' <"$results/timings.txt")"
fi

# --- report -------------------------------------------------------------------
checks=$results/checks.txt
touch "$checks"
problem=
if ((qemu_status == 124 || qemu_status == 137)); then
	problem="the VM did not finish within ${timeout_s} s"
elif ((qemu_status != 0)); then
	problem="qemu exited with status $qemu_status"
elif [[ ! -f $results/exit-code ]]; then
	problem="the guest never ran the checks to the end (boot failure?)"
elif [[ $(cat "$results/exit-code") != 0 ]]; then
	problem="the guest checks exited with status $(cat "$results/exit-code")"
fi
if [[ -n $problem ]] && ! grep -q '^FAIL ' "$checks"; then
	# Nothing in the report explains it: count the run itself as a failure.
	echo "FAIL vm-run-completes: $problem" >>"$checks"
fi

cat "$checks"
if [[ -n $problem ]]; then
	echo "--- $problem; console log (tail):"
	tail -n 40 "$console"
	for log in daemon.stderr daemon.stdout make.log; do
		if [[ -s $results/$log ]]; then
			echo "--- $log (tail):"
			tail -n 30 "$results/$log"
		fi
	done
	# What the clients' scenarios said on stderr (a traceback, a tool's complaint).
	for log in "$results"/*.stderr; do
		if [[ $log != */daemon.stderr && -s $log ]]; then
			echo "--- ${log##*/} (tail):"
			tail -n 15 "$log"
		fi
	done
fi
say "whole run $(since "$started") s"
passed=$(grep -c '^PASS ' "$checks" || true)
failed=$(grep -c '^FAIL ' "$checks" || true)
echo "$passed passed, $failed failed"
[[ -z $problem && $failed == 0 ]]
