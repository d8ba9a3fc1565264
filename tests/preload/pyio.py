"""Python file I/O on a directory, run under libzvfs.so by test_python.sh.

usage: pyio.py write DIR   exercise open modes, seek/tell/truncate, os.pread/
                           os.pwrite, fsync, readinto, a large file; leave
                           files behind with their expected digests in
                           DIR/expect.txt
       pyio.py verify DIR  a second process: every file in expect.txt has
                           the recorded size and digest
       pyio.py crash DIR   write and fsync DIR/durable.dat, then die by SIGKILL
                           holding the store (exit status 137 expected)
       pyio.py durable DIR a new process: durable.dat survived the kill
       pyio.py fds DIR     dup2 a file outside DIR onto every other fd the
                           process has (the library's device, rings, log,
                           daemon socket), then close them all, writing and
                           fsyncing DIR/fds.dat in between: the data is all
                           there and the outside file stays empty
Prints "ok NAME" / "FAIL NAME: why"; exit 0 when all passed, 1 otherwise.
"""
import hashlib
import io
import os
import sys

failed = 0


def check(name, cond, why=""):
    global failed
    if cond:
        print("ok", name)
    else:
        failed += 1
        print("FAIL %s: %s" % (name, why))


def eq(name, want, got):
    check(name, want == got, "want %r, got %r" % (want, got)[:300])


def pattern(n, seed):
    # Never zero, so data that bypassed ZVFS (the placeholder reads zeros)
    # cannot match by accident.
    return bytes(((i * 131 + seed * 7) % 251) + 1 for i in range(n))


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def write_phase(d):
    expect = {}

    # Text modes: w, r, a, r+, w+, x, newline handling.
    p = os.path.join(d, "text.txt")
    with open(p, "w") as f:
        f.write("alpha\nbeta\n")
        eq("w: tell after write", 11, f.tell())
    with open(p, "a") as f:
        f.write("gamma\n")
    with open(p) as f:
        eq("r: readlines", ["alpha\n", "beta\n", "gamma\n"], f.readlines())
    with open(p, "r+") as f:
        f.seek(6)
        f.write("BETA")
        f.seek(0)
        eq("r+: overwrite in place", "alpha\nBETA\ngamma\n", f.read())
    with open(p, "w+") as f:
        f.write("one\ntwo\n")
        f.seek(0)
        eq("w+: truncates and reads back", "one\ntwo\n", f.read())
    try:
        with open(p, "x") as f:
            pass
        check("x: refuses an existing file", False, "no FileExistsError")
    except FileExistsError:
        check("x: refuses an existing file", True)
    px = os.path.join(d, "excl.txt")
    with open(px, "x") as f:
        f.write("exclusive")
    with open(px, newline="") as f:
        eq("x: creates", "exclusive", f.read())
    with open(os.path.join(d, "crlf.txt"), "w", newline="\r\n") as f:
        f.write("a\nb\n")
    with open(os.path.join(d, "crlf.txt"), "rb") as f:
        eq("newline translation", b"a\r\nb\r\n", f.read())
    expect["text.txt"] = hashlib.sha256(b"one\ntwo\n").hexdigest()

    # Binary modes, seek/tell/truncate.
    pb = os.path.join(d, "bin.dat")
    data = pattern(100000, 1)
    with open(pb, "wb") as f:
        eq("wb: write returns the count", 100000, f.write(data))
    with open(pb, "rb") as f:
        eq("rb: read all", data, f.read())
        f.seek(12345)
        eq("rb: seek/tell", 12345, f.tell())
        eq("rb: read after seek", data[12345:12345 + 777], f.read(777))
        f.seek(-10, io.SEEK_END)
        eq("rb: seek from end", data[-10:], f.read())
        eq("rb: read at EOF", b"", f.read(10))
    with open(pb, "r+b") as f:
        f.seek(50000)
        f.write(b"\x00" * 10 + b"XYZ")
        f.truncate(60000)
        eq("r+b: truncate shrinks", 60000, os.fstat(f.fileno()).st_size)
        f.truncate(70000)
        f.seek(0)
        got = f.read()
    want = data[:50000] + b"\x00" * 10 + b"XYZ" + data[50013:60000] + b"\x00" * 10000
    eq("r+b: content after writes and truncates", want, got)
    with open(pb, "ab") as f:
        f.write(b"tail")
        eq("ab: tell at end", 70004, f.tell())
    want += b"tail"
    expect["bin.dat"] = hashlib.sha256(want).hexdigest()
    eq("os.stat size", 70004, os.stat(pb).st_size)
    eq("os.path.getsize", 70004, os.path.getsize(pb))

    # readinto, unbuffered.
    with open(pb, "rb", buffering=0) as f:
        buf = bytearray(4096)
        n = f.readinto(buf)
        eq("readinto unbuffered", (4096, want[:4096]), (n, bytes(buf)))
        mv = memoryview(buf)[100:200]
        f.seek(69950)
        eq("readinto short at EOF", 54, f.readinto(mv))
        eq("readinto short data", want[69950:], bytes(mv[:54]))

    # os-level calls: pread/pwrite, lseek, ftruncate, fsync, fdatasync.
    po = os.path.join(d, "os.dat")
    fd = os.open(po, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    eq("os.pwrite", 5000, os.pwrite(fd, pattern(5000, 2), 3000))
    eq("os.pread past a hole", b"\x00" * 3000 + pattern(100, 2), os.pread(fd, 3100, 0))
    eq("os.pread short at EOF", pattern(5000, 2)[-10:], os.pread(fd, 100, 7990))
    eq("os.lseek SEEK_END", 8000, os.lseek(fd, 0, os.SEEK_END))
    os.write(fd, b"end")
    os.fsync(fd)
    os.fdatasync(fd)
    eq("os.fstat after fsync", 8003, os.fstat(fd).st_size)
    os.ftruncate(fd, 8001)
    eq("os.ftruncate", 8001, os.fstat(fd).st_size)
    os.lseek(fd, 2, os.SEEK_SET)
    eq("os.read", b"\x00" * 5, os.read(fd, 5))
    os.close(fd)
    want_os = b"\x00" * 3000 + pattern(5000, 2) + b"e"
    expect["os.dat"] = hashlib.sha256(want_os).hexdigest()
    with open(po, "rb") as f:
        eq("os.* content", want_os, f.read())

    # Two independent opens have private offsets; a dup'ed fd shares one.
    pd = os.path.join(d, "offsets.dat")
    with open(pd, "wb") as f:
        f.write(b"0123456789")
    a = os.open(pd, os.O_RDONLY)
    b = os.open(pd, os.O_RDONLY)
    c = os.dup(a)
    os.read(a, 4)
    eq("separate opens: private offset", b"0123", os.read(b, 4))
    eq("dup: shared offset", b"4567", os.read(c, 4))
    for x in (a, b, c):
        os.close(x)
    expect["offsets.dat"] = hashlib.sha256(b"0123456789").hexdigest()

    # A large file, written in odd-sized chunks and read back in others.
    pl = os.path.join(d, "large.dat")
    h = hashlib.sha256()
    size = 0
    with open(pl, "wb") as f:
        for i in range(300):
            chunk = os.urandom(100000 + i * 777)
            f.write(chunk)
            h.update(chunk)
            size += len(chunk)
        f.flush()
        os.fsync(f.fileno())
    expect["large.dat"] = h.hexdigest()
    eq("large file: size", size, os.path.getsize(pl))
    eq("large file: digest", h.hexdigest(), digest(pl))
    with open(pl, "rb") as f:
        f.seek(size // 3)
        part = f.read(1 << 20)
    with open(pl, "rb", buffering=0) as f:
        eq("large file: pread equals buffered read", part,
           os.pread(f.fileno(), 1 << 20, size // 3))

    # rename over, remove.
    pr = os.path.join(d, "renamed.dat")
    with open(pr, "wb") as f:
        f.write(b"old")
    os.replace(pb, pr)
    expect["renamed.dat"] = expect.pop("bin.dat")
    eq("os.replace over", 70004, os.path.getsize(pr))
    os.remove(px)
    check("os.remove", not os.path.exists(px))

    with open(os.path.join(d, "expect.txt"), "w") as f:
        for k, v in sorted(expect.items()):
            f.write("%s %s\n" % (k, v))


def verify_phase(d):
    with open(os.path.join(d, "expect.txt")) as f:
        lines = f.read().split("\n")
    n = 0
    for line in lines:
        if not line:
            continue
        name, want = line.split()
        eq("second process: " + name, want, digest(os.path.join(d, name)))
        n += 1
    check("second process: files listed", n >= 5, "only %d" % n)


def crash_phase(d):
    with open(os.path.join(d, "durable.dat"), "wb") as f:
        for i in range(30):
            f.write(pattern(100003, i))
        f.flush()
        os.fsync(f.fileno())
        # Unsynced writes after the fsync: may be lost, must not hurt the rest.
        f.write(b"unsynced" * 1000)
        f.flush()
        os.kill(os.getpid(), 9)


def durable_phase(d):
    want = b"".join(pattern(100003, i) for i in range(30))
    with open(os.path.join(d, "durable.dat"), "rb") as f:
        got = f.read(len(want))
    eq("fsync'ed data survived SIGKILL", hashlib.sha256(want).hexdigest(),
       hashlib.sha256(got).hexdigest())
    check("size after SIGKILL", os.path.getsize(os.path.join(d, "durable.dat")) >= len(want),
          "short")


def other_fds(keep):
    fds = []
    for n in os.listdir("/proc/self/fd"):
        fd = int(n)
        if fd > 2 and fd not in keep:
            fds.append(fd)
    return fds


def fds_phase(d):
    import tempfile
    out = tempfile.mkdtemp()
    victim = os.open(os.path.join(out, "victim"), os.O_RDWR | os.O_CREAT, 0o644)
    path = os.path.join(d, "fds.dat")
    f = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    chunk = [pattern(65536, i) for i in range(3)]
    os.write(f, chunk[0])
    os.fsync(f)
    # A shell's "exec 4<>FILE" or a program's dup2 onto a number the library uses.
    for fd in other_fds((f, victim)):
        try:
            os.dup2(victim, fd)
        except OSError:
            pass  # gone meanwhile (listdir's own fd)
    os.write(f, chunk[1])
    os.fsync(f)
    # Daemons close every descriptor they did not open.
    for fd in other_fds((f, victim)):
        try:
            os.close(fd)
        except OSError:
            pass
    os.write(f, chunk[2])
    os.fsync(f)
    os.close(f)
    with open(path, "rb") as g:
        got = g.read()
    eq("fds: data written around dup2 and close of the library's fds",
       hashlib.sha256(b"".join(chunk)).hexdigest(), hashlib.sha256(got).hexdigest())
    eq("fds: the file put on the library's fds got nothing", 0, os.fstat(victim).st_size)
    os.close(victim)
    os.unlink(os.path.join(out, "victim"))
    os.rmdir(out)


if __name__ == "__main__":
    phases = {"write": write_phase, "verify": verify_phase, "crash": crash_phase,
              "durable": durable_phase, "fds": fds_phase}
    if len(sys.argv) != 3 or sys.argv[1] not in phases:
        print(__doc__)
        sys.exit(1)
    phases[sys.argv[1]](sys.argv[2])
    sys.exit(1 if failed else 0)
