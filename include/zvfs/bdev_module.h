/* SPDX-License-Identifier: MIT */
/*
 * zvfs/bdev_module.h - for authors of block-device backends.
 *
 * Consumers use zvfs/bdev.h only.  A backend is a static const table of
 * operations (struct zvfs_bdev_ops) that the core reaches through thin
 * wrappers in src/bdev/bdev.c; the core does spec parsing, argument
 * validation, channel bookkeeping (per thread, released at thread exit),
 * request allocation and the synchronous API, so a backend only moves bytes.
 *
 * Contract for a backend:
 *  - open() fills bdev->geo (everything but queue_depth, which the core sets
 *    from the spec) and may set bdev->drv; it validates the device
 *    completely and writes a message naming the device and the reason to
 *    errbuf on failure.
 *  - channel_create()/channel_destroy() run on any thread (destroy may run on
 *    the thread that closes the device) but never concurrently for one channel.
 *  - submit() gets a request that the core has already validated (alignment,
 *    range, read-only).  It queues or starts the request and returns 0, or
 *    returns a negative errno and keeps no reference to it (the core then
 *    fails the submission without a callback).  submit() must never complete a
 *    request itself; a backend that finishes work synchronously hands the
 *    request to zvfs_bdev_io_defer(), and the core completes it at the next
 *    poll.
 *  - poll() submits what it has queued and reaps finished requests, calling
 *    zvfs_bdev_io_complete() for each after its own state is consistent
 *    (callbacks may submit new requests or poll again).  With wait set it
 *    sleeps until at least one request finishes if none has.  Returns the
 *    number of requests completed or a negative errno.
 */
#ifndef ZVFS_BDEV_MODULE_H
#define ZVFS_BDEV_MODULE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "zvfs/bdev.h"

#ifdef __cplusplus
extern "C" {
#endif

/* iovecs kept inside the request; longer vectors are allocated. */
#define ZVFS_BDEV_IO_INLINE_IOV 4

/* Bytes of per-request space reserved for the backend. */
#define ZVFS_BDEV_IO_DRV_SIZE 80

/* One request.  Owned by the core; the backend may use drv freely. */
struct zvfs_bdev_io {
	struct zvfs_bdev_io *next; /* link in free, deferred and backend queues */
	struct zvfs_bdev_channel *ch;
	zvfs_bdev_cb cb;
	void *cb_arg;
	uint64_t offset;   /* bytes */
	uint64_t len;	   /* bytes; 0 for flush */
	struct iovec *iov; /* iov_inline or heap; read/write only */
	int iovcnt;
	int status;	  /* for zvfs_bdev_io_defer() */
	uint8_t type;	  /* one ZVFS_BDEV_IO_* bit */
	uint8_t iov_heap; /* iov was allocated */
	struct iovec iov_inline[ZVFS_BDEV_IO_INLINE_IOV];
	union {
		char bytes[ZVFS_BDEV_IO_DRV_SIZE];
		uint64_t align;
	} drv;
};

/* A thread's channel on one device. */
struct zvfs_bdev_channel {
	struct zvfs_bdev *bdev;
	uint64_t bdev_id;     /* bdev->id when created: detects a closed device */
	uint64_t fork_gen;    /* channels made before a fork are not the child's */
	void *drv;	      /* backend state (ring, aio context, ...) */
	unsigned outstanding; /* submitted, callback not yet run */
	bool dead;	      /* device closed; memory freed by the owner thread */
	struct zvfs_bdev_io *free_list;
	struct zvfs_bdev_io *deferred_head, *deferred_tail;
	struct zvfs_bdev_channel *bdev_next;   /* bdev->channels, under the channel lock */
	struct zvfs_bdev_channel *thread_next; /* owner thread's list */
	void *io_chunks;		       /* request memory, freed with the channel */
};

/* Parsed device spec (what zvfs_bdev_open() understood). */
struct zvfs_bdev_spec {
	char driver[8];		  /* "uring", "aio", "ram", "fault" */
	const char *path;	  /* target path; NULL for ram; inner spec for fault */
	uint64_t size;		  /* 0 = not given */
	uint32_t block_size;	  /* 0 = not given */
	uint32_t phys_block_size; /* 0 = not given */
	uint32_t queue_depth;	  /* 0 = default */
	uint32_t sq_batch;	  /* submit once this many are prepared; 0 = at poll only */
	bool sq_batch_set;
	uint32_t spin_us; /* uring: poll a lone read's completion this long (see bdev.h) */
	bool spin_set;
	bool spin_always; /* ... even when no CPU is idle */
	bool create;
	bool buffered;
	bool read_only;
	bool no_regbuf;
};

struct zvfs_bdev_ops {
	const char *name;
	int (*open)(struct zvfs_bdev *bdev, const struct zvfs_bdev_spec *spec, char *errbuf,
		    size_t errlen);
	void (*close)(struct zvfs_bdev *bdev);
	int (*channel_create)(struct zvfs_bdev_channel *ch);
	void (*channel_destroy)(struct zvfs_bdev_channel *ch);
	int (*submit)(struct zvfs_bdev_channel *ch, struct zvfs_bdev_io *io);
	int (*poll)(struct zvfs_bdev_channel *ch, bool wait);
	/*
	 * Optional: claim the device for this process (zvfs_bdev_claim()).
	 * Returns 0, or -EBUSY with *holder set to the holder's pid (0 when
	 * unknown).  NULL means the device cannot be shared (RAM): always 0.
	 */
	int (*claim)(struct zvfs_bdev *bdev, pid_t *holder);
};

struct zvfs_bdev {
	const struct zvfs_bdev_ops *ops;
	struct zvfs_bdev_geometry geo;
	uint64_t id; /* unique per open, never reused */
	char name[256];
	void *drv;		 /* backend state */
	_Atomic bool wz_emulate; /* write_zeroes goes through zero-buffer writes */
	void *zero_buf;		 /* ZVFS_BDEV_ZERO_BUF bytes of zeroes, aligned */
	void *arena;		 /* registered buffer arena (may be NULL) */
	size_t arena_size;
	void *arena_state;	 /* arena allocator (core-private) */
	pthread_mutex_t ch_lock; /* channels list; never taken on the data path */
	struct zvfs_bdev_channel *channels;
	unsigned nchannels;
	struct zvfs_bdev *open_next; /* all open devices (core-private) */
	_Atomic uint64_t polled;     /* completions a waiting thread polled for (statistics) */
};

/* Size of the shared zero buffer used to emulate write_zeroes. */
#define ZVFS_BDEV_ZERO_BUF (1u << 20)

/* Complete io now: runs its callback.  Only from the backend's poll(). */
void zvfs_bdev_io_complete(struct zvfs_bdev_io *io, int status);

/* Complete io at the channel's next poll (for work finished inside submit). */
void zvfs_bdev_io_defer(struct zvfs_bdev_io *io, int status);

/* The backends. */
extern const struct zvfs_bdev_ops zvfs_bdev_uring_ops;
extern const struct zvfs_bdev_ops zvfs_bdev_aio_ops;
extern const struct zvfs_bdev_ops zvfs_bdev_ram_ops;
extern const struct zvfs_bdev_ops zvfs_bdev_fault_ops;

/*
 * Helpers shared by the file-backed drivers (src/bdev/bdev_file.c).
 *
 * zvfs_bdev_file_open() opens spec->path as a regular file (creating and
 * sizing it on request) or a block device, O_DIRECT unless spec->buffered,
 * validates it (type, size, block sizes, one test read) and fills bdev->geo.
 * Returns 0 with file->fd open, or a negative errno with errbuf filled.
 */
struct zvfs_bdev_file {
	int fd;
	bool is_blockdev;
	bool buffered;
	bool punch_ok; /* fallocate(PUNCH_HOLE) zeroes the range */
};
int zvfs_bdev_file_open(struct zvfs_bdev *bdev, const struct zvfs_bdev_spec *spec,
			struct zvfs_bdev_file *file, char *errbuf, size_t errlen);
/* Close what zvfs_bdev_file_open() opened (the fd leaves util/fdreg.h's registry). */
void zvfs_bdev_file_close(struct zvfs_bdev_file *file);

/*
 * Synchronous write_zeroes/discard/flush on a file or block device, for
 * backends with no asynchronous form.  Return 0 or a negative errno;
 * zvfs_bdev_file_write_zeroes() returns -EOPNOTSUPP when the target cannot
 * zero by itself (the core then writes zero buffers).
 */
int zvfs_bdev_file_write_zeroes(struct zvfs_bdev_file *file, uint64_t offset, uint64_t len);
int zvfs_bdev_file_discard(struct zvfs_bdev_file *file, uint64_t offset, uint64_t len);
int zvfs_bdev_file_flush(struct zvfs_bdev_file *file);

/*
 * Claim for the file-backed drivers: an fcntl(2) F_SETLK lock over the whole
 * file (F_WRLCK, or F_RDLCK on a read-only fd, so read-only users exclude
 * writers but not each other).  On conflict returns -EBUSY and sets *holder
 * from F_GETLK (0 if unknown).  Process-associated (POSIX) locks are the
 * point: a fork child does not inherit them and process exit drops them.
 */
int zvfs_bdev_file_claim(struct zvfs_bdev_file *file, bool read_only, pid_t *holder);

/* Format "name: reason" into errbuf, or log it when errbuf is NULL. */
void zvfs_bdev_errf(char *errbuf, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif

#endif /* ZVFS_BDEV_MODULE_H */
