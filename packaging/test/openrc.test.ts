// The OpenRC init script under real OpenRC: Debian 12's openrc 0.45.2
// (openrc-run, supervise-daemon, checkpath, mountinfo; downloaded with
// apt-get download and unpacked, not installed) in a chroot of a throw-away
// copy of this machine's root (test/fixtures/overlay-root.sh), with the
// tarballs installed as the ebuild lays them out (/usr/bin/steve-daemon).
// OpenRC is not PID 1 there: /run/openrc/softlevel tells openrc-run to work
// anyway, as its own message suggests. The FUSE front runs for real; this
// kernel has no CUSE, so the CUSE front is checked to fail in start_pre.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { maxConcurrency } from '@steve/test-support';
import {
  PACKAGING,
  type RootRun,
  downloadDebs,
  removeTempDirs,
  run,
  runInRootCopy,
  serviceTarballs,
  tempDir,
} from './helpers.js';

const INITD = join(PACKAGING, 'openrc', 'steve.initd');
const CONFD = join(PACKAGING, 'openrc', 'steve.confd');

const prepare = (tarballs: string, debs: string[]): string => `
packaging=${PACKAGING}
unpacked=$(mktemp -d)
for deb in ${debs.map((d) => `'${d}'`).join(' ')}; do dpkg-deb -x "$deb" "$unpacked"; done
# Into the copy without replacing its /lib -> usr/lib (merged /usr) by a directory.
tar -C "$unpacked" -cf - . | tar -C "$ROOT" --keep-directory-symlink -xf -
rm -rf "$unpacked"
# Debian's openrc reads LSB headers of /etc/init.d/* through insserv's config.
touch "$ROOT/etc/insserv.conf"
# Gentoo's localmount (which steve's depend() needs) is not in Debian's openrc: a no-op stand-in.
printf '%s\\n' '#!/sbin/openrc-run' 'description="stand-in for Gentoo localmount"' 'start() { :; }' > "$ROOT/etc/init.d/localmount"
chmod 0755 "$ROOT/etc/init.d/localmount"
# The ebuild's layout: npm's tree under /usr, bins in /usr/bin.
npm install --global --offline --no-audit --no-fund --no-update-notifier --prefix "$ROOT/usr" ${serviceTarballs(
  tarballs,
)
  .map((t) => `'${t}'`)
  .join(' ')} >/dev/null
install -m 0755 "$packaging"/openrc/steve.initd "$ROOT/etc/init.d/steve"
install -D -m 0644 "$packaging"/openrc/steve.confd "$ROOT/etc/conf.d/steve"
# acct-group/jobserver, acct-group/steve, acct-user/steve on Gentoo; the sysusers.d file here.
systemd-sysusers --root="$ROOT" "$packaging"/sysusers.d/steve.conf
`;

const GUEST = String.raw`
set -u
report() { echo "$1=$2" >> /results/report; }
step() { echo "== $*"; }
until_ok() {
	local deadline=$(( $(date +%s%N) + $1 * 1000000000 )); shift
	while ! "$@" >/dev/null 2>&1; do
		[ "$(date +%s%N)" -lt "$deadline" ] || return 1
		sleep 0.05
	done
}
setting() { sed -i "s|^$1=.*|$1=\"$2\"|" /etc/conf.d/steve; }
daemon_pid() { pgrep -u steve -f 'steve-daemon --fuse' | head -n 1; }
mounted() { grep -q ' /run/steve fuse' /proc/self/mountinfo; }
# What OpenRC's boot does before any service starts: its state directories,
# the runlevel, the dependency cache.
for d in daemons exclusive failed hotplugged inactive options scheduled started starting stopping tmp wasinactive; do
	mkdir -p /run/openrc/$d
done
echo default > /run/openrc/softlevel
/lib/rc/bin/rc-depend -u
useradd --system --no-create-home --groups jobserver builder
useradd --system --no-create-home outsider
mkdir -m 1777 /results/stamps
printf 'all: a b c d\na b c d:\n\t@echo "start $@ $$(date +%%s%%N)" >> /results/stamps/make; sleep 0.4; echo "end $@ $$(date +%%s%%N)" >> /results/stamps/make\n' > /results/Makefile

step "STEVE_FRONT=fuse: start, and the pool is there when start returns"
setting STEVE_FRONT fuse
setting STEVE_POOL "-j 2"
/etc/init.d/steve start > /results/start.txt 2>&1; report start_rc $?
report ready_when_started "$(test -e /run/steve/jobserver && echo yes || echo no)"
/etc/init.d/steve status > /results/status.txt 2>&1; report status_rc $?
report ineed "$(/etc/init.d/steve ineed | xargs)"
pid=$(daemon_pid)
report daemon_user "$(ps -o user= -p "$pid")"
report daemon_capeff "$(awk '/^CapEff/ {print $2}' /proc/$pid/status)"
report daemon_nice "$(ps -o ni= -p "$pid" | tr -d ' ')"
report supervisor "$(pgrep -f '^supervise-daemon steve' >/dev/null && echo running || echo none)"
report jobserver_stat "$(stat -c '%a %U %G' /run/steve/jobserver)"
stevie status > /results/stevie.txt 2>&1; report stevie_rc $?
runuser -u builder -- env MAKEFLAGS=--jobserver-auth=3,3 sh -c 'exec make -f /results/Makefile 3<>/run/steve/jobserver' > /results/make.txt 2>&1; report make_rc $?
runuser -u outsider -- sh -c 'exec 3<>/run/steve/jobserver' 2>/results/outsider.err; report outsider_rc $?

step "SIGKILL: supervise-daemon starts a new daemon, which serves"
kill -KILL "$pid"
if until_ok 20 sh -c "p=\$(pgrep -u steve -f 'steve-daemon --fuse' | head -n 1); [ -n \"\$p\" ] && [ \"\$p\" != $pid ] && stevie status"; then report respawned yes; else report respawned no; fi
cp /var/log/steve.log /results/steve.log

step "stop: unmounted, no daemon, no socket"
/etc/init.d/steve stop > /results/stop.txt 2>&1; report stop_rc $?
if mounted; then report mounted_after_stop yes; else report mounted_after_stop no; fi
report socket_after_stop "$(test -e /run/steve.control.sock && echo present || echo gone)"
if until_ok 10 sh -c '! pgrep -u steve >/dev/null'; then report steve_processes_after_stop none; else report steve_processes_after_stop "$(pgrep -a -u steve | tr '\n' ';')"; fi
report supervisor_after_stop "$(pgrep -f '^supervise-daemon steve' >/dev/null && echo running || echo none)"

step "readiness can fail: a daemon that exits at once fails the start within STEVE_START_TIMEOUT"
setting STEVE_ARGS "--no-such-option"
setting STEVE_START_TIMEOUT 3
/etc/init.d/steve start > /results/start-bad-args.txt 2>&1; report bad_args_rc $?
report supervisor_after_failed_start "$(pgrep -f '^supervise-daemon steve' >/dev/null && echo running || echo none)"
report bad_args_status "$(/etc/init.d/steve status 2>&1 | xargs)"
setting STEVE_ARGS ""
setting STEVE_START_TIMEOUT 30

step "STEVE_FRONT=cuse without CUSE (this kernel): start_pre refuses, saying what to do"
setting STEVE_FRONT cuse
/etc/init.d/steve start > /results/start-cuse.txt 2>&1; report cuse_rc $?
report cuse_daemon "$(pgrep -u steve >/dev/null && echo running || echo none)"
/etc/init.d/steve zap > /dev/null 2>&1

step "STEVE_FRONT=bogus"
setting STEVE_FRONT bogus
/etc/init.d/steve start > /results/start-bogus.txt 2>&1; report bogus_rc $?
report done yes
`;

let result: RootRun;

beforeAll(async () => {
  const debs = await downloadDebs(['openrc', 'librc1', 'libeinfo1']);
  const started = Date.now();
  result = await runInRootCopy('chroot', prepare(inject('tarballs'), debs), GUEST, 180);
  console.log(`OpenRC chroot run: ${Date.now() - started} ms`);
});

afterAll(removeTempDirs);

describe('the init script and conf.d, as shell', () => {
  it('parse with sh (dash) and bash -n; a broken copy does not', async () => {
    for (const shell of ['sh', 'bash']) {
      for (const file of [INITD, CONFD]) {
        const ok = await run(shell, ['-n', file]);
        expect(ok.exitCode, `${shell} -n ${file}: ${ok.all}`).toBe(0);
      }
      const broken = join(tempDir(), 'steve.initd');
      writeFileSync(broken, readFileSync(INITD, 'utf8').replace('esac\n', '\n'));
      expect((await run(shell, ['-n', broken])).exitCode, `${shell} -n broken`).not.toBe(0);
    }
  });

  it('conf.d is plain NAME="value" lines, so systemd reads it too', () => {
    const lines = readFileSync(CONFD, 'utf8')
      .split('\n')
      .filter((line) => line !== '' && !line.startsWith('#'));
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(line).toMatch(/^STEVE_[A-Z_]+="[^"$`\\]*"$/);
    // And the same variables the units use.
    const unit = readFileSync(join(PACKAGING, 'systemd', 'steve.service'), 'utf8');
    expect(unit).toContain('$STEVE_POOL $STEVE_ARGS');
    expect(lines.map((line) => line.split('=')[0])).toEqual(
      expect.arrayContaining(['STEVE_FRONT', 'STEVE_POOL', 'STEVE_ARGS']),
    );
    // /etc/default/steve has the systemd subset of the same lines.
    const defaults = readFileSync(join(PACKAGING, 'systemd', 'steve.default'), 'utf8');
    expect(defaults).toMatch(/^STEVE_POOL=""$/m);
    expect(defaults).toMatch(/^STEVE_ARGS=""$/m);
  });

  it('is found executable by openrc-run (its shebang)', () => {
    expect(readFileSync(INITD, 'utf8').split('\n')[0]).toBe('#!/sbin/openrc-run');
    expect(() => execFileSync('test', ['-x', INITD])).not.toThrow();
  });
});

describe('under real OpenRC 0.45.2 (Debian), in a chroot', () => {
  const get = (key: string) => result.report.get(key);
  const file = (name: string) => readFileSync(join(result.results, name), 'utf8');

  it('runs every step', () => {
    expect(get('done'), `${result.output}\n${result.guestLog}`).toBe('yes');
    expect(result.exitCode, result.output).toBe(0);
  });

  it('starts the FUSE front under supervise-daemon; the pool serves when start returns', () => {
    expect(get('start_rc'), file('start.txt')).toBe('0');
    expect(file('start.txt')).toContain('Waiting for steve-daemon to serve');
    expect(get('ready_when_started')).toBe('yes');
    expect(get('status_rc')).toBe('0');
    expect(get('supervisor')).toBe('running');
    expect(get('ineed')).toBe('localmount');
    expect(file('stevie.txt')).toMatch(/^jobs 2 /m);
  });

  it('the daemon runs as steve without capabilities; builder (group jobserver) builds, others are refused', () => {
    expect(get('daemon_user')).toBe('steve');
    expect(get('daemon_capeff')).toBe('0000000000000000');
    expect(get('daemon_nice')).toBe('-10');
    expect(get('jobserver_stat')).toBe('660 root jobserver');
    expect(get('make_rc'), file('make.txt')).toBe('0');
    const stamps = file('stamps/make');
    expect(stamps.match(/^end /gm)).toHaveLength(4);
    expect(maxConcurrency(stamps)).toBeGreaterThan(1);
    expect(maxConcurrency(stamps)).toBeLessThanOrEqual(3);
    expect(get('outsider_rc')).not.toBe('0');
    expect(file('outsider.err')).toContain('Permission denied');
  });

  it('a SIGKILLed daemon is replaced by supervise-daemon; stop leaves nothing behind', () => {
    expect(get('respawned'), file('steve.log')).toBe('yes');
    expect(get('stop_rc'), file('stop.txt')).toBe('0');
    expect(get('mounted_after_stop')).toBe('no');
    expect(get('socket_after_stop')).toBe('gone');
    expect(get('steve_processes_after_stop')).toBe('none');
    expect(get('supervisor_after_stop')).toBe('none');
  });

  it('a daemon that never serves fails the start (the readiness wait is a gate)', () => {
    expect(get('bad_args_rc')).not.toBe('0');
    expect(file('start-bad-args.txt')).toContain('did not answer');
    // No supervise-daemon left restarting it (OpenRC leaves it; start_post stops it).
    expect(get('supervisor_after_failed_start')).toBe('none');
    expect(get('bad_args_status')).toContain('status: stopped');
  });

  it('the CUSE front without /dev/cuse, and a bogus front, fail in start_pre with the fix', () => {
    expect(get('cuse_rc')).not.toBe('0');
    expect(file('start-cuse.txt')).toContain('STEVE_FRONT="fuse"');
    expect(get('cuse_daemon')).toBe('none');
    expect(get('bogus_rc')).not.toBe('0');
    expect(file('start-bogus.txt')).toContain('STEVE_FRONT must be "cuse" or "fuse"');
  });
});
