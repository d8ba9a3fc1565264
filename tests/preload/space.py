"""Space accounting through libzvfs.so on a small store (test_space.sh).

usage: space.py DIR SIZE_MB   DIR under the mount, the store SIZE_MB big

POSIX.md: unlink frees the space when the last fd closes (not before: the
data stays readable through it), rename over an existing file frees the
replaced file's space, a full store gives ENOSPC with nothing already
written lost.  One process throughout (direct mode).  Prints "ok NAME" /
"FAIL NAME: why"; exit 0 when all passed.
"""
import errno
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


def chunk(i, seed):
    # 1 MiB, never zero, different per (i, seed).
    b = bytes(((j * 131 + i * 7 + seed * 13) % 251) + 1 for j in range(251))
    return (b * (1048576 // 251 + 1))[:1048576]


def fill(path, mb, seed):
    """Write mb MiB and fsync; return (MiB written and synced, errno or 0)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    done = 0
    err = 0
    try:
        for i in range(mb):
            os.write(fd, chunk(i, seed))
            done += 1
        os.fsync(fd)
    except OSError as e:
        err = e.errno
    finally:
        try:
            os.close(fd)
        except OSError as e:
            err = err or e.errno
    return done, err


def content_ok(path, mb, seed):
    with open(path, "rb") as f:
        for i in range(mb):
            if f.read(1048576) != chunk(i, seed):
                return False
    return True


def main(d, size_mb):
    big = size_mb * 6 // 10  # two of these never fit at once

    n, err = fill(os.path.join(d, "a"), big, 1)
    check("write %d MiB into a %d MiB store" % (big, size_mb), n == big and err == 0,
          "wrote %d, errno %d" % (n, err))
    os.unlink(os.path.join(d, "a"))
    n, err = fill(os.path.join(d, "b"), big, 2)
    check("unlink freed the space", n == big and err == 0, "wrote %d, errno %d" % (n, err))

    with open(os.path.join(d, "small"), "wb") as f:
        f.write(b"small")
    os.replace(os.path.join(d, "small"), os.path.join(d, "b"))
    n, err = fill(os.path.join(d, "c"), big, 3)
    check("rename over freed the replaced file's space", n == big and err == 0,
          "wrote %d, errno %d" % (n, err))

    # An unlinked file still open keeps its space and its data.
    fd = os.open(os.path.join(d, "c"), os.O_RDONLY)
    os.unlink(os.path.join(d, "c"))
    n, err = fill(os.path.join(d, "e"), big, 4)
    check("an open unlinked file keeps its space (ENOSPC)", err == errno.ENOSPC,
          "wrote %d MiB, errno %d" % (n, err))
    ok = all(os.pread(fd, 1048576, i * 1048576) == chunk(i, 3) for i in range(big))
    check("an open unlinked file keeps its data", ok, "data changed")
    os.close(fd)
    n, err = fill(os.path.join(d, "e"), big, 4)
    check("closing the last fd freed the space", n == big and err == 0,
          "wrote %d, errno %d" % (n, err))

    # Fill up: ENOSPC, and what was written before is intact.
    n, err = fill(os.path.join(d, "f"), size_mb, 5)
    check("a full store gives ENOSPC", err == errno.ENOSPC, "wrote %d MiB, errno %d" % (n, err))
    st = os.stat(os.path.join(d, "f"))
    keep = max(0, min(n, st.st_size // 1048576) - 1)
    check("after ENOSPC: the data written before reads back", content_ok(
        os.path.join(d, "f"), keep, 5), "first %d MiB differ" % keep)
    check("after ENOSPC: other files intact", content_ok(os.path.join(d, "e"), big, 4),
          "e changed")
    with open(os.path.join(d, "b"), "rb") as f:
        check("after ENOSPC: small file intact", f.read() == b"small", "b changed")
    # Space comes back after deleting the full file.
    os.unlink(os.path.join(d, "f"))
    n, err = fill(os.path.join(d, "g"), 8, 6)
    check("space back after deleting the full file", n == 8 and err == 0,
          "wrote %d, errno %d" % (n, err))
    check("g content", content_ok(os.path.join(d, "g"), 8, 6), "wrong")

    # fallocate of more than the store can hold fails now, not at the writes.
    fd = os.open(os.path.join(d, "h"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.posix_fallocate(fd, 0, 2 * size_mb * 1048576)
        err = 0
    except OSError as e:
        err = e.errno
    check("posix_fallocate beyond the store: ENOSPC", err == errno.ENOSPC, "errno %d" % err)
    os.posix_fallocate(fd, 0, 1048576)
    check("posix_fallocate that fits", os.fstat(fd).st_size == 1048576, "size wrong")
    os.close(fd)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
    sys.exit(1 if failed else 0)
