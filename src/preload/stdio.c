/* SPDX-License-Identifier: MIT */
/*
 * stdio.c - stdio streams on ZVFS files.
 *
 * glibc's stdio reads and writes through hidden aliases (__read, __write,
 * __open_nocancel) that no interposition sees, so a glibc FILE on a ZVFS fd
 * would read and write the placeholder.  A stream on a ZVFS file is therefore
 * a fopencookie(3) stream whose callbacks call this library's read, write,
 * lseek64 and close; its public _fileno field holds the real fd, so fileno()
 * works (glibc's cookie path never uses _fileno for I/O: it marks cookie
 * streams with -2 only so fileno() fails and the stream counts as open).
 *
 * The standard streams are libc's own FILEs on fds 0-2.  When one of those
 * fds becomes a ZVFS file (a shell's `>` redirection before exec, bash's
 * builtins writing with fd 1 dup2'ed onto a file, freopen), the global
 * stdin/stdout/stderr pointer is switched to a cookie "stand-in" on that fd;
 * when the fd stops being ZVFS the stand-in is dropped (its fd left open) and
 * the original pointer comes back.  Bytes buffered at a switch move with the
 * switch, since without ZVFS they would have gone to whatever the fd is at
 * flush time.
 *
 * Map:
 *   1. mode strings          parse_mode(), mode_without_x()
 *   2. cookie streams        struct zp_stream, the callbacks, the list
 *   3. standard streams      slots, std_attach_locked(), std_detach_locked(),
 *                            zp_stdio_fd_changed(), zp_stdio_flush_all()
 *   4. entry points          fopen, fdopen, freopen, tmpfile (+64 twins)
 *
 * Limits: a cookie stream is byte-oriented only (fopen ",ccs=" of a ZVFS
 * file fails with EINVAL and a log line); freopen of a stream that is not a
 * standard one, with a ZVFS file on either side, returns a new stream on the
 * same fd number (the old FILE is left disconnected: use freopen's result),
 * except that a ZVFS stream reopened with the same access mode onto a ZVFS
 * file keeps its FILE;
 * a program that caches the FILE* of a standard stream before its fd becomes
 * ZVFS keeps writing through libc's own stream.
 */

/*
 * The build sets _FILE_OFFSET_BITS=64, under which <stdio.h> renames fopen
 * to fopen64 (and so on); this file defines both names.
 */
#undef _FILE_OFFSET_BITS

#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <wchar.h>

#include "preload/preload.h"

/* core.c: the process is exiting (not in preload.h; declared as wrap_fd.c does). */
bool zp_core_exiting(void);

_Static_assert(sizeof(off_t) == 8, "off_t must be 64 bits (fopen and fopen64 are one function)");

/* glibc's flag for an unbuffered stream in FILE._flags (libio.h, unchanged since 1997). */
#define GLIBC_IO_UNBUFFERED 0x0002

/* ---- 1. mode strings ---------------------------------------------------------------- */

struct fmode {
	int flags;	/* open(2) flags */
	bool plus;	/* '+': read and write */
	bool ccs;	/* ",ccs=": a wide-oriented stream */
	char kind;	/* 'r', 'w' or 'a' */
	char cookie[3]; /* the mode for fopencookie: kind and '+' */
};

/* fopen's mode, parsed as glibc does: r/w/a, then up to six of "+xbmce", then ",ccs=". */
static int parse_mode(const char *mode, struct fmode *m)
{
	int last = 0;

	memset(m, 0, sizeof(*m));
	switch (mode[0]) {
	case 'r':
		m->flags = O_RDONLY;
		break;
	case 'w':
		m->flags = O_WRONLY | O_CREAT | O_TRUNC;
		break;
	case 'a':
		m->flags = O_WRONLY | O_CREAT | O_APPEND;
		break;
	default:
		return -EINVAL;
	}
	m->kind = mode[0];
	for (int i = 1; i < 7 && mode[i] != '\0'; i++) {
		switch (mode[i]) {
		case '+':
			m->flags = (m->flags & ~O_ACCMODE) | O_RDWR;
			m->plus = true;
			last = i;
			break;
		case 'x':
			m->flags |= O_EXCL;
			last = i;
			break;
		case 'b':
			last = i;
			break;
		case 'e':
			m->flags |= O_CLOEXEC;
			break;
		default: /* 'm', 'c' and anything else: no meaning here */
			break;
		}
	}
	m->ccs = strstr(mode + last + 1, ",ccs=") != NULL;
	m->cookie[0] = m->kind;
	m->cookie[1] = m->plus ? '+' : '\0';
	m->cookie[2] = '\0';
	return 0;
}

/*
 * mode without its 'x' (before any ","), for reopening through libc a file
 * this library has just created: O_EXCL would now fail.
 */
static void mode_without_x(const char *mode, char *out, size_t len)
{
	size_t j = 0;
	bool tail = false;

	for (size_t i = 0; mode[i] != '\0' && j + 1 < len; i++) {
		tail = tail || mode[i] == ',';
		if (mode[i] != 'x' || tail)
			out[j++] = mode[i];
	}
	out[j] = '\0';
}

static bool fd_is_zvfs(int fd)
{
	struct zp_ofd *ofd = zp_fd_get(fd);

	if (ofd == NULL)
		return false;
	zp_ofd_put(ofd);
	return true;
}

/* ---- 2. cookie streams ---------------------------------------------------------------- */

struct zp_stream {
	FILE *fp;
	int fd;
	int std;	     /* 0-2: the stand-in for that standard stream; -1 otherwise */
	atomic_bool owns_fd; /* the close callback closes fd (not when a stand-in is dropped) */
	char cookie[3];	     /* fopencookie mode: kind and '+' (freopen compares it) */
	struct zp_stream *next;
};

/* Every ZVFS stream, for zp_stdio_flush_all() and to recognize ours. */
static pthread_mutex_t streams_lock = PTHREAD_MUTEX_INITIALIZER;
static struct zp_stream *streams;

static void stream_link(struct zp_stream *s)
{
	pthread_mutex_lock(&streams_lock);
	s->next = streams;
	streams = s;
	pthread_mutex_unlock(&streams_lock);
}

static void stream_unlink(struct zp_stream *s)
{
	pthread_mutex_lock(&streams_lock);
	for (struct zp_stream **pp = &streams; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	pthread_mutex_unlock(&streams_lock);
}

static struct zp_stream *stream_find(FILE *fp)
{
	struct zp_stream *s;

	pthread_mutex_lock(&streams_lock);
	for (s = streams; s != NULL && s->fp != fp; s = s->next)
		;
	pthread_mutex_unlock(&streams_lock);
	return s;
}

static ssize_t ck_read(void *cookie, char *buf, size_t len)
{
	struct zp_stream *s = cookie;

	return read(s->fd, buf, len);
}

/* glibc takes a short count as an error, so write everything or fail. */
static ssize_t ck_write(void *cookie, const char *buf, size_t len)
{
	struct zp_stream *s = cookie;
	size_t done = 0;

	while (done < len) {
		ssize_t r = write(s->fd, buf + done, len - done);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return done > 0 ? (ssize_t)done : -1;
		}
		done += (size_t)r;
	}
	return (ssize_t)done;
}

static int ck_seek(void *cookie, off64_t *off, int whence)
{
	struct zp_stream *s = cookie;
	off64_t r = lseek64(s->fd, *off, whence);

	if (r < 0)
		return -1;
	*off = r;
	return 0;
}

static void std_forget(struct zp_stream *s);

/* fclose (or our own drop of a stand-in): glibc frees the FILE after this returns. */
static int ck_close(void *cookie)
{
	struct zp_stream *s = cookie;
	int r = 0;

	stream_unlink(s);
	if (s->std >= 0)
		std_forget(s);
	if (atomic_load(&s->owns_fd))
		r = close(s->fd);
	free(s);
	return r;
}

static const cookie_io_functions_t ck_funcs = {
	.read = ck_read,
	.write = ck_write,
	.seek = ck_seek,
	.close = ck_close,
};

static pthread_mutex_t std_lock = PTHREAD_MUTEX_INITIALIZER;

/* A child forked while another thread held a lock must not inherit it held. */
static void locks_after_fork(void)
{
	pthread_mutex_init(&streams_lock, NULL);
	pthread_mutex_init(&std_lock, NULL);
}

static void register_atfork(void)
{
	pthread_atfork(NULL, NULL, locks_after_fork);
}

/* A cookie stream on fd with fopencookie mode cmode; NULL with errno. */
static FILE *stream_new(int fd, const char *cmode, int std)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct zp_stream *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	pthread_once(&once, register_atfork);
	s->fd = fd;
	s->std = std;
	atomic_init(&s->owns_fd, true);
	snprintf(s->cookie, sizeof(s->cookie), "%s", cmode);
	s->fp = fopencookie(s, cmode, ck_funcs);
	if (s->fp == NULL) {
		free(s);
		return NULL;
	}
	s->fp->_fileno = fd;
	stream_link(s);
	return s->fp;
}

/* ---- 3. standard streams ---------------------------------------------------------------- */

struct std_slot {
	struct zp_stream *s; /* the stand-in, NULL when none */
	FILE *orig;	     /* the pointer the program had before */
};

/* Under std_lock. */
static struct std_slot slots[3];

static FILE **std_var(int no)
{
	switch (no) {
	case 0:
		return &stdin;
	case 1:
		return &stdout;
	default:
		return &stderr;
	}
}

/* Move the bytes waiting in from's buffer into to (no flush), and drop them from from. */
static void move_pending(FILE *from, FILE *to)
{
	size_t n;

	if (from == NULL || to == NULL || fwide(from, 0) > 0)
		return;
	flockfile(from);
	n = __fpending(from);
	if (n > 0) {
		fwrite(from->_IO_write_base, 1, n, to);
		__fpurge(from);
	}
	funlockfile(from);
}

/* The buffering of the stream being replaced carries over (a tty decided it, or setvbuf). */
static void copy_buffering(FILE *from, FILE *to)
{
	int mode = _IOFBF;

	if (from != NULL) {
		if (from->_flags & GLIBC_IO_UNBUFFERED)
			mode = _IONBF;
		else if (__flbf(from))
			mode = _IOLBF;
	}
	setvbuf(to, NULL, mode, 0);
}

/* The stand-in s is closing: forget it, giving the program back its FILE. */
static void std_forget(struct zp_stream *s)
{
	pthread_mutex_lock(&std_lock);
	if (slots[s->std].s == s) {
		FILE *orig = slots[s->std].orig;

		slots[s->std].s = NULL;
		slots[s->std].orig = NULL;
		if (*std_var(s->std) == s->fp)
			*std_var(s->std) = orig;
		/*
		 * The program closed this standard stream: libc's FILE must
		 * not go on writing to whatever file gets the fd next.
		 */
		if (orig != NULL && orig->_fileno == s->std) {
			__fpurge(orig);
			orig->_fileno = -1;
		}
	}
	pthread_mutex_unlock(&std_lock);
}

/*
 * Drop the stand-in of slot no (std_lock held on entry and return): the
 * program's FILE comes back with the stand-in's buffered output, and the
 * stand-in is closed without closing its fd.
 */
static void std_detach_locked(int no)
{
	struct zp_stream *s = slots[no].s;
	FILE *orig = slots[no].orig;

	if (s == NULL)
		return;
	slots[no].s = NULL;
	slots[no].orig = NULL;
	if (*std_var(no) == s->fp)
		*std_var(no) = orig;
	atomic_store(&s->owns_fd, false);
	/* fclose takes the stream's lock, which a closing thread may hold while it wants std_lock. */
	pthread_mutex_unlock(&std_lock);
	if (no != 0)
		move_pending(s->fp, orig);
	__fpurge(s->fp);
	fclose(s->fp);
	pthread_mutex_lock(&std_lock);
}

/* fd no is a ZVFS file: put a stand-in (mode cmode, NULL for the default) in front of it. */
static void std_attach_locked(int no, const char *cmode)
{
	char def[3] = "w";
	FILE *cur, *fp;

	if (slots[no].s != NULL) {
		if (cmode == NULL)
			return; /* still ZVFS (maybe another file): the stand-in follows the fd */
		std_detach_locked(no);
		if (slots[no].s != NULL)
			return;
	}
	if (cmode == NULL) {
		/*
		 * As libc's own: stdin read-only, stdout and stderr write-only
		 * and not in append mode even on an O_APPEND fd (the fd
		 * appends; ftell then counts from the fd's offset, as libc's).
		 */
		if (!fd_is_zvfs(no))
			return;
		if (no == 0)
			def[0] = 'r';
		cmode = def;
	}
	cur = *std_var(no);
	fp = stream_new(no, cmode, no);
	if (fp == NULL) {
		ZVFS_ERR("fd %d is a ZVFS file but its stdio stream cannot be made: %s", no,
			 strerror(errno));
		return;
	}
	copy_buffering(cur, fp);
	if (no != 0)
		move_pending(cur, fp);
	slots[no].orig = cur;
	slots[no].s = stream_find(fp);
	*std_var(no) = fp;
}

void zp_stdio_fd_changed(int fd)
{
	int saved_internal = zp_internal;
	int e = errno;

	if (fd < 0 || fd > 2 || !zp_cfg.enabled)
		return;
	/* Bytes moved into a stand-in may be written now: through the wrappers. */
	zp_internal = 0;
	pthread_mutex_lock(&std_lock);
	if (fd_is_zvfs(fd))
		std_attach_locked(fd, NULL);
	else
		std_detach_locked(fd);
	pthread_mutex_unlock(&std_lock);
	zp_internal = saved_internal;
	errno = e;
}

void zp_stdio_flush_all(void)
{
	int saved_internal = zp_internal;
	bool exiting = zp_core_exiting();
	int e = errno;

	/* Flushing is the program's I/O: it must reach the wrappers, not libc. */
	zp_internal = 0;
	pthread_mutex_lock(&streams_lock);
	for (struct zp_stream *s = streams; s != NULL; s = s->next) {
		/*
		 * A stream locked by another thread may be inside fclose,
		 * waiting for streams_lock: skip it rather than deadlock.
		 * Input-only buffers are left alone, as fflush(NULL) does.
		 */
		if (ftrylockfile(s->fp) != 0)
			continue;
		/*
		 * At exit libc also gives back unread input (the fd's offset
		 * moves back to the stream's position), but by then the
		 * engine is gone: do it now, before offsets go to the kernel.
		 */
		if (__fpending(s->fp) > 0 || (exiting && s->fp->_IO_read_ptr < s->fp->_IO_read_end))
			fflush_unlocked(s->fp);
		funlockfile(s->fp);
	}
	pthread_mutex_unlock(&streams_lock);
	zp_internal = saved_internal;
	errno = e;
}

/* The standard stream (0-2) fp is, or -1: the current pointer, a stand-in or the original. */
static int std_index(FILE *fp)
{
	int no = -1;

	pthread_mutex_lock(&std_lock);
	for (int i = 0; i < 3 && no < 0; i++) {
		if (slots[i].s != NULL && (fp == slots[i].s->fp || fp == slots[i].orig))
			no = i;
		else if (fp != NULL && fp == *std_var(i) && fp->_fileno == i)
			no = i;
	}
	pthread_mutex_unlock(&std_lock);
	return no;
}

/* ---- 4. entry points ---------------------------------------------------------------------- */

/* A glibc stream on fd, a non-ZVFS file just opened with mode by fopen. */
static FILE *plain_stream(int fd, const char *path, const char *mode, const struct fmode *m)
{
	char nox[64];
	FILE *fp;
	int e;

	if (m->ccs && strlen(mode) < sizeof(nox)) {
		/* Only fopen sets up a conversion: reopen through it (O_EXCL done already). */
		close(fd);
		mode_without_x(mode, nox, sizeof(nox));
		return ZP_REAL(fopen)(path, nox);
	}
	/* fopen "a" starts at the end (ftell says so); fdopen would not move. */
	if (m->kind == 'a' && !m->plus)
		lseek64(fd, 0, SEEK_END);
	fp = ZP_REAL(fdopen)(fd, mode);
	if (fp == NULL) {
		e = errno;
		close(fd);
		errno = e;
	}
	return fp;
}

/* A ZVFS stream on fd (a ZVFS fd the caller owns, closed on failure). */
static FILE *zvfs_stream(int fd, const struct fmode *m, const char *what)
{
	FILE *fp;
	int e;

	if (m->ccs) {
		char path[PATH_MAX];

		if (zp_fd_path(fd, path, sizeof(path)) < 0)
			snprintf(path, sizeof(path), "fd %d", fd);
		ZVFS_WARN("%s: %s: wide-character streams (\",ccs=\") on ZVFS files are not "
			  "supported",
			  what, path);
		close(fd);
		errno = EINVAL;
		return NULL;
	}
	fp = stream_new(fd, m->cookie, -1);
	if (fp == NULL) {
		e = errno;
		close(fd);
		errno = e;
		return NULL;
	}
	if (m->kind == 'a' && !m->plus)
		lseek64(fd, 0, SEEK_END);
	return fp;
}

static FILE *do_fopen(const char *path, const char *mode)
{
	struct fmode m;
	int fd;

	if (parse_mode(mode, &m) < 0) {
		errno = EINVAL;
		return NULL;
	}
	/*
	 * Open through the library's open(), which decides what is a ZVFS
	 * file; for anything else, fdopen that same fd: opening twice would
	 * be seen by FIFOs, O_EXCL and O_TRUNC.
	 */
	fd = open(path, m.flags, 0666);
	if (fd < 0)
		return NULL;
	if (!fd_is_zvfs(fd))
		return plain_stream(fd, path, mode, &m);
	return zvfs_stream(fd, &m, "fopen");
}

ZP_EXPORT FILE *fopen(const char *path, const char *mode)
{
	if (zp_bypass())
		return ZP_REAL(fopen)(path, mode);
	return do_fopen(path, mode);
}

ZP_EXPORT FILE *fopen64(const char *path, const char *mode)
{
	if (zp_bypass())
		return ZP_REAL(fopen64)(path, mode);
	return do_fopen(path, mode);
}

ZP_EXPORT FILE *fdopen(int fd, const char *mode)
{
	struct zp_ofd *ofd;
	struct fmode m;
	int fl, acc;

	if (zp_bypass() || (ofd = zp_fd_get(fd)) == NULL)
		return ZP_REAL(fdopen)(fd, mode);
	fl = atomic_load(&ofd->flags);
	zp_ofd_put(ofd);
	/* fdopen reads only the kind and '+' of the mode, and checks them against the fd. */
	if (parse_mode(mode, &m) < 0) {
		errno = EINVAL;
		return NULL;
	}
	acc = fl & O_ACCMODE;
	if ((acc == O_RDONLY && (m.kind != 'r' || m.plus)) ||
	    (acc == O_WRONLY && (m.kind == 'r' || m.plus))) {
		errno = EINVAL;
		return NULL;
	}
	if (m.kind == 'a' && !(fl & O_APPEND)) {
		int kfl = fcntl(fd, F_GETFL);

		if (kfl < 0 || fcntl(fd, F_SETFL, kfl | O_APPEND) < 0)
			return NULL;
		if (!m.plus)
			lseek64(fd, 0, SEEK_END);
	}
	return stream_new(fd, m.cookie, -1);
}

/* Is path a ZVFS file, or would open with flags create one?  1, 0, or -errno. */
static int path_is_zvfs_candidate(const char *path, int flags)
{
	struct stat st;

	if (stat(path, &st) == 0) {
		if (!S_ISREG(st.st_mode))
			return 0;
		return getxattr(path, ZVFS_FS_XATTR, NULL, 0) >= 0 ? 1 : 0;
	}
	if (errno != ENOENT)
		return -errno;
	if (!(flags & O_CREAT))
		return 0;
	return zp_path_new_is_zvfs(AT_FDCWD, path) > 0 ? 1 : 0;
}

static FILE *refuse_freopen(const char *path, const char *why)
{
	ZVFS_WARN("freopen: %s: %s (EOPNOTSUPP)", path, why);
	errno = EOPNOTSUPP;
	return NULL;
}

/* freopen of standard stream no onto the ZVFS file open at nfd. */
static FILE *freopen_std_zvfs(int no, int nfd, const struct fmode *m)
{
	FILE *fp;
	int e;

	if (nfd != no) {
		/* dup3 keeps "e" (O_CLOEXEC) on the fd that stays, as libc's freopen does. */
		if (dup3(nfd, no, m->flags & O_CLOEXEC) < 0) {
			e = errno;
			close(nfd);
			errno = e;
			return NULL;
		}
		close(nfd);
	}
	pthread_mutex_lock(&std_lock);
	std_attach_locked(no, m->cookie);
	fp = slots[no].s != NULL ? slots[no].s->fp : NULL;
	pthread_mutex_unlock(&std_lock);
	if (fp == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	if (m->kind == 'a' && !m->plus)
		lseek64(no, 0, SEEK_END);
	return fp;
}

/* Point the ZVFS stream s at the ZVFS file open at nfd (same access mode). */
static FILE *freopen_repoint(struct zp_stream *s, int nfd, const struct fmode *m)
{
	FILE *fp = s->fp;
	int e;

	if (dup3(nfd, s->fd, m->flags & O_CLOEXEC) < 0) {
		e = errno;
		close(nfd);
		errno = e;
		return NULL;
	}
	close(nfd);
	__fpurge(fp);
	clearerr(fp);
	return fp;
}

/*
 * freopen of a stream that is not a standard one, when a ZVFS file is on
 * either side: glibc cannot reopen a FILE onto a ZVFS file (its I/O would
 * bypass the library), nor a cookie stream at all (it has no wide data), so
 * a new stream on the same fd number is returned instead, as the result of
 * freopen.  The old FILE stays allocated but disconnected: its I/O fails with
 * EBADF instead of reaching any file, and fclose on it releases it.
 */
static FILE *freopen_replace(FILE *fp, struct zp_stream *s, int nfd, const char *mode,
			     const struct fmode *m)
{
	int oldfd = s != NULL ? s->fd : fp->_fileno;
	FILE *nfp;
	int e;

	if (oldfd >= 0 && oldfd != nfd) {
		if (dup3(nfd, oldfd, m->flags & O_CLOEXEC) < 0) {
			e = errno;
			close(nfd);
			errno = e;
			return NULL;
		}
		close(nfd);
		nfd = oldfd;
	}
	__fpurge(fp);
	clearerr(fp);
	if (s != NULL) {
		/* -2: glibc's mark of a cookie stream, which fclose still closes (and frees s). */
		s->fd = -1;
		atomic_store(&s->owns_fd, false);
		fp->_fileno = -2;
	} else {
		fp->_fileno = -1;
	}
	nfp = fd_is_zvfs(nfd) ? stream_new(nfd, m->cookie, -1) : ZP_REAL(fdopen)(nfd, mode);
	if (nfp == NULL) {
		e = errno;
		close(nfd);
		errno = e;
		return NULL;
	}
	if (m->kind == 'a' && !m->plus)
		lseek64(nfd, 0, SEEK_END);
	ZVFS_INFO("freopen: %s: a new stream replaces the one passed",
		  fd_is_zvfs(nfd) ? "ZVFS file" : "from a ZVFS stream");
	return nfp;
}

static FILE *do_freopen(const char *path, const char *mode, FILE *fp, bool lfs)
{
	FILE *(*real)(const char *, const char *, FILE *) =
		lfs ? ZP_REAL(freopen64) : ZP_REAL(freopen);
	char pbuf[PATH_MAX], nox[64];
	struct zp_stream *s = stream_find(fp);
	int no = std_index(fp);
	bool zvfs_now = s != NULL || (no >= 0 && fd_is_zvfs(no));
	struct fmode m;
	int cand, nfd;

	if (parse_mode(mode, &m) < 0) {
		if (!zvfs_now)
			return real(path, mode, fp);
		errno = EINVAL;
		return NULL;
	}
	if (path == NULL) {
		if (!zvfs_now)
			return real(path, mode, fp);
		/* libc would reopen /proc/self/fd/N, which names the placeholder. */
		if (zp_fd_path(s != NULL ? s->fd : no, pbuf, sizeof(pbuf)) < 0)
			return refuse_freopen("(null)", "the ZVFS file has no name to reopen");
		path = pbuf;
	}
	cand = path_is_zvfs_candidate(path, m.flags);
	if (cand < 0) {
		/* libc reports the error exactly (a bad path pointer included). */
		if (!zvfs_now)
			return real(path, mode, fp);
		errno = -cand;
		return NULL;
	}
	if (cand == 0 && !zvfs_now)
		return real(path, mode, fp);
	if (no < 0 && m.ccs)
		return refuse_freopen(path, "wide-character streams (\",ccs=\") on ZVFS files are "
					    "not supported");

	/* Flush first, as libc does, whatever happens next. */
	fflush(no >= 0 ? *std_var(no) : fp);
	if (cand > 0 || no < 0) {
		nfd = open(path, m.flags, 0666);
		if (nfd < 0)
			return NULL;
		if (no >= 0 && fd_is_zvfs(nfd))
			return freopen_std_zvfs(no, nfd, &m);
		if (no < 0 && s != NULL && fd_is_zvfs(nfd) && strcmp(s->cookie, m.cookie) == 0)
			return freopen_repoint(s, nfd, &m);
		if (no < 0 && (zvfs_now || fd_is_zvfs(nfd)))
			return freopen_replace(fp, s, nfd, mode, &m);
		/* Not ZVFS after all (a passthrough name): libc opens it again, without O_EXCL. */
		close(nfd);
		if (strlen(mode) >= sizeof(nox)) {
			errno = EINVAL;
			return NULL;
		}
		mode_without_x(mode, nox, sizeof(nox));
		mode = nox;
		if (!zvfs_now)
			return real(path, mode, fp);
	}
	/*
	 * A standard stream on a ZVFS fd, onto a non-ZVFS file: closing the
	 * fd drops the stand-in; libc then reopens its own stream on that fd.
	 */
	close(no);
	pthread_mutex_lock(&std_lock);
	fp = *std_var(no);
	pthread_mutex_unlock(&std_lock);
	return real(path, mode, fp);
}

ZP_EXPORT FILE *freopen(const char *path, const char *mode, FILE *fp)
{
	if (zp_bypass())
		return ZP_REAL(freopen)(path, mode, fp);
	return do_freopen(path, mode, fp, false);
}

ZP_EXPORT FILE *freopen64(const char *path, const char *mode, FILE *fp)
{
	if (zp_bypass())
		return ZP_REAL(freopen64)(path, mode, fp);
	return do_freopen(path, mode, fp, true);
}

/*
 * glibc's tmpfile always creates in P_tmpdir (it ignores TMPDIR); only when
 * that is under a mount is the file a ZVFS one.
 */
static FILE *do_tmpfile(void)
{
	char tmpl[] = P_tmpdir "/tmpfXXXXXX";
	struct fmode m;
	int fd;

	fd = mkostemp(tmpl, 0);
	if (fd < 0)
		return NULL;
	unlink(tmpl);
	if (!fd_is_zvfs(fd)) {
		FILE *fp = ZP_REAL(fdopen)(fd, "w+");

		if (fp == NULL) {
			int e = errno;

			close(fd);
			errno = e;
		}
		return fp;
	}
	parse_mode("w+", &m);
	return zvfs_stream(fd, &m, "tmpfile");
}

static bool tmpdir_is_zvfs(void)
{
	return zp_path_new_is_zvfs(AT_FDCWD, P_tmpdir "/tmpf") > 0;
}

ZP_EXPORT FILE *tmpfile(void)
{
	if (zp_bypass() || !tmpdir_is_zvfs())
		return ZP_REAL(tmpfile)();
	return do_tmpfile();
}

ZP_EXPORT FILE *tmpfile64(void)
{
	if (zp_bypass() || !tmpdir_is_zvfs())
		return ZP_REAL(tmpfile64)();
	return do_tmpfile();
}
