/* SPDX-License-Identifier: MIT */
/*
 * zvfs/bdev.h - block devices: the bottom layer of the ZVFS engine.
 *
 * A block device is opened from a device spec string (grammar below) and
 * accessed through per-thread channels.  Every thread that does I/O gets its
 * own channel lazily, on its first zvfs_bdev_get_channel() call; the channel
 * owns that thread's io_uring ring or aio context and request pool, and is
 * released automatically when the thread exits.  The data path takes no lock
 * shared between threads.
 *
 * Asynchronous requests complete only while their submitting thread polls its
 * own channel: zvfs_bdev_poll() submits everything queued so far in one batch
 * and reaps every finished request of that channel in one pass, calling each
 * completion callback.  A submit call that returns 0 calls its callback exactly
 * once, later, from zvfs_bdev_poll()/zvfs_bdev_wait() on the same thread; a
 * submit call that fails never calls it.  Callbacks are never called from
 * inside a submit call.
 *
 * The synchronous calls (zvfs_bdev_*_sync) submit on the calling thread's
 * channel and poll it until their own request is done; completions of other
 * asynchronous requests of that thread that finish meanwhile get their
 * callbacks as usual.
 *
 * All calls return 0 or a negative errno; nothing here sets errno.
 *
 * Device spec grammar
 * -------------------
 *
 *   spec    := [ driver ":" ] target { "," option }
 *            | "ram:" [ option { "," option } ]
 *            | "fault:" spec
 *   driver  := "uring" | "aio"
 *   target  := path of a regular file or a block device (no commas)
 *   option  := "size=" SIZE       device size in bytes (K/M/G/T suffixes, powers of 1024)
 *            | "create"           create the file if missing (needs size=)
 *            | "block=" SIZE      logical block size (512 ... 65536, power of two)
 *            | "pblock=" SIZE     physical block size (RAM only; default = block)
 *            | "qd=" N            per-channel queue depth (1 ... 4096, default 128)
 *            | "sqbatch=" N       uring/aio: while completions are being reaped, hand
 *                                 new requests to the kernel as soon as N are
 *                                 prepared (default 1; 0 = only once per poll)
 *            | "buffered"         regular files only: use the page cache instead of
 *                                 O_DIRECT (for file systems that refuse O_DIRECT);
 *                                 flush becomes fdatasync
 *            | "ro"               open read-only; writes fail with -EROFS
 *            | "noregbuf"         io_uring: do not register the buffer arena
 *            | "spin=" US         io_uring: a thread waiting for a lone read polls
 *                                 for its completion up to US microseconds before
 *                                 it sleeps, while no thread waits for a CPU
 *                                 (0 ... 100000, default 200; 0 = always sleep)
 *            | "spinalways"       io_uring: poll as spin= says even when threads
 *                                 wait for a CPU (a machine given to this store)
 *
 * The default driver is "uring".  Examples:
 *
 *   /var/lib/zvfs/store.img                   io_uring on an existing file
 *   uring:/tmp/t.img,size=1G,create           create (or extend) a 1 GiB image
 *   aio:/dev/nvme0n1                          libaio on a block device
 *   ram:size=64M,block=512                    64 MiB of memory, 512-byte blocks
 *   fault:ram:size=16M                        fault injection over a RAM disk
 *
 * For a regular file, "size" is the device size: a smaller file is extended
 * (preallocated where the file system can) to that size; without "size" the
 * device is the whole file, rounded down to the block size.  A block device
 * is used whole unless "size" limits it.  Opening validates the device
 * completely (type, size, block sizes, O_DIRECT support, one test read) and
 * fails with a message that names the device and the reason.
 *
 * I/O rules
 * ---------
 * Offsets and lengths are in bytes and must be multiples of the logical block
 * size; every iovec base must be aligned to geometry.buf_align and every iovec
 * length must be a multiple of the logical block size.  Requests that break a
 * rule fail with -EINVAL at submission; requests that reach past the end of
 * the device fail with -ERANGE.  Buffers from zvfs_bdev_buf_alloc() always
 * satisfy the alignment rule (and may be faster: see buf_alloc).
 */
#ifndef ZVFS_BDEV_H
#define ZVFS_BDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct zvfs_bdev;
struct zvfs_bdev_channel;

/* What a device is; filled at open time and constant afterwards. */
struct zvfs_bdev_geometry {
	uint64_t size;		  /* usable bytes, a multiple of block_size */
	uint32_t block_size;	  /* logical block: unit of offsets and lengths, bytes */
	uint32_t phys_block_size; /* physical block: the write atomicity hint, bytes */
	uint32_t buf_align;	  /* required alignment of buffer addresses, bytes */
	uint32_t queue_depth;	  /* requests a channel keeps in flight before queueing */
	bool discard_zeroes;	  /* a discarded range reads back as zeroes */
	bool write_zeroes_native; /* target should zero without data transfer (see write_zeroes) */
	bool volatile_cache;	  /* writes may be lost on power failure until a flush */
	bool read_only;		  /* opened "ro" */
	/*
	 * The first write into a range allocates it in a host file system (an
	 * image file): the next flush then also commits that file system's
	 * journal.  Writers of small synced appends prepare ranges ahead.
	 */
	bool alloc_on_write;
};

/*
 * Completion callback.  status is 0 on success or a negative errno
 * (-EIO, -ENOSPC, ...).  Called on the submitting thread, from its poll.
 */
typedef void (*zvfs_bdev_cb)(void *cb_arg, int status);

/*
 * Open the device named by spec (see the grammar above).
 *
 * On success stores the device in *bdevp and returns 0.  On failure returns a
 * negative errno and writes a one-line message naming the device and the
 * reason into errbuf (if errbuf is not NULL; truncated to errlen); when errbuf
 * is NULL the message is logged instead.
 *   -EINVAL    malformed spec, bad option value, or bad block sizes
 *   -ENOENT    no such file (and no "create")
 *   -EISDIR    target is a directory
 *   -ENODEV    target is neither a regular file nor a block device
 *   -ENOSPC    device smaller than ZVFS_BDEV_MIN_SIZE, or the file system
 *              cannot hold the requested size
 *   -EACCES    no permission
 *   -EOPNOTSUPP the file system refuses O_DIRECT (use "buffered" to opt in)
 *   -EIO       the test I/O failed
 * Thread rules: any thread.
 */
int zvfs_bdev_open(const char *spec, struct zvfs_bdev **bdevp, char *errbuf, size_t errlen);

/* Smallest device accepted: 1 MiB. */
#define ZVFS_BDEV_MIN_SIZE (1ull << 20)

/*
 * Close a device and release every channel of every thread.  The caller
 * guarantees that no request is in flight and that no thread uses the device
 * or one of its channels again.  Returns 0, or -EBUSY (and closes nothing) if
 * requests are still in flight on some channel.
 */
int zvfs_bdev_close(struct zvfs_bdev *bdev);

/* The device's geometry; valid until close. */
const struct zvfs_bdev_geometry *zvfs_bdev_get_geometry(const struct zvfs_bdev *bdev);

/*
 * Claim the device for this process: an fcntl(2) F_SETLK write lock over the
 * whole file or block device, so that a second process (ZVFS direct mode,
 * zvfs fsck, zvfs mkfs) gets -EBUSY with *holder set to the holder's pid (0
 * if the kernel does not say).  The claim is not inherited by fork children
 * and ends at zvfs_bdev_close() or process exit.  RAM devices: always 0.
 * Fault devices claim their inner device.  Claiming twice is a no-op.
 */
int zvfs_bdev_claim(struct zvfs_bdev *bdev, pid_t *holder);

/* A printable name: the path, or "ram" / "fault(<inner>)". Valid until close. */
const char *zvfs_bdev_get_name(const struct zvfs_bdev *bdev);

/* The backend driver's name: "uring", "aio", "ram" or "fault". */
const char *zvfs_bdev_get_driver(const struct zvfs_bdev *bdev);

/*
 * The calling thread's channel for bdev, created on first use (one io_uring
 * ring / aio context per thread and device).  Cheap after the first call.
 * Returns 0 and sets *chp, or -ENOMEM / the backend's error (e.g. -EMFILE).
 * The channel belongs to the calling thread: only that thread may submit on
 * it or poll it.  It is released when the thread exits or the device closes.
 */
int zvfs_bdev_get_channel(struct zvfs_bdev *bdev, struct zvfs_bdev_channel **chp);

/* Channels currently alive for bdev (all threads); for tests and statistics. */
unsigned zvfs_bdev_channel_count(struct zvfs_bdev *bdev);

/* Requests whose waiting thread polled for the completion ("spin="); for tests and statistics. */
uint64_t zvfs_bdev_polled(struct zvfs_bdev *bdev);

/*
 * Asynchronous requests on the calling thread's channel ch.  The iovec array
 * is copied; the buffers must stay valid until the callback.  Returns 0
 * (callback will be called exactly once) or, without calling back:
 *   -EINVAL  misaligned offset, length or buffer; an empty range or iovec;
 *            iovcnt out of [1, IOV_MAX]
 *   -ERANGE  [offset, offset+len) reaches past the end of the device
 *   -EROFS   write to a read-only device
 *   -ENOMEM  out of request memory
 *   -ENXIO   the device is dead (fault injection: after a power cut)
 */
int zvfs_bdev_readv(struct zvfs_bdev_channel *ch, const struct iovec *iov, int iovcnt,
		    uint64_t offset, zvfs_bdev_cb cb, void *cb_arg);
int zvfs_bdev_writev(struct zvfs_bdev_channel *ch, const struct iovec *iov, int iovcnt,
		     uint64_t offset, zvfs_bdev_cb cb, void *cb_arg);
int zvfs_bdev_read(struct zvfs_bdev_channel *ch, void *buf, uint64_t len, uint64_t offset,
		   zvfs_bdev_cb cb, void *cb_arg);
int zvfs_bdev_write(struct zvfs_bdev_channel *ch, const void *buf, uint64_t len, uint64_t offset,
		    zvfs_bdev_cb cb, void *cb_arg);

/*
 * Flush the device's volatile cache: every write that completed before the
 * flush was submitted is on stable storage when the flush completes.
 */
int zvfs_bdev_flush(struct zvfs_bdev_channel *ch, zvfs_bdev_cb cb, void *cb_arg);

/*
 * Make [offset, offset+len) read back as zeroes.  Uses the device's own
 * zeroing (fallocate ZERO_RANGE, BLKZEROOUT) where it has one and writes
 * zero buffers otherwise; the zeroing guarantee holds either way.
 */
int zvfs_bdev_write_zeroes(struct zvfs_bdev_channel *ch, uint64_t offset, uint64_t len,
			   zvfs_bdev_cb cb, void *cb_arg);

/*
 * Tell the device [offset, offset+len) is unused.  The range reads back as
 * zeroes afterwards only if geometry.discard_zeroes; otherwise its content is
 * undefined.  A device without discard support completes it as a no-op.
 */
int zvfs_bdev_discard(struct zvfs_bdev_channel *ch, uint64_t offset, uint64_t len, zvfs_bdev_cb cb,
		      void *cb_arg);

/*
 * Submit everything queued on ch in one batch and reap every finished
 * request, calling their callbacks.  Never blocks.  Returns the number of
 * requests completed (>= 0) or a negative errno if the channel is broken.
 */
int zvfs_bdev_poll(struct zvfs_bdev_channel *ch);

/*
 * Like zvfs_bdev_poll(), but if nothing has finished and requests are in
 * flight, sleep until at least one finishes.  Returns the number completed
 * (0 only when nothing is in flight).
 */
int zvfs_bdev_wait(struct zvfs_bdev_channel *ch);

/* Requests submitted on ch and not yet completed (callback not yet run). */
unsigned zvfs_bdev_outstanding(const struct zvfs_bdev_channel *ch);

/*
 * Synchronous forms: submit on the calling thread's channel and poll until
 * done.  Same arguments, rules and errors as the asynchronous forms, plus the
 * request's own completion status.
 */
int zvfs_bdev_readv_sync(struct zvfs_bdev *bdev, const struct iovec *iov, int iovcnt,
			 uint64_t offset);
int zvfs_bdev_writev_sync(struct zvfs_bdev *bdev, const struct iovec *iov, int iovcnt,
			  uint64_t offset);
int zvfs_bdev_read_sync(struct zvfs_bdev *bdev, void *buf, uint64_t len, uint64_t offset);
int zvfs_bdev_write_sync(struct zvfs_bdev *bdev, const void *buf, uint64_t len, uint64_t offset);
int zvfs_bdev_flush_sync(struct zvfs_bdev *bdev);
int zvfs_bdev_write_zeroes_sync(struct zvfs_bdev *bdev, uint64_t offset, uint64_t len);
int zvfs_bdev_discard_sync(struct zvfs_bdev *bdev, uint64_t offset, uint64_t len);

/*
 * Allocate len bytes of I/O buffer memory aligned for bdev (zero-filled).
 * The io_uring backend registers a buffer arena with every ring, so I/O on
 * buffers from here skips the kernel's per-request page pinning; buffers from
 * elsewhere work too.  Returns NULL when out of memory.  Any thread may free.
 */
void *zvfs_bdev_buf_alloc(struct zvfs_bdev *bdev, size_t len);
void zvfs_bdev_buf_free(struct zvfs_bdev *bdev, void *buf);

/*
 * Fault injection: only for devices opened with the "fault" driver; other
 * devices return -EINVAL.  Meant for tests of the layers above.
 *
 * The fault device keeps writes (and write_zeroes / discard) that no
 * completed flush has covered in a volatile cache in memory, reads see them,
 * and a flush writes them through to the inner device in order and flushes it.
 */
enum zvfs_bdev_io_type {
	ZVFS_BDEV_IO_READ = 1u << 0,
	ZVFS_BDEV_IO_WRITE = 1u << 1,
	ZVFS_BDEV_IO_FLUSH = 1u << 2,
	ZVFS_BDEV_IO_WRITE_ZEROES = 1u << 3,
	ZVFS_BDEV_IO_DISCARD = 1u << 4,
	ZVFS_BDEV_IO_ALL = 0x1f,
};

/*
 * Fail the nth request (1 = the next one) among those whose type is in
 * types, with status -err.  Counting starts now; one shot.  Note that
 * EOPNOTSUPP on a write_zeroes or discard is not reported to the caller: the
 * core takes it to mean "cannot zero natively" and writes zero buffers.
 */
int zvfs_bdev_fault_fail_nth(struct zvfs_bdev *bdev, unsigned types, uint64_t nth, int err);

/*
 * Fail every request whose type is in types and that touches
 * [offset, offset+len) with -err, until cleared.  Flushes touch everything.
 * Returns a rule id (>= 0) for zvfs_bdev_fault_clear_rule(), or -ENOSPC when
 * 16 rules are active.
 */
int zvfs_bdev_fault_fail_range(struct zvfs_bdev *bdev, unsigned types, uint64_t offset,
			       uint64_t len, int err);
int zvfs_bdev_fault_clear_rule(struct zvfs_bdev *bdev, int rule);

/* Remove every failure rule. */
int zvfs_bdev_fault_clear(struct zvfs_bdev *bdev);

enum zvfs_bdev_power_cut {
	ZVFS_BDEV_CUT_DROP_ALL = 0, /* every unflushed write is lost */
	ZVFS_BDEV_CUT_RANDOM = 1,   /* each unflushed write survives with probability 1/2 */
};

/*
 * Simulate a power failure: unflushed writes, write_zeroes and discards are
 * dropped (all of them, or a subset chosen by seed; survivors are applied in
 * their original order), and
 * the device goes dark: every later request fails with -ENXIO until
 * zvfs_bdev_fault_power_on().  Requests in flight complete normally.  Stores
 * the number of writes dropped and kept in *dropped / *kept (may be NULL).
 */
int zvfs_bdev_fault_power_cut(struct zvfs_bdev *bdev, enum zvfs_bdev_power_cut mode, uint64_t seed,
			      uint64_t *dropped, uint64_t *kept);

/* Bring a device back after a power cut: it now holds what survived. */
int zvfs_bdev_fault_power_on(struct zvfs_bdev *bdev);

/* Counters of a fault device. */
struct zvfs_bdev_fault_stats {
	uint64_t submitted; /* requests seen */
	uint64_t failed;    /* requests failed by a rule */
	uint64_t unflushed; /* writes, write_zeroes, discards in the volatile cache */
	uint64_t flushes;   /* flushes completed */
};
int zvfs_bdev_fault_get_stats(struct zvfs_bdev *bdev, struct zvfs_bdev_fault_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* ZVFS_BDEV_H */
