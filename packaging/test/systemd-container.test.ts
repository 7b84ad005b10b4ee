// The units under a real systemd 252 as PID 1: a throw-away copy of this
// machine's root booted with systemd-nspawn (test/fixtures/overlay-root.sh),
// set up with the README's steps for a systemd distribution (npm install -g
// of the tarballs, the units in /etc/systemd/system, sysusers.d, tmpfiles.d,
// /etc/default/steve), then driven by a guest script that records what it
// sees. The FUSE unit runs for real; this kernel has no CUSE, so steve.service
// is checked to fail cleanly, with the daemon's own message.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { maxConcurrency } from '@steve/test-support';
import {
  PACKAGING,
  type RootRun,
  ensureSystemdPackage,
  removeTempDirs,
  runInRootCopy,
  serviceTarballs,
} from './helpers.js';

const prepare = (tarballs: string): string => `
packaging=${PACKAGING}
# The README's steps for Debian/Fedora, into the copy (host npm and install, --root for sysusers/tmpfiles at boot).
npm install --global --offline --no-audit --no-fund --no-update-notifier --prefix "$ROOT/usr/local" ${serviceTarballs(
  tarballs,
)
  .map((t) => `'${t}'`)
  .join(' ')} >/dev/null
install -m 0644 "$packaging"/systemd/steve.service "$packaging"/systemd/steve-fuse.service "$ROOT/etc/systemd/system/"
install -D -m 0644 "$packaging"/sysusers.d/steve.conf "$ROOT/etc/sysusers.d/steve.conf"
install -D -m 0644 "$packaging"/tmpfiles.d/steve.conf "$ROOT/etc/tmpfiles.d/steve.conf"
install -m 0644 "$packaging"/systemd/steve.default "$ROOT/etc/default/steve"
sed -i 's/^STEVE_POOL=""/STEVE_POOL="-j 2"/' "$ROOT/etc/default/steve"
install -D -m 0644 "$packaging"/systemd/drop-ins/metrics.conf "$ROOT/usr/local/share/steve-test/metrics.conf"
`;

// Runs as steve-check.service inside the booted copy. Every wait has a deadline.
const GUEST = String.raw`
set -u
report() { echo "$1=$2" >> /results/report; }
step() { echo "== $*"; }
# until DEADLINE_S CMD...: true once CMD succeeds, false after the deadline.
until_ok() {
	local deadline=$(( $(date +%s%N) + $1 * 1000000000 )); shift
	while ! "$@" >/dev/null 2>&1; do
		[ "$(date +%s%N)" -lt "$deadline" ] || return 1
		sleep 0.05
	done
}
main_pid() { systemctl show -P MainPID steve-fuse.service; }
mounted() { grep -q ' /run/steve fuse' /proc/self/mountinfo; }

step "the README's set-up steps"
systemd-sysusers /etc/sysusers.d/steve.conf
systemd-tmpfiles --create /etc/tmpfiles.d/steve.conf
report steve_passwd "$(getent passwd steve | cut -d: -f1,6,7)"
report steve_groups "$(id -nG steve | tr ' ' ,)"
report jobserver_group "$(getent group jobserver | cut -d: -f1,4)"
report tmpfiles_dir "$(stat -c '%a %U %G' /run/steve)"
useradd --system --no-create-home --groups jobserver builder
useradd --system --no-create-home outsider
mkdir -m 1777 /results/stamps
printf 'all: a b c d\na b c d:\n\t@echo "start $@ $$(date +%%s%%N)" >> /results/stamps/make; sleep 0.4; echo "end $@ $$(date +%%s%%N)" >> /results/stamps/make\n' > /results/Makefile
cat > /etc/systemd/system/steve-client.service <<'EOF'
[Unit]
Description=a build that needs the pool
Requires=steve-fuse.service
After=steve-fuse.service
[Service]
Type=oneshot
User=builder
Environment=MAKEFLAGS=--jobserver-auth=3,3
ExecStart=/bin/sh -c 'test -e /run/steve/jobserver || { echo "no pool when the client started" >&2; exit 3; }; exec make -f /results/Makefile 3<>/run/steve/jobserver'
EOF
systemctl daemon-reload
systemctl enable steve-fuse.service; report enable_rc $?
report enabled "$(systemctl is-enabled steve-fuse.service)"
report wanted_by "$(readlink /etc/systemd/system/multi-user.target.wants/steve-fuse.service)"

step "a dependent unit starts steve-fuse.service and runs after it serves"
systemctl start steve-client.service; report client_rc $?
report client_result "$(systemctl show -P Result steve-client.service)"
report fuse_active "$(systemctl is-active steve-fuse.service)"
pid=$(main_pid)
report daemon_user "$(ps -o user= -p "$pid")"
report daemon_capeff "$(awk '/^CapEff/ {print $2}' /proc/$pid/status)"
report daemon_nice "$(ps -o ni= -p "$pid" | tr -d ' ')"
report jobserver_stat "$(stat -c '%a %U %G' /run/steve/jobserver)"
report control_link "$(readlink /run/steve/control.sock)"
stevie status > /results/status.txt 2>&1; report stevie_rc $?
runuser -u outsider -- sh -c 'exec 3<>/run/steve/jobserver' 2>/results/outsider.err; report outsider_rc $?
runuser -u builder -- sh -c 'exec 3<>/run/steve/jobserver'; report builder_rc $?

step "SIGKILL: systemd restarts it, the new daemon serves"
old=$pid
kill -KILL "$old"
if until_ok 20 sh -c "[ \"\$(systemctl show -P NRestarts steve-fuse.service)\" -ge 1 ] && [ \"\$(systemctl is-active steve-fuse.service)\" = active ]"; then report restarted yes; else report restarted no; fi
report restarted_new_pid "$([ "$(main_pid)" != "$old" ] && [ "$(main_pid)" != 0 ] && echo yes || echo no)"
if until_ok 10 stevie status; then report stevie_after_restart yes; else report stevie_after_restart no; fi

step "stop: unmounted, socket and runtime directory gone, no process of steve left"
systemctl stop steve-fuse.service
if mounted; then report mounted_after_stop yes; else report mounted_after_stop no; fi
report runtime_dir_after_stop "$(test -e /run/steve && echo present || echo gone)"
report socket_after_stop "$(test -e /run/steve.control.sock && echo present || echo gone)"
if until_ok 10 sh -c '! pgrep -u steve >/dev/null'; then report steve_processes_after_stop none; else report steve_processes_after_stop "$(pgrep -a -u steve | tr '\n' ';')"; fi

step "--metrics-listen needs the drop-in (AF_INET)"
sed -i 's/^STEVE_ARGS=""/STEVE_ARGS="--metrics-listen 127.0.0.1:9512"/' /etc/default/steve
start=$(date +%s%N)
systemctl start steve-fuse.service; report metrics_without_dropin_rc $?
report metrics_without_dropin_ms $(( ($(date +%s%N) - start) / 1000000 ))
journalctl -u steve-fuse.service --no-pager -o cat > /results/journal-metrics.txt 2>&1
systemctl stop steve-fuse.service
systemctl reset-failed steve-fuse.service
install -D -m 0644 /usr/local/share/steve-test/metrics.conf /etc/systemd/system/steve-fuse.service.d/metrics.conf
systemctl daemon-reload
systemctl start steve-fuse.service; report metrics_with_dropin_rc $?
node -e 'fetch("http://127.0.0.1:9512/metrics").then(r => r.text()).then(t => process.stdout.write(t))' > /results/metrics.txt 2>&1; report metrics_fetch_rc $?
systemctl stop steve-fuse.service
rm -r /etc/systemd/system/steve-fuse.service.d
sed -i 's/^STEVE_ARGS=.*/STEVE_ARGS=""/' /etc/default/steve

step "why steve-fuse.service has no ProtectSystem=: the mount would stay in the unit's namespace"
# (Not at /run/steve: with ProtectSystem= systemd bind-mounts the RuntimeDirectory
# inside the namespace, and the daemon refuses to mount over a mount.)
mkdir -p /etc/systemd/system/steve-fuse.service.d /run/steve-ns
printf '%s\n' '[Service]' 'ProtectSystem=strict' 'ReadWritePaths=/run' 'ExecStart=' \
	'ExecStart=steve-daemon --fuse /run/steve-ns --control /run/steve-ns.sock --user steve --group jobserver' \
	'ExecStartPost=' > /etc/systemd/system/steve-fuse.service.d/namespace.conf
systemctl daemon-reload
systemctl start steve-fuse.service; report namespaced_start_rc $?
if until_ok 10 test -S /run/steve-ns.sock; then report namespaced_socket_outside yes; else report namespaced_socket_outside no; fi
report namespaced_mount_inside "$(nsenter -t "$(main_pid)" -m test -e /run/steve-ns/jobserver && echo yes || echo no)"
report namespaced_visible_outside "$(test -e /run/steve-ns/jobserver && echo yes || echo no)"
systemctl stop steve-fuse.service
rm -r /etc/systemd/system/steve-fuse.service.d
systemctl daemon-reload

step "readiness can fail: a daemon that never answers keeps the unit from starting, and its dependents"
mkdir -p /etc/systemd/system/steve-fuse.service.d
printf '[Service]\nExecStart=\nExecStart=/bin/sleep infinity\nTimeoutStartSec=4s\n' > /etc/systemd/system/steve-fuse.service.d/silent.conf
systemctl daemon-reload
client_runs=$(systemctl show -P ExecMainStartTimestampMonotonic steve-client.service)
systemctl start steve-client.service; report silent_client_rc $?
report silent_fuse_result "$(systemctl show -P Result steve-fuse.service)"
report silent_client_ran "$([ "$(systemctl show -P ExecMainStartTimestampMonotonic steve-client.service)" = "$client_runs" ] && echo no || echo yes)"
systemctl stop steve-fuse.service
rm -r /etc/systemd/system/steve-fuse.service.d
systemctl daemon-reload
systemctl reset-failed

step "steve.service without CUSE (this kernel): fails at once with the daemon's message"
start=$(date +%s%N)
systemctl start steve.service; report cuse_rc $?
report cuse_ms $(( ($(date +%s%N) - start) / 1000000 ))
report cuse_result "$(systemctl show -P Result steve.service)"
journalctl -u steve.service --no-pager -o cat > /results/journal-cuse.txt 2>&1
journalctl -u steve-fuse.service --no-pager -o cat > /results/journal-fuse.txt 2>&1
report done yes
`;

let result: RootRun;
let tarballs: string;

beforeAll(async () => {
  tarballs = inject('tarballs');
  await ensureSystemdPackage('systemd-container');
  const started = Date.now();
  result = await runInRootCopy('nspawn', prepare(tarballs), GUEST, 240);
  console.log(`systemd container run: ${Date.now() - started} ms`);
});

afterAll(removeTempDirs);

describe('steve-fuse.service under systemd 252 as PID 1 (nspawn)', () => {
  const get = (key: string) => result.report.get(key);
  const file = (name: string) => readFileSync(join(result.results, name), 'utf8');

  it('boots, runs every step and powers off', () => {
    expect(get('done'), `${result.output}\n${result.guestLog}`).toBe('yes');
    expect(result.exitCode, result.output).toBe(0);
  });

  it('systemctl enable hooks it into multi-user.target', () => {
    expect(get('enable_rc')).toBe('0');
    expect(get('enabled')).toBe('enabled');
    expect(get('wanted_by')).toBe('/etc/systemd/system/steve-fuse.service');
  });

  it('sysusers.d and tmpfiles.d make the user, the groups and /run/steve', () => {
    expect(get('steve_passwd')).toBe('steve:/:/usr/sbin/nologin');
    expect(get('steve_groups')).toBe('steve,jobserver');
    expect(get('jobserver_group')).toBe('jobserver:steve');
    expect(get('tmpfiles_dir')).toBe('755 root root');
  });

  it('a unit After=steve-fuse.service finds the pool when it starts and builds through it', () => {
    expect(get('client_rc'), result.guestLog).toBe('0');
    expect(get('client_result')).toBe('success');
    expect(get('fuse_active')).toBe('active');
    const stamps = file('stamps/make');
    expect(stamps.match(/^end /gm)).toHaveLength(4);
    // STEVE_POOL="-j 2" from /etc/default/steve: 2 tokens + make's implicit slot.
    expect(maxConcurrency(stamps)).toBeGreaterThan(1);
    expect(maxConcurrency(stamps)).toBeLessThanOrEqual(3);
    expect(file('status.txt')).toMatch(/^jobs 2 /m);
    expect(get('stevie_rc')).toBe('0');
  });

  it('the daemon runs as steve with no capabilities; the file is 0660 root:jobserver', () => {
    expect(get('daemon_user')).toBe('steve');
    expect(get('daemon_capeff')).toBe('0000000000000000');
    expect(get('daemon_nice')).toBe('-10');
    expect(get('jobserver_stat')).toBe('660 root jobserver');
    expect(get('control_link')).toBe('/run/steve.control.sock');
    expect(get('builder_rc')).toBe('0');
    expect(get('outsider_rc')).not.toBe('0');
    expect(file('outsider.err')).toContain('Permission denied');
  });

  it('SIGKILLed, it is restarted and serves again; stopped, nothing is left', () => {
    expect(get('restarted')).toBe('yes');
    expect(get('restarted_new_pid')).toBe('yes');
    expect(get('stevie_after_restart')).toBe('yes');
    expect(get('mounted_after_stop')).toBe('no');
    expect(get('runtime_dir_after_stop')).toBe('gone');
    expect(get('socket_after_stop')).toBe('gone');
    expect(get('steve_processes_after_stop')).toBe('none');
  });

  it('--metrics-listen fails under AF_UNIX only (at once: the wait sees the daemon exit) and works with the drop-in', () => {
    expect(get('metrics_without_dropin_rc')).not.toBe('0');
    expect(Number(get('metrics_without_dropin_ms'))).toBeLessThan(15_000);
    expect(file('journal-metrics.txt')).toContain('steve-daemon exited before it served');
    expect(file('journal-metrics.txt')).toMatch(/EAFNOSUPPORT|Address family not supported/);
    expect(get('metrics_with_dropin_rc')).toBe('0');
    expect(get('metrics_fetch_rc')).toBe('0');
    expect(file('metrics.txt')).toMatch(/^steve_jobs 2$/m);
  });

  it('with ProtectSystem= the mount would be invisible outside the unit (why the FUSE unit has none)', () => {
    expect(get('namespaced_start_rc')).toBe('0');
    expect(get('namespaced_socket_outside')).toBe('yes');
    expect(get('namespaced_mount_inside')).toBe('yes');
    expect(get('namespaced_visible_outside')).toBe('no');
  });

  it('readiness is a gate: a daemon that never answers fails the start, and the dependent does not run', () => {
    expect(get('silent_client_rc')).not.toBe('0');
    expect(get('silent_fuse_result')).toBe('timeout');
    expect(get('silent_client_ran')).toBe('no');
  });

  it('steve.service without /dev/cuse fails at once with the daemon saying why', () => {
    expect(get('cuse_rc')).not.toBe('0');
    expect(Number(get('cuse_ms'))).toBeLessThan(15_000);
    expect(get('cuse_result')).toBe('exit-code');
    expect(file('journal-cuse.txt')).toContain('cannot open /dev/cuse');
    expect(file('journal-cuse.txt')).toContain('steve-daemon exited before it served');
  });
});
