"""The chaos suite's subset for the CUSE guest (run by e2e/cuse-vm/guest-checks.sh):
every sharing pattern of chaos_client.py at once on the device, with two
SIGKILLs and a SIGSTOP/SIGCONT of running clients, then the over-issue check on
what the clients stamped (the same rules as invariants.ts, no job changes).
Prints PASS/FAIL lines. usage: guest_chaos.py CLIENT DEVICE JOBS WORKDIR"""
import os, signal, subprocess, sys, time

client, device, jobs, work = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
stamps = os.path.join(work, "chaos-stamps")
open(stamps, "w").close()
modes = ["blocking", "nonblocking", "poll", "threads", "fork", "shared", "crossfd"]
procs = [subprocess.Popen([sys.executable, client, m, device, stamps, "6", str(i)], stderr=subprocess.PIPE)
         for i, m in enumerate(modes * 2)]

def append(line):
    fd = os.open(stamps, os.O_WRONLY | os.O_APPEND)
    os.write(fd, line.encode())
    os.close(fd)

killed = set()
deadline = time.monotonic() + 5
for victim in (procs[0], procs[3]):  # a blocking reader and a threaded client
    while time.monotonic() < deadline and os.path.getsize(stamps) < 200:
        time.sleep(0.01)
    append(f"x {victim.pid} {time.time_ns()}\n")
    killed.add(victim.pid)
    victim.send_signal(signal.SIGKILL)
stopped = procs[2]
stopped.send_signal(signal.SIGSTOP)
time.sleep(0.2)  # the fault's length, not a synchronisation
stopped.send_signal(signal.SIGCONT)

errors, hung = [], 0
for p in procs:
    try:
        code = p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        hung += 1
        p.kill()
        continue
    if p.pid not in killed and code != 0:
        errors.append(f"pid {p.pid} exit {code}: {p.stderr.read().decode().strip()[-200:]}")

holder_of, dead, grants, max_held = {}, set(), 0, 0
for line in open(stamps):
    w = line.split()
    if not w:
        continue
    if w[0] == "+" and int(w[1]) not in dead:
        grants += 1
        holder_of[w[2]] = int(w[1])
        max_held = max(max_held, len(holder_of))
    elif w[0] == "h" and w[2] in holder_of:
        holder_of[w[2]] = int(w[1])
    elif w[0] == "-":
        holder_of.pop(w[2], None)
    elif w[0] == "x":
        dead.add(int(w[1]))
        holder_of = {t: h for t, h in holder_of.items() if h != int(w[1])}

def report(ok, name, detail):
    print(f"{'PASS' if ok else 'FAIL'} {name} ({detail})" if ok else f"FAIL {name}: {detail}", flush=True)

report(not errors and hung == 0, "chaos-patterns-all-clients-finish", f"{len(procs)} clients, {grants} grants, hung {hung}" + (f"; {errors}" if errors else ""))
report(max_held <= jobs and grants > 20, "chaos-patterns-never-over-issue", f"max held {max_held} of {jobs}, {grants} grants")
