#!/bin/bash
# The in-guest CUSE checks (run by guest-init.sh inside the VM, as root, in
# the overlay of the host's root). usage: guest-checks.sh REPO RESULTS_DIR
# /run/cuse-vm.conf (from run.sh, via the initramfs) names the host's GNU
# make 4.4.1, cargo and rustc for the real clients (real_clients.py).
#
# Each check appends one line to RESULTS_DIR/checks.txt: "PASS name (detail)"
# or "FAIL name: detail". The daemon's stdout/stderr go to RESULTS_DIR too,
# so the host can show them. Exit status: 0 when every check passed.
# PATH inside the guest is whatever init set, so every tool is named by its
# absolute path.
set -uo pipefail

repo=$1
results=$2
checks=$results/checks.txt
node=/usr/bin/node
python=/usr/bin/python3
clients=$repo/e2e/cuse-vm/clients.py
real_clients=$repo/e2e/cuse-vm/real_clients.py
device=/dev/steve
jobs=2
# The host's tool paths (run.sh resolves them: MAKE441, CARGO, RUSTC).
MAKE441= CARGO= RUSTC=
if [[ -f /run/cuse-vm.conf ]]; then . /run/cuse-vm.conf; fi
: >"$checks"
: >"$results/timings.txt"

record() { # record PASS|FAIL name [detail]
	local line="$1 $2"
	if [[ $1 == PASS && -n ${3:-} ]]; then line+=" ($3)"; fi
	if [[ $1 == FAIL ]]; then line+=": ${3:-failed}"; fi
	echo "$line" | /usr/bin/tee -a "$checks"
}

# Run a clients.py scenario; it prints its own PASS/FAIL lines.
scenario() {
	local name=$1
	shift
	local out
	if ! out=$(/usr/bin/timeout 60 "$python" "$clients" "$name" "$@" 2>"$results/$name.stderr"); then
		out+=$'\n'"FAIL scenario-$name-finished: exited non-zero or timed out; stderr: $(/usr/bin/tail -c 300 "$results/$name.stderr" | /usr/bin/tr '\n' ' ')"
	fi
	printf '%s\n' "$out" | /usr/bin/grep -E '^(PASS|FAIL) ' | /usr/bin/tee -a "$checks"
}

# Run a real_clients.py scenario (a real client on the device: make 4.4.1,
# cargo, pytest-xdist); it prints its own PASS/FAIL lines. Its wall time goes
# to timings.txt (run.sh prints it).
real() { # real SECONDS NAME ARGS...
	local seconds=$1 name=$2
	shift 2
	local out t0=$EPOCHREALTIME
	if ! out=$(/usr/bin/timeout "$seconds" "$python" "$real_clients" "$name" "$device" $jobs \
		"$results/daemon.stderr" "/tmp/real-clients/$name" "$@" 2>"$results/$name.stderr"); then
		out+=$'\n'"FAIL $name-finished: exited non-zero or timed out after $seconds s; stderr: $(/usr/bin/tail -c 300 "$results/$name.stderr" | /usr/bin/tr '\n' ' ')"
	fi
	printf '%s\n' "$out" | /usr/bin/grep -E '^(PASS|FAIL) ' | /usr/bin/tee -a "$checks"
	timing "$name" "$t0"
}

timing() { # timing NAME START: append "NAME SECONDS" ($EPOCHREALTIME's) to timings.txt
	local us=$((${EPOCHREALTIME/./} - ${2/./}))
	printf '%s %d.%d\n' "$1" $((us / 1000000)) $((us / 100000 % 10)) >>"$results/timings.txt"
}

# Poll `test ARGS` every 50 ms until it holds or SECONDS pass.
wait_for() { # wait_for SECONDS test-args...
	local end=$((SECONDS + $1))
	shift
	until test "$@"; do
		((SECONDS < end)) || return 1
		/usr/bin/sleep 0.05
	done
}

# --- the kernel side ----------------------------------------------------
if [[ -c /dev/cuse ]]; then
	record PASS dev-cuse-exists-after-module-load
else
	record FAIL dev-cuse-exists-after-module-load "no /dev/cuse character device"
fi

# --- start the daemon ---------------------------------------------------
started=$SECONDS
"$node" "$repo/packages/steve-daemon/bin/steve-daemon.js" -j$jobs --cuse steve -v \
	>"$results/daemon.stdout" 2>"$results/daemon.stderr" &
daemon=$!

serving() { /usr/bin/grep -q "^steve-daemon: serving $jobs tokens on $device (CUSE)" "$results/daemon.stdout"; }
# node loads the daemon over 9p under TCG: 15-30 s, near a minute on a busy host.
end=$((SECONDS + 120))
until serving && [[ -c $device ]]; do
	if ! kill -0 "$daemon" 2>/dev/null || ((SECONDS >= end)); then break; fi
	/usr/bin/sleep 0.05
done
if serving && [[ -c $device ]]; then
	record PASS daemon-serves-dev-steve "ready after $((SECONDS - started)) s"
else
	record FAIL daemon-serves-dev-steve "no serving line and $device within 120 s; stderr: $(/usr/bin/tail -c 400 "$results/daemon.stderr" | /usr/bin/tr '\n' ' ')"
fi

if [[ -e $device ]]; then
	# No jobserver group in the guest (the host's /etc): the daemon's default
	# is 0600, root and its own user only (every client here runs as root).
	scenario device "$device" 0600

	# --- GNU make 4.3 as a pipe client ------------------------------------
	t0=$EPOCHREALTIME
	build=$(/usr/bin/mktemp -d /tmp/make-client.XXXXXX)
	{
		echo 'JOBS := j1 j2 j3 j4 j5 j6'
		echo 'all: $(JOBS)'
		echo '$(JOBS):'
		printf '\t@/usr/bin/date +%%s.%%N >%s/$@.start; /usr/bin/sleep 1; /usr/bin/date +%%s.%%N >%s/$@.end\n' "$build" "$build"
		echo '.PHONY: all $(JOBS)'
	} >"$build/Makefile"
	if MAKEFLAGS="--jobserver-auth=3,3" /usr/bin/timeout 60 /usr/bin/make -f "$build/Makefile" \
		3<>"$device" >"$results/make.log" 2>&1; then
		record PASS make-4.3-pipe-client-build-succeeds
	else
		record FAIL make-4.3-pipe-client-build-succeeds "exit $?: $(/usr/bin/tail -c 300 "$results/make.log" | /usr/bin/tr '\n' ' ')"
	fi
	scenario concurrency "$build" 6 $((jobs + 1))
	timing make-4.3 "$t0"

	# --- python3 clients --------------------------------------------------
	t0=$EPOCHREALTIME
	scenario tokens "$device"
	scenario poll "$device"
	scenario killed-holder "$device"
	scenario killed-waiter "$device"
	timing python3-clients "$t0"

	# --- the Node client library ------------------------------------------
	t0=$EPOCHREALTIME
	if out=$(/usr/bin/timeout 60 "$node" "$repo/e2e/cuse-vm/node-client.mjs" "$repo" "$device" $jobs 2>"$results/node-client.stderr"); then :; else
		out+=$'\n'"FAIL node-client-finished: exit $?; stderr: $(/usr/bin/tail -c 300 "$results/node-client.stderr" | /usr/bin/tr '\n' ' ')"
	fi
	printf '%s\n' "$out" | /usr/bin/grep -E '^(PASS|FAIL) ' | /usr/bin/tee -a "$checks"
	timing node-client "$t0"

	# --- the chaos suite's sharing patterns, with kills, on the device ------
	t0=$EPOCHREALTIME
	chaos_dir=$(/usr/bin/mktemp -d /tmp/chaos.XXXXXX)
	if out=$(/usr/bin/timeout 120 "$python" "$repo/e2e/chaos/guest_chaos.py" "$repo/e2e/chaos/chaos_client.py" "$device" $jobs "$chaos_dir" 2>"$results/chaos.stderr"); then :; else
		out+=$'\n'"FAIL chaos-finished: exit $?; stderr: $(/usr/bin/tail -c 300 "$results/chaos.stderr" | /usr/bin/tr '\n' ' ')"
	fi
	printf '%s\n' "$out" | /usr/bin/grep -E '^(PASS|FAIL) ' | /usr/bin/tee -a "$checks"
	timing chaos "$t0"

	# --- real clients on the device ---------------------------------------
	if [[ -x ${MAKE441:-} ]]; then
		real 90 make-flat "$MAKE441"
		real 90 make-recursive "$MAKE441"
		real 90 make-sigint "$MAKE441"
		real 90 make-command-line-j "$MAKE441"
		real 150 node-recipes "$MAKE441" "$node" "$repo"
	else
		record FAIL make-4.4.1-checks "skipped: no GNU make 4.4.1 from the host (MAKE441='${MAKE441:-}'; see run.sh)"
	fi
	real 360 cargo "${CARGO:-none}" "${RUSTC:-none}"
	real 300 pytest-xdist "$repo/packages/pytest-bridge/python"

	scenario pool-whole "$device" $jobs
else
	record FAIL device-checks "skipped: $device does not exist"
fi

# --- SIGTERM --------------------------------------------------------------
if kill -0 "$daemon" 2>/dev/null; then
	kill -TERM "$daemon"
	# `wait` returns the daemon's exit status; bound it with a watchdog.
	(/usr/bin/sleep 20 && kill -KILL "$daemon" 2>/dev/null) &
	watchdog=$!
	wait "$daemon"
	status=$?
	kill "$watchdog" 2>/dev/null
	if ((status == 0)); then
		record PASS daemon-exits-0-on-SIGTERM
	else
		record FAIL daemon-exits-0-on-SIGTERM "exit status $status (137 = killed by the 20 s watchdog)"
	fi
	if wait_for 5 ! -e "$device"; then
		record PASS dev-steve-removed-after-exit
	else
		record FAIL dev-steve-removed-after-exit "$device still exists 5 s after the daemon exited"
	fi
else
	wait "$daemon"
	record FAIL daemon-exits-0-on-SIGTERM "the daemon was already gone (exit status $?)"
fi

! /usr/bin/grep -q '^FAIL ' "$checks"
