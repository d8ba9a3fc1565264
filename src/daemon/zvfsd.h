/* SPDX-License-Identifier: MIT */
/*
 * daemon/zvfsd.h - zvfsd's internal objects, shared by its .c files:
 *
 *   zvfsd.c   main: options, daemonizing, the socket, the epoll loop, shutdown
 *   client.c  one client: control messages (HELLO, RING_ADD, OPEN, REMOVE,
 *             STATS, SHUTDOWN), its handle table, teardown; the STATS text
 *   worker.c  one thread per ring: requests from shared memory to zvfs/fs.h
 *   decode.c  the pure decoding of control packets (fuzzed)
 *
 * Threads: the main thread runs the epoll loop and every control message;
 * it alone creates clients and rings.  Ring workers touch only their ring,
 * their stats, and their client's handle table (under the client's lock).
 * A dropped client leaves the client list and loses its socket at once; a
 * detached reaper thread then stops and joins its workers (which may be in
 * the middle of a long fsync) and closes its handles, so a dying client
 * never stalls the others.  Shutdown waits for the reapers before unmount.
 */
#ifndef ZVFS_DAEMON_ZVFSD_H
#define ZVFS_DAEMON_ZVFSD_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "daemon/decode.h"
#include "ipc/proto.h"
#include "zvfs/fs.h"

/* Per-op counters of one ring (written by its worker only, read by STATS). */
struct zvfsd_opstat {
	_Atomic uint64_t count;
	_Atomic uint64_t errors;
	_Atomic uint64_t ns_total;
	_Atomic uint64_t ns_max;
	_Atomic uint64_t hist[ZVFSD_HIST];
};

struct zvfsd_stats {
	struct zvfsd_opstat op[ZVFS_OP_COUNT];
};

struct zvfsd_client;

struct zvfsd_ring {
	struct zvfsd_client *client;
	struct zvfs_ring *r; /* the client's memfd, mapped shared */
	uint8_t *data;	     /* r + ZVFS_RING_HDR */
	uint32_t data_size;  /* from RING_ADD, checked; never re-read from shared memory */
	uint32_t id;
	uint32_t tid;
	pthread_t thread;
	atomic_bool stop;
	bool complained; /* one log line per ring for a bad request */
	int cpu;	 /* the one CPU its worker is held to (follow_client()), or -1 */
	struct zvfsd_stats stats;
	struct zvfsd_ring *next;
};

/* One OPEN of one client. */
struct zvfsd_hent {
	struct zvfs_file *file; /* NULL: slot free */
	uint32_t rights;	/* ZVFS_RIGHT_* */
	uint32_t gen;		/* the high half of the handle */
	uint32_t refs;		/* requests running on it + 1 while live */
	bool live;		/* not closed yet */
};

struct zvfsd_client {
	int fd;
	uint32_t id;
	pid_t pid; /* SO_PEERCRED */
	uid_t uid;
	gid_t gid;
	char comm[16];
	bool hello;
	pthread_mutex_t lock; /* the handle table */
	struct zvfsd_hent *h;
	uint32_t nh, cap;
	uint32_t *free_idx; /* stack of free slots */
	uint32_t nfree;
	uint32_t live; /* handles open */
	struct zvfsd_ring *rings;
	uint32_t nrings;
	/*
	 * The client's size table (HELLO_OK): entry i follows the size of handle slot i's
	 * file (zvfs_file_mirror_add), for i < nsizes; the client maps it read-only.
	 */
	_Atomic uint64_t *sizes;
	uint32_t nsizes;
	struct zvfsd_client *next;
};

/* Control-side counters (main thread only). */
struct zvfsd_ctlstat {
	uint64_t accepted, dropped, hello, opens, creates, removes, errors;
	uint64_t open_hist[ZVFSD_HIST];
};

struct zvfsd {
	struct zvfs_fs *fs;
	char device[512];
	char socket_path[108];
	int lfd, epfd, sigfd;
	uid_t uid; /* the daemon's own uid (SHUTDOWN) */
	struct timespec started;
	uint32_t ring_data;	    /* data size HELLO_OK suggests */
	uint64_t spin_ns;	    /* how long a worker spins before it sleeps */
	uint32_t ncpu;		    /* online CPUs at start */
	bool follow_cpu;	    /* run a sleeping pair's worker on its client's CPU */
	cpu_set_t cpus;		    /* the CPUs the daemon may use (its affinity at start) */
	_Atomic uint32_t executing; /* requests between copy-in and DONE, all rings */
	struct zvfsd_client *clients;
	uint32_t nclients, next_client_id, next_ring_id;
	_Atomic uint32_t nrings; /* all clients', also those being torn down */
	/* Dropped clients whose workers and handles a reaper thread is still closing. */
	pthread_mutex_t reap_lock;
	pthread_cond_t reap_cond;
	uint32_t reaping;
	bool stopping;
	pthread_mutex_t stats_lock; /* done */
	struct zvfsd_stats done;    /* folded in from rings that are gone */
	struct zvfsd_ctlstat ctl;
};

extern struct zvfsd zd;

/* client.c */
struct zvfsd_client *zvfsd_client_new(int fd);
/* Handle the client's readable socket; false: the client is gone (already freed). */
bool zvfsd_client_input(struct zvfsd_client *c);
/*
 * Drop a client: off the list, socket closed now; its workers stopped, its
 * handles closed and c freed by a reaper thread (or here, when it has no
 * ring or the daemon is stopping).  c is invalid on return.
 */
void zvfsd_client_drop(struct zvfsd_client *c, const char *why);
/* Wait until every reaper is done (before unmount). */
void zvfsd_reapers_wait(void);
/* Handle table, for the workers: take a reference on a live handle (-EBADF). */
int zvfsd_handle_get(struct zvfsd_client *c, uint64_t handle, struct zvfs_file **filep,
		     uint32_t *rights);
void zvfsd_handle_put(struct zvfsd_client *c, uint64_t handle);
/* Mark a handle closed; its file is closed at the last put. */
int zvfsd_handle_close(struct zvfsd_client *c, uint64_t handle);

/* worker.c */
int zvfsd_ring_add(struct zvfsd_client *c, int memfd, uint32_t data_size, uint32_t tid,
		   uint32_t *idp);
/* Stop and join every worker of c, unmap its rings, fold their stats into zd.done. */
void zvfsd_rings_stop(struct zvfsd_client *c);
/* Add a ring's counters into sum (relaxed reads; STATS). */
void zvfsd_stats_add(struct zvfsd_stats *sum, const struct zvfsd_stats *s);

#endif /* ZVFS_DAEMON_ZVFSD_H */
