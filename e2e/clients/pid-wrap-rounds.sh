#!/usr/bin/env bash
# Runs as pid 1 of a fresh pid + mount namespace (`unshare --pid --fork
# --mount-proc`, started by pid-reuse-with-cargo.e2e.test.ts). It makes thread
# ids come back fast: a small per-namespace pid_max (Linux >= 6.14), then
# rounds of
#   1. PID_MAX processes that only open the jobserver and exit (what a make 4.4
#      sub-make running one job, or a rustc calling jobserver-rs from_env,
#      does): every id of the cycle is used once by an open-only process;
#   2. a real cargo build (fresh target dir) as a fifo client of the daemon:
#      the helper threads of cargo and rustc, which do the reads, get ids that
#      open-only processes had before.
# A daemon that charges a reused id to the process that had it before loses
# those tokens (returns get ENOSPC, exits reclaim nothing), and builds slow
# down or hang in read.
#
# Environment (all required): NODE (the node binary), STEVE_DAEMON_BIN,
# DIR (an empty directory), PID_MAX, JOBS, ROUNDS, WORKSPACE (a cargo
# workspace), STAMPS (for its build scripts), BUILD_DEADLINE_S,
# TOKENS_BACK_DEADLINE_S.
# Output on stdout, one fact per line:
#   pid_max N | serving | opens ROUND N | build ROUND CODE SECONDS | wraps N |
#   status LINE (the status file once all tokens are back, or at the deadline)
# Files in DIR: daemon.log (the daemon's stderr, -v records), open-ids-ROUND
# (the id of each open-only process), cargo-ROUND.log.
set -euo pipefail

: "${NODE:?}" "${STEVE_DAEMON_BIN:?}" "${DIR:?}" "${PID_MAX:?}" "${JOBS:?}" "${ROUNDS:?}" "${WORKSPACE:?}"
: "${STAMPS:?}" "${BUILD_DEADLINE_S:?}" "${TOKENS_BACK_DEADLINE_S:?}"

if (($$ != 1)); then
  echo "pid-wrap-rounds.sh: must run as pid 1 of a new pid namespace" >&2
  exit 2
fi
echo "$PID_MAX" >/proc/sys/kernel/pid_max
read -r pid_max </proc/sys/kernel/pid_max
if ((pid_max != PID_MAX)); then
  echo "pid-wrap-rounds.sh: this kernel has no per-namespace pid_max (reads $pid_max)" >&2
  exit 2
fi
echo "pid_max $pid_max"

# Waiting without forking (a fork would take an id): `read -t` on a fifo that
# nobody writes to.
mkfifo "$DIR/tick"
exec {tick}<>"$DIR/tick"
pause() { read -r -t "$1" -u "$tick" _ || true; }

# Deadlines in whole microseconds of EPOCHREALTIME (a builtin variable, no fork).
now_us() { echo $((${EPOCHREALTIME/./})); }

mount_dir="$DIR/mnt"
jobserver="$mount_dir/jobserver"
"$NODE" "$STEVE_DAEMON_BIN" --fuse "$mount_dir" --control "$DIR/control.sock" -j "$JOBS" -v \
  >"$DIR/daemon.out" 2>"$DIR/daemon.log" &
daemon=$!

deadline=$(($(now_us) + 30000000))
until [[ -s $DIR/daemon.out && $(<"$DIR/daemon.out") == *"serving "*" tokens on "* ]]; do
  if ! kill -0 "$daemon" 2>/dev/null; then
    echo "pid-wrap-rounds.sh: steve-daemon exited before serving" >&2
    exit 3
  fi
  if (($(now_us) > deadline)); then
    echo "pid-wrap-rounds.sh: steve-daemon did not start serving within 30 s" >&2
    exit 3
  fi
  pause 0.02
done
echo serving

# Count wraps: ns_last_pid (the last id handed out in this namespace) only
# goes down when allocation starts over. A cycle is PID_MAX - 300 ids (the
# kernel skips the first 300 after a wrap), far more than a few ms can use.
(
  last=0
  while :; do
    read -r current </proc/sys/kernel/ns_last_pid
    if ((current < last)); then echo "$current" >>"$DIR/wraps"; fi
    last=$current
    pause 0.005
  done
) &
sampler=$!

for ((round = 1; round <= ROUNDS; round++)); do
  exec {ids}>"$DIR/open-ids-$round"
  for ((i = 0; i < PID_MAX; i++)); do
    (
      exec 3<"$jobserver"
      echo "$BASHPID" >&"$ids"
    )
  done
  exec {ids}>&-
  echo "opens $round $PID_MAX"

  started=$(now_us)
  code=0
  env -u MFLAGS -u MAKELEVEL -u CARGO_MAKEFLAGS \
    MAKEFLAGS="--jobserver-auth=fifo:$jobserver" CARGO_TARGET_DIR="$DIR/target-$round" \
    STAMPS="$STAMPS" \
    timeout --kill-after=5 "$BUILD_DEADLINE_S" \
    cargo build --offline --quiet --manifest-path "$WORKSPACE/Cargo.toml" \
    >"$DIR/cargo-$round.log" 2>&1 || code=$?
  elapsed_us=$(($(now_us) - started))
  printf 'build %d %d %d.%03d\n' "$round" "$code" $((elapsed_us / 1000000)) \
    $((elapsed_us / 1000 % 1000))
  # A build that failed or hit its deadline ends the run: the rest would only
  # add deadlines.
  ((code == 0)) || break
done

kill "$sampler"
wait "$sampler" || true
wraps=0
if [[ -f $DIR/wraps ]]; then
  mapfile -t wrap_lines <"$DIR/wraps"
  wraps=${#wrap_lines[@]}
fi
echo "wraps $wraps"

# Every process of the builds has exited; its tokens must all come back.
deadline=$(($(now_us) + TOKENS_BACK_DEADLINE_S * 1000000))
while :; do
  read -r status_line <"$mount_dir/status"
  if [[ $status_line == *"  out 0  "* ]] || (($(now_us) > deadline)); then break; fi
  pause 0.02
done
echo "status $status_line"

kill -TERM "$daemon"
wait "$daemon" || true
