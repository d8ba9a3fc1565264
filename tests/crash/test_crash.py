#!/usr/bin/env python3
# Power-cut test of the preload library (direct mode): fsynced data survives SIGKILL.
#
# usage: test_crash.py CRASHW ZVFS [--rounds N] [--seed S] [--plain]
#   exit 0 pass, 1 fail, 77 skip.  Environment as run_preloaded.sh (ZT_LIB, ZT_SANITIZE,
#   ZT_CC); ZT_KEEP=1 keeps the temp dir.
#
# One store image, many rounds.  Each round:
#   1. crashw write (under the library, device "fault:IMAGE": writes no flush covered stay in
#      the process) prints "B n" before op n and "S f n" once an fsync of file f returned;
#      every other round with a 512 KiB cache, so that pressure writes back unsynced data;
#   2. after a random number of lines (seeded: no timing) the harness sends SIGKILL: a power
#      cut that drops every unflushed write, then reads what was already in the pipe;
#   3. zvfs fsck --mount on the image as the cut left it must find no error (exit 0; warnings
#      allowed: orphan md pages and orphan blobs are what a crash leaves, docs/tools.md); every
#      4th round it is fsck --repair instead (exit 0 or 1), then a clean fsck (0, no warning);
#   4. crashw check (under the library, plain image: the store is recovered, or repaired)
#      verifies every fsynced byte and size of this round's files;
#   5. zvfs fsck --mount again (exit 0).
# --plain runs steps 1, 2 and 4 without the library on the kernel's files (a self-test of the
# writer and the checker).  --lie is the other self-test: the writer reports syncs it never
# made (CRASHW_LIE=1), and the run passes only if the checker catches lost "synced" data.
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile

STALL_S = 60  # a writer that prints nothing for this long is hung
check_failures = 0  # rounds whose crashw check found synced data lost


def preload_env(mnt, device):
    env = dict(os.environ)
    lib = env.get("ZT_LIB", "")
    if not lib or not os.path.isfile(lib):
        print("FAIL: ZT_LIB (libzvfs.so) not set or missing")
        sys.exit(1)
    san = env.get("ZT_SANITIZE", "none") or "none"
    cc = env.get("ZT_CC", "cc")
    pre = lib
    if "address" in san:
        rt = subprocess.run([cc, "-print-file-name=libasan.so"], capture_output=True,
                            text=True).stdout.strip()
        pre = rt + ":" + lib
        # last wins: the suite's own ASAN_OPTIONS turn leak checks on
        env["ASAN_OPTIONS"] = (env["ASAN_OPTIONS"] + ":" if env.get("ASAN_OPTIONS")
                               else "") + "detect_leaks=0"
    elif "undefined" in san:
        rt = subprocess.run([cc, "-print-file-name=libubsan.so"], capture_output=True,
                            text=True).stdout.strip()
        pre = rt + ":" + lib
    elif san != "none":
        print("SKIP: sanitizer %s not supported by this test" % san)
        sys.exit(77)
    env.update(LD_PRELOAD=pre, ZVFS_MOUNT=mnt, ZVFS_MODE="direct", ZVFS_DEVICE=device)
    return env


def run_writer(cmd, env, kill_after):
    """Start the writer, SIGKILL it after kill_after lines; return (last_begun, syncs)."""
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    last, syncs, nlines, data, killed = -1, {}, 0, b"", False
    fd = p.stdout.fileno()
    while True:
        r, _, _ = select.select([fd], [], [], STALL_S)
        if not r:
            p.kill()
            p.wait()
            raise RuntimeError("writer printed nothing for %d s (hung?)" % STALL_S)
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
        *lines, data = data.split(b"\n")
        for ln in lines:
            w = ln.split()
            if w[0] == b"B":
                last = int(w[1])
            elif w[0] == b"S":
                syncs[int(w[1])] = int(w[2])
            nlines += 1
        if nlines >= kill_after and not killed:
            # the cut: lines still in the pipe were printed before it and still count
            p.send_signal(signal.SIGKILL)
            killed = True
    err = p.stderr.read().decode(errors="replace")
    rc = p.wait()
    if not killed or rc != -signal.SIGKILL:
        raise RuntimeError("writer exited by itself (status %d) before the cut:\n%s" % (rc, err))
    return last, syncs


def fsck(zvfs, image, mnt, repair=False):
    cmd = [zvfs, "fsck", "--no-progress", "--mount", mnt, image] + (["--repair"] if repair else [])
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    return p.returncode, p.stdout + p.stderr


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        print(__doc__ or "usage: test_crash.py CRASHW ZVFS [--rounds N] [--seed S] [--plain]")
        return 2
    crashw, zvfs = args[0], args[1]
    rounds, seed, plain, lie = 32, 1, False, False
    i = 2
    while i < len(args):
        if args[i] == "--rounds":
            rounds = int(args[i + 1])
            i += 1
        elif args[i] == "--seed":
            seed = int(args[i + 1])
            i += 1
        elif args[i] == "--plain":
            plain = True
        elif args[i] == "--lie":
            lie = True
        i += 1
    tmp = tempfile.mkdtemp(prefix="zvfs-crash.")
    try:
        if lie:
            os.environ["CRASHW_LIE"] = "1"
            rounds_run(crashw, zvfs, tmp, rounds, seed, plain, check_fsck=False)
            print("self-test: the checker %s the lost data" %
                  ("caught" if check_failures else "MISSED"))
            return 0 if check_failures else 1
        return rounds_run(crashw, zvfs, tmp, rounds, seed, plain)
    finally:
        if os.environ.get("ZT_KEEP"):
            print("# kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def rounds_run(crashw, zvfs, tmp, rounds, seed, plain, check_fsck=True):
    global check_failures
    mnt = os.path.join(tmp, "mnt")
    d = os.path.join(mnt, "d")
    os.makedirs(d)
    image = os.path.join(tmp, "store.img")
    log = os.path.join(tmp, "zvfs.log")
    rng = random.Random(seed)
    if plain:
        wenv = cenv = dict(os.environ)
    else:
        cenv = preload_env(mnt, image + ",size=1G,create")
        wenv = preload_env(mnt, "fault:" + image + ",size=1G")
        cenv["ZVFS_LOG_FILE"] = wenv["ZVFS_LOG_FILE"] = log
        p = subprocess.run([crashw, "init", d], env=cenv, capture_output=True, text=True,
                           timeout=60)
        if p.returncode != 0:
            print("FAIL: crashw init:", p.stdout, p.stderr)
            return 1
    failed = 0
    total_syncs = 0
    total_dropped = 0
    repairs = 0
    orphans = 0
    for rnd in range(rounds):
        s = seed * 1000 + rnd
        kill_after = rng.choice([rng.randint(2, 60), rng.randint(60, 600), rng.randint(600, 4000)])
        if not plain:
            if rnd % 2:
                wenv["ZVFS_CACHE_SIZE"] = "512K"
            else:
                wenv.pop("ZVFS_CACHE_SIZE", None)
        try:
            last, syncs = run_writer([crashw, "write", d, str(s), str(rnd)], wenv, kill_after)
        except RuntimeError as e:
            print("FAIL round %d (seed %d): %s" % (rnd, s, e))
            return 1
        total_syncs += len(syncs)
        if not plain and check_fsck:
            # every 4th round, repair the store as the cut left it: the check then also
            # proves that --repair (recovery, orphan deletion, sizes) keeps every synced byte
            repair = rnd % 4 == 3
            rc, out = fsck(zvfs, image, mnt, repair=repair)
            if rc not in ((0, 1) if repair else (0,)):
                print("FAIL round %d: fsck%s after the cut: exit %d\n%s" %
                      (rnd, " --repair" if repair else "", rc, out))
                failed += 1
            elif repair:
                orphans += len(re.findall(r"^repair: orphan blob", out, re.M))
                repairs += len(re.findall(r"^repair: ", out, re.M))
                rc, out = fsck(zvfs, image, mnt)
                if rc != 0 or re.search(r"^(warning|error):", out, re.M):
                    print("FAIL round %d: fsck after --repair: exit %d\n%s" % (rnd, rc, out))
                    failed += 1
        sync_args = [str(syncs.get(f, -1)) for f in range(4)]
        p = subprocess.run([crashw, "check", d, str(s), str(rnd), str(last)] + sync_args,
                           env=cenv, capture_output=True, text=True, timeout=120)
        status = "ok" if p.returncode == 0 else "FAIL"
        m = re.search(r"^dropped (\d+)$", p.stdout, re.M)
        dropped = int(m.group(1)) if m else 0
        total_dropped += dropped
        print("%s round %d: seed %d, killed after %d lines, last op %d, syncs %s, %d bytes of "
              "unsynced state dropped" % (status, rnd, s, kill_after, last, sync_args, dropped))
        if p.returncode != 0:
            check_failures += p.returncode == 1
            print(p.stdout + p.stderr)
            print("replay: crashw check %s %d %d %d %s" % (d, s, rnd, last, " ".join(sync_args)))
            failed += 1
        if not plain and check_fsck:
            rc, out = fsck(zvfs, image, mnt)
            if rc != 0:
                print("FAIL round %d: fsck after the check: exit %d\n%s" % (rnd, rc, out))
                failed += 1
        if failed:
            break
    if failed and os.path.exists(log):
        with open(log, errors="replace") as f:
            tail = f.readlines()[-30:]
        print("# last lines of the library's log:\n" + "".join("#   " + ln for ln in tail))
    if not failed and total_syncs == 0:
        print("FAIL: no round reached an fsync: the test tested nothing")
        return 1
    if not failed and not plain and total_dropped == 0:
        print("FAIL: no cut dropped any unsynced write: the fault device is not in effect")
        return 1
    print("%s: %d rounds, %d files synced at the cut, %d bytes of unsynced state dropped, "
          "%d fsck --repair actions (%d orphan blobs deleted)" %
          ("FAIL" if failed else "PASS", rnd + 1, total_syncs, total_dropped, repairs, orphans))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
