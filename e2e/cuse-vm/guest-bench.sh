#!/bin/bash
# The in-guest half of `pnpm bench cuse` (run by guest-init.sh instead of
# guest-checks.sh when /etc/cuse-vm.conf says MODE=bench; run.sh writes it
# when CUSE_VM_MODE=bench). usage: guest-bench.sh REPO RESULTS_DIR
#
# Three one-token jobservers, served in this guest:
# - a kernel fifo prefilled with one byte (the physical limit);
# - bench/native/fair-cuse-server.c (run.sh compiled it on the host into
#   RESULTS_DIR/fair-cuse-server) as /dev/steve-bench-c;
# - `steve-daemon -j1 --cuse steve-bench` as /dev/steve-bench.
# bench/clients/pairs.py (read 1 byte, write it back) runs on each for
# BENCH_SECONDS per round, BENCH_ROUNDS interleaved rounds, the order
# rotated left by one every round, after one unmeasured warm-up run of
# BENCH_WARMUP s each (V8 compiles the daemon's hot path only after some
# thousands of requests; under TCG that takes seconds). Every process involved (servers, every
# thread of them, and the client) is pinned to CPU 0 (taskset), so a pair's
# wake-ups stay on one CPU and the rate measures the server's cost rather
# than cross-CPU wake-ups.
#
# Before the rounds, bench_semantics.py checks that all three serve the
# same one-token protocol (blocking read, EAGAIN, kept reads answered by a
# write, interrupts, poll).
# Writes RESULTS_DIR/cuse-bench.json (raw per-round numbers, see below) and,
# as guest-checks.sh does, one "PASS name" / "FAIL name: detail" line per
# step into RESULTS_DIR/checks.txt for run.sh's report. Exit status 0 when
# every round was measured.
set -uo pipefail

repo=$1
results=$2
checks=$results/checks.txt
node=/usr/bin/node
python=/usr/bin/python3
taskset=/usr/bin/taskset
pairs=$repo/bench/clients/pairs.py
cpu=0
BENCH_ROUNDS=7 BENCH_SECONDS=2 BENCH_WARMUP=10 ACCEL=
if [[ -f /run/cuse-vm.conf ]]; then . /run/cuse-vm.conf; fi
: >"$checks"
: >"$results/timings.txt"

record() { # record PASS|FAIL name [detail]
	local line="$1 $2"
	if [[ $1 == PASS && -n ${3:-} ]]; then line+=" ($3)"; fi
	if [[ $1 == FAIL ]]; then line+=": ${3:-failed}"; fi
	echo "$line" | /usr/bin/tee -a "$checks"
}

# Everything from here on (this shell, its children) runs on CPU $cpu.
"$taskset" -p -c $cpu $$ >/dev/null

pids=()
stop_all() {
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
}
trap stop_all EXIT

# Wait until /dev/NAME is a character device and PID lives (SECONDS max).
wait_device() { # wait_device PID DEVICE SECONDS
	local end=$((SECONDS + $3))
	until [[ -c $2 ]]; do
		if ! kill -0 "$1" 2>/dev/null || ((SECONDS >= end)); then return 1; fi
		/usr/bin/sleep 0.05
	done
}

timing() { # timing NAME START: append "NAME SECONDS" to timings.txt (run.sh prints it)
	/usr/bin/awk -v n="$1" -v a="$2" -v b="$EPOCHREALTIME" 'BEGIN { printf "%s %.1f\n", n, b - a }' >>"$results/timings.txt"
}

# CPU time (ns) of every thread of PID so far (%.0f: mawk's %d stops at 2^31).
cpu_ns() { /usr/bin/cat /proc/"$1"/task/*/schedstat 2>/dev/null | /usr/bin/awk '{ s += $1 } END { printf "%.0f", s }'; }

# --- the kernel fifo ------------------------------------------------------
fifo=/tmp/bench-fifo
/usr/bin/mkfifo "$fifo"
exec 7<>"$fifo"
printf + >&7

# --- the fair C CUSE server -----------------------------------------------
fair_dev=/dev/steve-bench-c
if [[ -x $results/fair-cuse-server ]]; then
	# Run it from the guest's tmpfs, not from the 9p share.
	/usr/bin/cp "$results/fair-cuse-server" /tmp/fair-cuse-server
	/tmp/fair-cuse-server "${fair_dev#/dev/}" 1 >"$results/fair-cuse.stdout" 2>"$results/fair-cuse.stderr" &
	fair=$!
	pids+=("$fair")
	if wait_device "$fair" "$fair_dev" 20; then
		record PASS fair-cuse-server-serves "$fair_dev"
	else
		record FAIL fair-cuse-server-serves "no $fair_dev within 20 s; stderr: $(/usr/bin/tail -c 300 "$results/fair-cuse.stderr" | /usr/bin/tr '\n' ' ')"
	fi
else
	fair=
	record FAIL fair-cuse-server-serves "no compiled server in the results share (run.sh compiles it)"
fi

# --- steve-daemon's CUSE front --------------------------------------------
steve_dev=/dev/steve-bench
started=$SECONDS
"$node" "$repo/packages/steve-daemon/bin/steve-daemon.js" -j1 --cuse "${steve_dev#/dev/}" \
	>"$results/daemon.stdout" 2>"$results/daemon.stderr" &
steve=$!
pids+=("$steve")
serving() { /usr/bin/grep -q "^steve-daemon: serving 1 tokens on $steve_dev (CUSE)" "$results/daemon.stdout"; }
# node loads the daemon over 9p under TCG: 15-30 s, near a minute on a busy host.
end=$((SECONDS + 150))
until serving && [[ -c $steve_dev ]]; do
	if ! kill -0 "$steve" 2>/dev/null || ((SECONDS >= end)); then break; fi
	/usr/bin/sleep 0.1
done
if serving && [[ -c $steve_dev ]]; then
	record PASS steve-daemon-serves "$steve_dev, ready after $((SECONDS - started)) s"
else
	record FAIL steve-daemon-serves "no serving line and $steve_dev within 150 s; stderr: $(/usr/bin/tail -c 400 "$results/daemon.stderr" | /usr/bin/tr '\n' ' ')"
fi

# --- the same one-token protocol on all three (bench_semantics.py) ---------
semantics() { # semantics LABEL PATH
	local out
	if ! out=$(/usr/bin/timeout 120 "$python" "$repo/e2e/cuse-vm/bench_semantics.py" "$2" "$1" 2>"$results/semantics-$1.stderr"); then
		out+=$'\n'"FAIL $1-semantics-finished: exited non-zero or timed out; stderr: $(/usr/bin/tail -c 300 "$results/semantics-$1.stderr" | /usr/bin/tr '\n' ' ')"
	fi
	printf '%s\n' "$out" | /usr/bin/grep -E '^(PASS|FAIL) ' | /usr/bin/tee -a "$checks"
}
t0=$EPOCHREALTIME
semantics fifo "$fifo"
if [[ -c $fair_dev ]]; then semantics fairC "$fair_dev"; fi
if [[ -c $steve_dev ]]; then semantics steve "$steve_dev"; fi
timing semantics "$t0"

# Every thread of both servers on CPU $cpu (the daemon's libuv and V8
# threads included: they were started before this).
placement_ok=1
for pid in $fair $steve; do
	"$taskset" -a -p -c $cpu "$pid" >/dev/null 2>&1 || placement_ok=0
done
# Let the daemon's start-up work settle, then one unmeasured run per target
# (V8 compiles the daemon's hot path on the first few thousand requests).
/usr/bin/sleep 2

# --- rounds ---------------------------------------------------------------
targets=(fifo fairC steve)
declare -A path=([fifo]=$fifo [fairC]=$fair_dev [steve]=$steve_dev)
declare -A server=([fifo]= [fairC]=$fair [steve]=$steve)
failed=0
# One round: pairs.py on each target in ORDER; sets entries to the JSON
# object's members ("target":{"pairs":N,"seconds":S,"serverCpuNs":NS},...).
measure() { # measure NAME SECONDS TARGET...
	local name=$1 seconds=$2 target pid before after out status
	shift 2
	entries=
	for target in "$@"; do
		pid=${server[$target]}
		before=0
		if [[ -n $pid ]]; then before=$(cpu_ns "$pid"); fi
		out=$("$taskset" -c $cpu "$python" "$pairs" "${path[$target]}" "$seconds" 2>>"$results/pairs.stderr")
		status=$?
		after=0
		if [[ -n $pid ]]; then after=$(cpu_ns "$pid"); fi
		if ((status != 0)) || ! [[ $out =~ ^pairs\ ([0-9]+)\ seconds\ ([0-9.]+) ]]; then
			record FAIL "pairs-$name-$target" "pairs.py exited $status: $out $(/usr/bin/tail -c 200 "$results/pairs.stderr" | /usr/bin/tr '\n' ' ')"
			failed=1
			continue
		fi
		entries+="${entries:+,}\"$target\":{\"pairs\":${BASH_REMATCH[1]},\"seconds\":${BASH_REMATCH[2]},\"serverCpuNs\":$((after - before))}"
	done
	echo "cuse-bench: $name ($*, $seconds s): {$entries}"
}
t0=$EPOCHREALTIME
measure warm-up "$BENCH_WARMUP" "${targets[@]}"
warmup_json="{$entries}"
timing warm-up "$t0"
rounds_json=
t0=$EPOCHREALTIME
for ((round = 0; round < BENCH_ROUNDS; round++)); do
	order=("${targets[@]:round%3}" "${targets[@]:0:round%3}")
	measure "round-$((round + 1))" "$BENCH_SECONDS" "${order[@]}"
	order_json=$(printf '"%s",' "${order[@]}")
	rounds_json+="${rounds_json:+,}{\"round\":$((round + 1)),\"order\":[${order_json%,}],\"targets\":{$entries}}"
done
if ((failed == 0)); then record PASS pairs-rounds-measured "$BENCH_ROUNDS rounds of $BENCH_SECONDS s"; fi

# Both servers still up at the end (a crash mid-run would show as a failed round too).
for target in fairC steve; do
	pid=${server[$target]}
	if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
		record PASS "$target-alive-after-rounds"
	else
		record FAIL "$target-alive-after-rounds" "the server is gone"
	fi
done

rounds_s=$(/usr/bin/awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
timing rounds "$t0"
cat >"$results/cuse-bench.json" <<EOF
{
  "kernel": "$(/usr/bin/uname -r)",
  "accel": "$ACCEL",
  "vcpus": $(/usr/bin/nproc --all),
  "pinnedCpu": $cpu,
  "placementApplied": $([[ $placement_ok == 1 ]] && echo true || echo false),
  "rounds": $BENCH_ROUNDS,
  "secondsPerRound": $BENCH_SECONDS,
  "roundsWallSeconds": $rounds_s,
  "warmupSeconds": $BENCH_WARMUP,
  "warmup": $warmup_json,
  "results": [$rounds_json]
}
EOF

! /usr/bin/grep -q '^FAIL ' "$checks"
