/* SPDX-License-Identifier: MIT */
/*
 * client.c - one client of zvfsd: its control messages and its handles.
 *
 *   1. lifecycle      accept (SO_PEERCRED), drop (workers, handles, socket)
 *   2. handle table   handle -> file + rights; references held by running requests
 *   3. receiving      recvmsg + SCM_RIGHTS, surplus fds closed, zvfsd_ctl_decode()
 *   4. messages       HELLO, RING_ADD, OPEN, REMOVE, STATS, SHUTDOWN
 *   5. STATS text
 *
 * Everything here runs on the main thread except section 2, which the ring
 * workers call too (under the client's lock).  The daemon never trusts what
 * a client says about a file: OPEN and REMOVE read the identity (fstat), the
 * ZVFS xattr and the access mode from the descriptor the client passed, so
 * a client reaches only files it could open itself, with that open's rights.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "daemon/zvfsd.h"
#include "util/log.h"
#include "util/clock.h"

#define MAX_FDS_PER_MSG 8     /* room for more fds than any type takes: they are closed */
#define MAX_RINGS	1024  /* per client: each is a thread */
#define MAX_RINGS_ALL	16384 /* in the daemon */
#define MAX_HANDLES	(1u << 20)
/* Entries of a client's size table (8 bytes each; pages are only allocated when touched). */
#define SIZE_SLOTS (1u << 16)

/* ---- 1. lifecycle ------------------------------------------------------------------- */

struct zvfsd_client *zvfsd_client_new(int fd)
{
	struct zvfsd_client *c = calloc(1, sizeof(*c));
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (!c)
		return NULL;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		ZVFS_WARN("client: SO_PEERCRED: %s; refused", strerror(errno));
		free(c);
		return NULL;
	}
	c->fd = fd;
	c->id = ++zd.next_client_id;
	c->pid = cred.pid;
	c->uid = cred.uid;
	c->gid = cred.gid;
	strcpy(c->comm, "?");
	pthread_mutex_init(&c->lock, NULL);
	c->next = zd.clients;
	zd.clients = c;
	zd.nclients++;
	zd.ctl.accepted++;
	ZVFS_DEBUG("client %u: pid %d uid %u gid %u connected", c->id, (int)c->pid,
		   (unsigned)c->uid, (unsigned)c->gid);
	return c;
}

/* Stop the workers, close the handles, free c: off the main thread (see zvfsd.h). */
static void client_teardown(struct zvfsd_client *c)
{
	uint32_t closed = 0, nrings = c->nrings;

	/* Workers first: after this nothing else uses the handle table. */
	zvfsd_rings_stop(c);
	for (uint32_t i = 0; i < c->nh; i++) {
		if (c->h[i].file) {
			if (i < c->nsizes)
				zvfs_file_mirror_remove(c->h[i].file, &c->sizes[i]);
			zvfs_file_close(c->h[i].file);
			closed++;
		}
	}
	if (c->sizes)
		munmap((void *)c->sizes, (size_t)c->nsizes * sizeof(*c->sizes));
	if (closed != c->live)
		ZVFS_ERR("client %u: %u files closed but %u handles were live", c->id, closed,
			 c->live);
	ZVFS_DEBUG("client %u (pid %d %s): %u handles and %u rings closed", c->id, (int)c->pid,
		   c->comm, closed, nrings);
	pthread_mutex_destroy(&c->lock);
	free(c->h);
	free(c->free_idx);
	free(c);
}

static void *reaper_main(void *arg)
{
	client_teardown(arg);
	pthread_mutex_lock(&zd.reap_lock);
	zd.reaping--;
	pthread_cond_broadcast(&zd.reap_cond);
	pthread_mutex_unlock(&zd.reap_lock);
	return NULL;
}

void zvfsd_client_drop(struct zvfsd_client *c, const char *why)
{
	struct zvfsd_client **pp;
	pthread_attr_t attr;
	pthread_t t;
	bool async = false;

	ZVFS_DEBUG("client %u (pid %d %s): %s", c->id, (int)c->pid, c->comm, why);
	for (pp = &zd.clients; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	zd.nclients--;
	zd.ctl.dropped++;
	close(c->fd); /* also removes it from the epoll set */
	if (c->nrings && !zd.stopping && pthread_attr_init(&attr) == 0) {
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_mutex_lock(&zd.reap_lock);
		zd.reaping++;
		pthread_mutex_unlock(&zd.reap_lock);
		async = pthread_create(&t, &attr, reaper_main, c) == 0;
		pthread_attr_destroy(&attr);
		if (!async) {
			pthread_mutex_lock(&zd.reap_lock);
			zd.reaping--;
			pthread_mutex_unlock(&zd.reap_lock);
		}
	}
	/* No worker (nothing can be slow), shutting down, or no thread: here and now. */
	if (!async)
		client_teardown(c);
}

void zvfsd_reapers_wait(void)
{
	pthread_mutex_lock(&zd.reap_lock);
	while (zd.reaping)
		pthread_cond_wait(&zd.reap_cond, &zd.reap_lock);
	pthread_mutex_unlock(&zd.reap_lock);
}

/* ---- 2. handle table ------------------------------------------------------------------ */

/* A handle is (gen << 32 | slot): a closed handle's number stays invalid after reuse. */
static int handle_add(struct zvfsd_client *c, struct zvfs_file *file, uint32_t rights,
		      uint64_t *handlep)
{
	uint32_t i;
	int r = 0;

	pthread_mutex_lock(&c->lock);
	if (c->nfree) {
		i = c->free_idx[--c->nfree];
	} else {
		if (c->nh == c->cap) {
			uint32_t cap = c->cap ? c->cap * 2 : 16;
			struct zvfsd_hent *h;
			uint32_t *f;

			if (cap > MAX_HANDLES) {
				r = -EMFILE;
				goto out;
			}
			h = realloc(c->h, cap * sizeof(*h));
			if (!h) {
				r = -ENOMEM;
				goto out;
			}
			c->h = h;
			f = realloc(c->free_idx, cap * sizeof(*f));
			if (!f) {
				r = -ENOMEM;
				goto out;
			}
			c->free_idx = f;
			memset(c->h + c->cap, 0, (cap - c->cap) * sizeof(*h));
			c->cap = cap;
		}
		i = c->nh++;
	}
	/* a client reads entry i as handle i's size: it must follow the file before it is used */
	if (i < c->nsizes) {
		r = zvfs_file_mirror_add(file, &c->sizes[i]);
		if (r < 0) {
			c->free_idx[c->nfree++] = i;
			goto out;
		}
	}
	c->h[i].file = file;
	c->h[i].rights = rights;
	c->h[i].gen++;
	if (c->h[i].gen == 0)
		c->h[i].gen = 1;
	c->h[i].refs = 1;
	c->h[i].live = true;
	c->live++;
	*handlep = (uint64_t)c->h[i].gen << 32 | i;
out:
	pthread_mutex_unlock(&c->lock);
	return r;
}

static struct zvfsd_hent *handle_find(struct zvfsd_client *c, uint64_t handle)
{
	uint32_t i = (uint32_t)handle, gen = (uint32_t)(handle >> 32);

	if (i >= c->nh || !c->h[i].file || c->h[i].gen != gen)
		return NULL;
	return &c->h[i];
}

int zvfsd_handle_get(struct zvfsd_client *c, uint64_t handle, struct zvfs_file **filep,
		     uint32_t *rights)
{
	struct zvfsd_hent *e;
	int r = -EBADF;

	pthread_mutex_lock(&c->lock);
	e = handle_find(c, handle);
	if (e && e->live) {
		e->refs++;
		*filep = e->file;
		*rights = e->rights;
		r = 0;
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}

/* Drop one reference; returns the file to close when it was the last. */
static struct zvfs_file *handle_unref(struct zvfsd_client *c, uint64_t handle)
{
	struct zvfsd_hent *e = handle_find(c, handle);
	struct zvfs_file *file = NULL;

	if (e && --e->refs == 0) {
		file = e->file;
		e->file = NULL;
		/* before the slot can be reused by another handle */
		if ((uint32_t)handle < c->nsizes)
			zvfs_file_mirror_remove(file, &c->sizes[(uint32_t)handle]);
		c->free_idx[c->nfree++] = (uint32_t)handle;
	}
	return file;
}

void zvfsd_handle_put(struct zvfsd_client *c, uint64_t handle)
{
	struct zvfs_file *file;

	pthread_mutex_lock(&c->lock);
	file = handle_unref(c, handle);
	pthread_mutex_unlock(&c->lock);
	if (file)
		zvfs_file_close(file);
}

int zvfsd_handle_close(struct zvfsd_client *c, uint64_t handle)
{
	struct zvfsd_hent *e;
	struct zvfs_file *file = NULL;
	int r = -EBADF;

	pthread_mutex_lock(&c->lock);
	e = handle_find(c, handle);
	if (e && e->live) {
		e->live = false;
		c->live--;
		file = handle_unref(c, handle);
		r = 0;
	}
	pthread_mutex_unlock(&c->lock);
	if (file)
		return zvfs_file_close(file);
	return r;
}

/* ---- 3. receiving and replying --------------------------------------------------------- */

/*
 * One reply record (header + body), with fd attached (SCM_RIGHTS) when fd >= 0.
 * Non-blocking: a client that does not read its replies is dropped, not waited for.
 */
static int reply_fd(struct zvfsd_client *c, uint16_t type, uint32_t seq, const void *body,
		    size_t len, int fd)
{
	if (len > ZVFS_MSG_MAX)
		return -EMSGSIZE;
	return zvfs_msg_send(c->fd, type, seq, body, (uint32_t)len, fd, MSG_DONTWAIT);
}

static int reply(struct zvfsd_client *c, uint16_t type, uint32_t seq, const void *body, size_t len)
{
	return reply_fd(c, type, seq, body, len, -1);
}

static int reply_error(struct zvfsd_client *c, uint32_t seq, int err, const char *text)
{
	struct zvfs_msg_error e;

	memset(&e, 0, sizeof(e));
	e.err = err < 0 ? -err : err;
	snprintf(e.text, sizeof(e.text), "%s", text ? text : strerror(e.err));
	zd.ctl.errors++;
	return reply(c, ZVFS_MSG_ERROR, seq, &e, sizeof(e));
}

static int handle_msg(struct zvfsd_client *c, const struct zvfsd_ctl *m, int fd);

bool zvfsd_client_input(struct zvfsd_client *c)
{
	union {
		char buf[CMSG_SPACE(MAX_FDS_PER_MSG * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	char pkt[ZVFS_MSG_MAX + 1];
	int fds[MAX_FDS_PER_MSG * 2];
	struct iovec iov = {pkt, sizeof(pkt)};
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = ctl.buf,
		.msg_controllen = sizeof(ctl.buf),
	};
	struct zvfsd_ctl m;
	struct cmsghdr *cm;
	ssize_t n;
	int nfds = 0, r;

	n = recvmsg(c->fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return true;
	if (n <= 0) {
		zvfsd_client_drop(c, n == 0 ? "disconnected" : strerror(errno));
		return false;
	}
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

		for (size_t i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (nfds < (int)(sizeof(fds) / sizeof(fds[0])))
				fds[nfds++] = fd;
			else
				close(fd);
		}
	}
	if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		r = zvfsd_ctl_decode(pkt, (size_t)ZVFS_MSG_MAX + 1, nfds, c->hello, &m);
	else
		r = zvfsd_ctl_decode(pkt, (size_t)n, nfds, c->hello, &m);
	if (r < 0) {
		/* Every fd of a refused message is closed: none is kept, none leaks. */
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		reply_error(c, m.seq, r, m.text);
		if (m.drop) {
			char why[256];

			snprintf(why, sizeof(why), "protocol violation: %s", m.text);
			ZVFS_WARN("client %u (pid %d uid %u): %s; dropped", c->id, (int)c->pid,
				  (unsigned)c->uid, m.text);
			zvfsd_client_drop(c, why);
			return false;
		}
		return true;
	}
	/* zvfsd_ctl_decode() checked the count: nfds is 0 or 1 here. */
	r = handle_msg(c, &m, nfds ? fds[0] : -1);
	if (nfds)
		close(fds[0]);
	if (r < 0) {
		zvfsd_client_drop(c, r == -EAGAIN ? "not reading its replies" : strerror(-r));
		return false;
	}
	return true;
}

/* ---- 4. messages -------------------------------------------------------------------------- */

/*
 * The client's size table: a sealed memfd of SIZE_SLOTS entries, mapped here read-write and
 * sealed against any later writable mapping (F_SEAL_FUTURE_WRITE), so the descriptor the client
 * gets maps read-only.  Per client, so a client sees the sizes of the files it opened and of no
 * other.  The fd to send, or -1 (then the client asks for sizes, as before).
 */
static int sizes_make(struct zvfsd_client *c)
{
	size_t bytes = (size_t)SIZE_SLOTS * sizeof(*c->sizes);
	void *map;
	int fd;

	fd = memfd_create("zvfs-sizes", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		goto fail;
	if (ftruncate(fd, (off_t)bytes) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
		goto fail_close;
	map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		goto fail_close;
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) < 0) {
		munmap(map, bytes);
		goto fail_close;
	}
	/* published before any handle exists: handle_add() only uses it under c->lock */
	pthread_mutex_lock(&c->lock);
	c->sizes = map;
	c->nsizes = SIZE_SLOTS;
	pthread_mutex_unlock(&c->lock);
	return fd;
fail_close:
	close(fd);
fail:
	ZVFS_WARN("client %u: no size table (%s): its size queries go through its rings", c->id,
		  strerror(errno));
	return -1;
}

static int do_hello(struct zvfsd_client *c, const struct zvfsd_ctl *m)
{
	struct zvfs_msg_hello_ok ok;
	int tfd, r;

	memset(&ok, 0, sizeof(ok));
	c->hello = true;
	snprintf(c->comm, sizeof(c->comm), "%s", m->comm[0] ? m->comm : "?");
	zd.ctl.hello++;
	ok.version = ZVFS_PROTO_VERSION;
	ok.daemon_pid = (uint32_t)getpid();
	snprintf(ok.store_id, sizeof(ok.store_id), "%s", zvfs_fs_store_id(zd.fs));
	ok.data_size = zd.ring_data;
	ZVFS_DEBUG("client %u: HELLO from %s", c->id, c->comm);
	if (c->sizes)
		return reply(c, ZVFS_MSG_HELLO_OK, m->seq, &ok, sizeof(ok));
	tfd = sizes_make(c);
	if (tfd >= 0)
		ok.size_slots = c->nsizes;
	r = reply_fd(c, ZVFS_MSG_HELLO_OK, m->seq, &ok, sizeof(ok), tfd);
	if (tfd >= 0)
		close(tfd);
	return r;
}

static int do_ring_add(struct zvfsd_client *c, const struct zvfsd_ctl *m, int fd)
{
	struct zvfs_msg_ring_ok ok;
	uint32_t id;
	int r;

	if (c->nrings >= MAX_RINGS)
		return reply_error(c, m->seq, -EMFILE, "too many rings for one client");
	if (zd.nrings >= MAX_RINGS_ALL)
		return reply_error(c, m->seq, -EAGAIN, "too many rings in the daemon");
	r = zvfsd_ring_add(c, fd, m->data_size, m->tid, &id);
	if (r < 0) {
		ZVFS_WARN("client %u (pid %d): RING_ADD refused: %s", c->id, (int)c->pid,
			  strerror(-r));
		return reply_error(c, m->seq, r,
				   r == -EPERM ? "ring memfd cannot be sealed (MFD_ALLOW_SEALING)"
				   : r == -EINVAL
					   ? "ring memfd size is not zvfs_ring_bytes(data_size)"
				   : r == -EBADMSG ? "ring header: wrong magic or version"
						   : NULL);
	}
	memset(&ok, 0, sizeof(ok));
	ok.ring_id = id;
	return reply(c, ZVFS_MSG_RING_OK, m->seq, &ok, sizeof(ok));
}

/*
 * Open (or make) the ZVFS file behind fd.  On success *filep holds one
 * reference.  Everything comes from fd: identity, xattr, access mode.
 */
static int open_fd(int fd, uint32_t flags, struct zvfs_file **filep, uint32_t *rightsp,
		   const char **why)
{
	char xattr[ZVFS_FS_XATTR_MAX + 1];
	struct zvfs_fs_ino ino;
	struct stat st;
	ssize_t xlen;
	int fl, r;

	*why = NULL;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode)) {
		*why = "not a regular file";
		return -EINVAL;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	if (flags & ZVFS_OPEN_STAT) {
		*rightsp = 0; /* size and allocation only, as stat(2) shows anyone */
	} else if (fl & O_PATH) {
		*why = "an O_PATH descriptor grants no access";
		return -EBADF;
	} else {
		switch (fl & O_ACCMODE) {
		case O_RDONLY:
			*rightsp = ZVFS_RIGHT_READ;
			break;
		case O_WRONLY:
			*rightsp = ZVFS_RIGHT_WRITE;
			break;
		case O_RDWR:
			*rightsp = ZVFS_RIGHT_READ | ZVFS_RIGHT_WRITE;
			break;
		default:
			return -EBADF;
		}
	}
	ino.dev = (uint64_t)st.st_dev;
	ino.ino = (uint64_t)st.st_ino;
	if (fl & O_PATH) {
		/* fgetxattr() refuses O_PATH descriptors; the proc link reaches any. */
		char path[64];

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		xlen = getxattr(path, ZVFS_FS_XATTR, xattr, sizeof(xattr));
	} else {
		xlen = fgetxattr(fd, ZVFS_FS_XATTR, xattr, sizeof(xattr));
	}
	if (xlen < 0 && errno == ERANGE) {
		*why = "malformed ZVFS xattr (too long)";
		return -EUCLEAN;
	}
	if (xlen < 0 && errno != ENODATA)
		return -errno;
	if (xlen < 0 && (flags & ZVFS_OPEN_CREATE)) {
		if (!(*rightsp & ZVFS_RIGHT_WRITE)) {
			*why = "create needs a descriptor open for writing";
			return -EBADF;
		}
		if (st.st_size != 0 || st.st_nlink == 0) {
			*why = st.st_nlink ? "create: the placeholder is not empty"
					   : "create: the placeholder has no name";
			return -EINVAL;
		}
		size_t clen = 0;

		r = zvfs_fs_file_create(zd.fs, &ino, filep, xattr, &clen);
		if (r < 0)
			return r;
		xlen = (ssize_t)clen;
		/* XATTR_CREATE: of two clients creating one name, one blob wins. */
		if (fsetxattr(fd, ZVFS_FS_XATTR, xattr, (size_t)xlen, XATTR_CREATE) == 0) {
			zd.ctl.creates++;
			return 0;
		}
		r = -errno;
		zvfs_file_close(*filep);
		zvfs_fs_file_remove(zd.fs, xattr, (size_t)xlen, &ino);
		*filep = NULL;
		if (r != -EEXIST) {
			*why = "create: cannot set the ZVFS xattr";
			return r;
		}
		xlen = fgetxattr(fd, ZVFS_FS_XATTR, xattr, sizeof(xattr));
		if (xlen < 0)
			return errno == ERANGE ? -EUCLEAN : -errno;
	} else if (xlen < 0) {
		*why = "not a ZVFS file (no xattr)";
		return -ENODATA;
	}
	r = zvfs_fs_file_open(zd.fs, xattr, (size_t)xlen, &ino, filep);
	/*
	 * Unlinked while open, and now reopened through a surviving fd (a
	 * client re-registering after a daemon restart, an fd passed on): the
	 * blob goes at this file's last close, as it would have.
	 */
	if (r == 0 && st.st_nlink == 0)
		zvfs_fs_file_remove(zd.fs, xattr, (size_t)xlen, &ino);
	if (r < 0)
		*why = r == -ESTALE    ? "stale or copied ZVFS xattr"
		       : r == -EXDEV   ? "file of another store"
		       : r == -EUCLEAN ? "malformed ZVFS xattr"
				       : NULL;
	return r;
}

static int do_open(struct zvfsd_client *c, const struct zvfsd_ctl *m, int fd)
{
	struct zvfs_msg_open_ok ok;
	struct zvfs_file *file = NULL;
	uint32_t rights = 0;
	uint64_t handle = 0, t0 = zvfs_mono_ns();
	const char *why;
	int r;

	r = open_fd(fd, m->open_flags, &file, &rights, &why);
	if (r == 0 && (m->open_flags & ZVFS_OPEN_TRUNC)) {
		if (!(rights & ZVFS_RIGHT_WRITE)) {
			r = -EBADF;
			why = "truncate needs a descriptor open for writing";
		} else {
			r = zvfs_file_truncate(file, 0);
		}
		if (r < 0)
			zvfs_file_close(file);
	}
	if (r == 0) {
		r = handle_add(c, file, rights, &handle);
		if (r < 0)
			zvfs_file_close(file);
	}
	zd.ctl.opens++;
	zd.ctl.open_hist[zvfsd_hist_bucket(zvfs_mono_ns() - t0)]++;
	if (r < 0) {
		/* ENODATA is the normal answer for a plain Linux file: not worth a line. */
		if (r != -ENODATA)
			ZVFS_INFO("client %u (pid %d): OPEN refused: %s%s%s", c->id, (int)c->pid,
				  strerror(-r), why ? ": " : "", why ? why : "");
		return reply_error(c, m->seq, r, why);
	}
	memset(&ok, 0, sizeof(ok));
	ok.handle = handle;
	ok.size = zvfs_file_size(file);
	ok.direct_align = zvfs_file_direct_align(file);
	ok.rights = rights;
	return reply(c, ZVFS_MSG_OPEN_OK, m->seq, &ok, sizeof(ok));
}

static int do_remove(struct zvfsd_client *c, const struct zvfsd_ctl *m, int fd)
{
	char xattr[ZVFS_FS_XATTR_MAX + 1], path[64];
	struct zvfs_fs_ino ino;
	struct stat st;
	ssize_t xlen;
	int r;

	if (fstat(fd, &st) < 0)
		return reply_error(c, m->seq, -errno, NULL);
	/* Still named somewhere (a hard link, or the rename did not happen): nothing to do. */
	if (!S_ISREG(st.st_mode) || st.st_nlink != 0)
		return reply(c, ZVFS_MSG_OK, m->seq, NULL, 0);
	/* fgetxattr() refuses O_PATH descriptors; the proc link reaches any. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	xlen = getxattr(path, ZVFS_FS_XATTR, xattr, sizeof(xattr));
	if (xlen < 0) {
		if (errno == ENODATA || errno == ENOTSUP)
			return reply(c, ZVFS_MSG_OK, m->seq, NULL, 0); /* a plain Linux file */
		return reply_error(c, m->seq, errno == ERANGE ? -EUCLEAN : -errno, NULL);
	}
	ino.dev = (uint64_t)st.st_dev;
	ino.ino = (uint64_t)st.st_ino;
	r = zvfs_fs_file_remove(zd.fs, xattr, (size_t)xlen, &ino);
	zd.ctl.removes++;
	if (r < 0) {
		ZVFS_INFO("client %u (pid %d): REMOVE: %s", c->id, (int)c->pid, strerror(-r));
		return reply_error(c, m->seq, r, NULL);
	}
	return reply(c, ZVFS_MSG_OK, m->seq, NULL, 0);
}

static int stats_text(char *buf, size_t size);

static int do_stats(struct zvfsd_client *c, const struct zvfsd_ctl *m)
{
	char text[ZVFS_MSG_MAX - sizeof(struct zvfs_msg_hdr)];
	int n = stats_text(text, sizeof(text));

	return reply(c, ZVFS_MSG_STATS_OK, m->seq, text, (size_t)n);
}

static int do_shutdown(struct zvfsd_client *c, const struct zvfsd_ctl *m)
{
	if (c->uid != 0 && c->uid != zd.uid) {
		ZVFS_WARN("client %u (pid %d uid %u): SHUTDOWN refused", c->id, (int)c->pid,
			  (unsigned)c->uid);
		return reply_error(c, m->seq, -EPERM, "shutdown needs uid 0 or the daemon's uid");
	}
	ZVFS_INFO("client %u (pid %d uid %u): SHUTDOWN", c->id, (int)c->pid, (unsigned)c->uid);
	zd.stopping = true;
	return reply(c, ZVFS_MSG_OK, m->seq, NULL, 0);
}

static int handle_msg(struct zvfsd_client *c, const struct zvfsd_ctl *m, int fd)
{
	switch (m->type) {
	case ZVFS_MSG_HELLO:
		return do_hello(c, m);
	case ZVFS_MSG_RING_ADD:
		return do_ring_add(c, m, fd);
	case ZVFS_MSG_OPEN:
		return do_open(c, m, fd);
	case ZVFS_MSG_REMOVE:
		return do_remove(c, m, fd);
	case ZVFS_MSG_STATS:
		return do_stats(c, m);
	case ZVFS_MSG_SHUTDOWN:
		return do_shutdown(c, m);
	default:
		return -EBADMSG; /* zvfsd_ctl_decode() lets no other type through */
	}
}

/* ---- 5. STATS text ------------------------------------------------------------------------ */

struct sbuf {
	char *p;
	size_t size, len;
	bool full;
};

static void __attribute__((format(printf, 2, 3))) sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->size - b->len, fmt, ap);
	va_end(ap);
	/* Keep room for the truncation marker: a cut line is dropped whole. */
	if (n < 0 || b->len + (size_t)n + 16 >= b->size) {
		b->p[b->len] = 0;
		b->full = true;
		return;
	}
	b->len += (size_t)n;
}

static void fmt_ns(char *out, size_t size, uint64_t ns)
{
	if (ns < 10000)
		snprintf(out, size, "%lluns", (unsigned long long)ns);
	else if (ns < 10000000)
		snprintf(out, size, "%lluus", (unsigned long long)(ns / 1000));
	else
		snprintf(out, size, "%llums", (unsigned long long)(ns / 1000000));
}

static int stats_text(char *buf, size_t size)
{
	struct sbuf b = {buf, size, 0, false};
	struct zvfsd_stats *sum = calloc(1, sizeof(*sum));
	struct zvfs_fs_stats fst;
	struct timespec now;
	uint64_t handles = 0, rings = 0;
	uint64_t hist[ZVFSD_HIST];
	uint32_t reaping;

	clock_gettime(CLOCK_MONOTONIC, &now);
	sb_printf(&b, "zvfsd %d uptime %.1f s protocol %u\n", (int)getpid(),
		  (double)(now.tv_sec - zd.started.tv_sec) +
			  (double)(now.tv_nsec - zd.started.tv_nsec) / 1e9,
		  (unsigned)ZVFS_PROTO_VERSION);
	sb_printf(&b, "store %s id %s\n", zd.device, zvfs_fs_store_id(zd.fs));
	if (zvfs_fs_get_stats(zd.fs, &fst) == 0) {
		uint64_t rd = fst.cache_hits + fst.cache_misses;

		sb_printf(&b,
			  "cache hits %llu misses %llu hit-rate %.1f%% bytes %llu dirty %llu "
			  "limit %llu readahead %llu writeback %llu\n",
			  (unsigned long long)fst.cache_hits, (unsigned long long)fst.cache_misses,
			  rd ? 100.0 * (double)fst.cache_hits / (double)rd : 0.0,
			  (unsigned long long)fst.cache_bytes, (unsigned long long)fst.cache_dirty,
			  (unsigned long long)fst.cache_limit, (unsigned long long)fst.readahead,
			  (unsigned long long)fst.writeback);
		sb_printf(&b, "files open %llu cached %llu\n", (unsigned long long)fst.files_open,
			  (unsigned long long)fst.files_cached);
		sb_printf(&b, "device polled-reads %llu\n", (unsigned long long)fst.polled_reads);
	}
	for (struct zvfsd_client *c = zd.clients; c; c = c->next) {
		pthread_mutex_lock(&c->lock);
		handles += c->live;
		pthread_mutex_unlock(&c->lock);
	}
	rings = atomic_load(&zd.nrings);
	pthread_mutex_lock(&zd.reap_lock);
	reaping = zd.reaping;
	pthread_mutex_unlock(&zd.reap_lock);
	/* rings: also those of clients being torn down (reaping), whose handles are not counted. */
	sb_printf(&b, "clients %u handles %llu rings %llu reaping %u accepted %llu dropped %llu\n",
		  zd.nclients, (unsigned long long)handles, (unsigned long long)rings, reaping,
		  (unsigned long long)zd.ctl.accepted, (unsigned long long)zd.ctl.dropped);
	{
		char p50[24], p99[24];

		fmt_ns(p50, sizeof(p50), zvfsd_hist_quantile(zd.ctl.open_hist, 0.5));
		fmt_ns(p99, sizeof(p99), zvfsd_hist_quantile(zd.ctl.open_hist, 0.99));
		sb_printf(&b,
			  "control opens %llu (p50 %s p99 %s) creates %llu removes %llu "
			  "errors %llu\n",
			  (unsigned long long)zd.ctl.opens, p50, p99,
			  (unsigned long long)zd.ctl.creates, (unsigned long long)zd.ctl.removes,
			  (unsigned long long)zd.ctl.errors);
	}
	if (sum) {
		pthread_mutex_lock(&zd.stats_lock);
		zvfsd_stats_add(sum, &zd.done);
		pthread_mutex_unlock(&zd.stats_lock);
		for (struct zvfsd_client *c = zd.clients; c; c = c->next)
			for (struct zvfsd_ring *r = c->rings; r; r = r->next)
				zvfsd_stats_add(sum, &r->stats);
		sb_printf(&b,
			  "op count errors avg p50 p99 max | log2 histogram (bucket>=ns:count)\n");
		for (unsigned op = 0; op < ZVFS_OP_COUNT; op++) {
			struct zvfsd_opstat *o = &sum->op[op];
			uint64_t cnt = atomic_load(&o->count);
			char avg[24], p50[24], p99[24], mx[24];

			if (cnt == 0)
				continue;
			for (unsigned i = 0; i < ZVFSD_HIST; i++)
				hist[i] = atomic_load(&o->hist[i]);
			fmt_ns(avg, sizeof(avg), atomic_load(&o->ns_total) / cnt);
			fmt_ns(p50, sizeof(p50), zvfsd_hist_quantile(hist, 0.5));
			fmt_ns(p99, sizeof(p99), zvfsd_hist_quantile(hist, 0.99));
			fmt_ns(mx, sizeof(mx), atomic_load(&o->ns_max));
			sb_printf(&b, "op %s %llu %llu %s %s %s %s |", zvfs_op_name(op),
				  (unsigned long long)cnt,
				  (unsigned long long)atomic_load(&o->errors), avg, p50, p99, mx);
			for (unsigned i = 0; i < ZVFSD_HIST; i++)
				if (hist[i])
					sb_printf(&b, " %llu:%llu", 1ull << i,
						  (unsigned long long)hist[i]);
			sb_printf(&b, "\n");
		}
		free(sum);
	}
	for (struct zvfsd_client *c = zd.clients; c; c = c->next) {
		uint32_t live;

		pthread_mutex_lock(&c->lock);
		live = c->live;
		pthread_mutex_unlock(&c->lock);
		sb_printf(&b, "client %u pid %d uid %u gid %u comm %s handles %u rings %u\n", c->id,
			  (int)c->pid, (unsigned)c->uid, (unsigned)c->gid, c->comm, live,
			  c->nrings);
	}
	if (b.full) {
		size_t room = b.size - b.len;

		snprintf(b.p + b.len, room, "...\n");
		b.len += strlen(b.p + b.len);
	}
	return (int)b.len;
}
