/* SPDX-License-Identifier: MIT */
/*
 * crashw: the writer and the checker of the power-cut test (test_crash.py drives it).
 *
 *   crashw init  DIR                      create DIR/init (formats the store), exit
 *   crashw write DIR SEED ROUND           write until killed
 *   crashw check DIR SEED ROUND LAST S0 S1 S2 S3
 *
 * write runs under libzvfs.so on a "fault:" device, which keeps every write no flush has
 * covered in process memory: SIGKILL is a power cut that drops them.  It creates the files
 * DIR/rROUND-f0..3 (after unlinking the previous round's), then does an endless deterministic
 * sequence of ops (pwrite, append through an O_APPEND fd, ftruncate, punch hole, read-back,
 * close+reopen, fsync/fdatasync, and replace: write FILE.tmp, fsync it, rename it over FILE)
 * on them, printing on stdout (a pipe to the harness, never a ZVFS file) "B n" before op n
 * and "S f n" after op n, an fsync or fdatasync (or a replace) of file f, returned 0: from then
 * on the state of file f as of op n is durable.  A cut inside a replace may leave the old file
 * or the new one, never a mix.  With CRASHW_LIE=1 in the environment, write skips fsync and
 * fdatasync but reports them: the harness's self-test, which must see data lost.
 *
 * check runs under the library on the plain image after the cut.  LAST is the last op the
 * writer began, Sf the last synced op of file f (-1: none).  It replays the same sequence in
 * memory and checks each file: the size is at least the synced size (less only where a later
 * op truncated), at most the largest size reached, and every byte is the synced byte or a
 * value a later op could have left there (its data, or zero for a truncate or a hole).
 * Exit 0 pass, 1 mismatch (printed with the seed and round), 2 usage or setup error.
 *
 * Map: 1. ops and the model  2. write  3. check  4. main
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- 1. ops and the model ------------------------------------------------------------------ */

#define NF	 4
#define MAX_SIZE (512u << 10)
#define MAX_LEN	 (64u << 10)

enum op_type {
	OP_PWRITE,
	OP_APPEND,
	OP_TRUNC,
	OP_PUNCH,
	OP_READ,
	OP_REOPEN,
	OP_FSYNC,
	OP_FDSYNC,
	OP_REPLACE, /* write FILE.tmp, fsync it, rename it over FILE: a sync point of FILE */
};

struct op {
	enum op_type type;
	int file;
	uint64_t off, len; /* bytes; TRUNC: off = the new size */
	uint64_t size_after;
};

struct mfile {
	uint8_t *data; /* MAX_SIZE bytes, zero past size */
	uint64_t size;
};

static struct mfile model[NF];
static uint64_t rng, seed_arg, round_arg;

static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 2685821657736338717ull;
}

static uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

/* The byte op @j writes at file offset @i: recomputable by the checker. */
static uint8_t pattern(uint64_t j, uint64_t i)
{
	uint64_t x = (seed_arg * 1000003 + round_arg) ^ (j << 24) ^ (i * 0x9E3779B97F4A7C15ull);

	x ^= x >> 31;
	x *= 0xBF58476D1CE4E5B9ull;
	x ^= x >> 29;
	return (uint8_t)(x >> 32);
}

static void seed_rng(void)
{
	rng = (seed_arg * 0x9E3779B97F4A7C15ull) ^ (round_arg * 0xD1B54A32D192ED03ull) ^ 0x5bd1e995;
	if (!rng)
		rng = 1;
}

/* The next op, drawn from the model's state; applies it to the model. */
static struct op next_op(void)
{
	struct op o = {.file = (int)below(NF)};
	struct mfile *m = &model[o.file];
	uint64_t r = below(100);

	if (r < 40) {
		o.type = OP_PWRITE;
		o.len = 1 + below(below(4) ? 8192 : MAX_LEN);
		o.off = below(2) ? below(m->size + 1) : below(MAX_SIZE - o.len + 1);
		if (o.off + o.len > MAX_SIZE)
			o.off = MAX_SIZE - o.len;
	} else if (r < 55) {
		o.type = OP_APPEND;
		o.len = 1 + below(8192);
		o.off = m->size;
		if (o.off + o.len > MAX_SIZE) {
			o.type = OP_TRUNC; /* full: start over small */
			o.off = below(4096);
		}
	} else if (r < 63) {
		o.type = OP_TRUNC;
		o.off = below(3) ? below(m->size + 1) : below(MAX_SIZE + 1);
	} else if (r < 68) {
		o.type = OP_PUNCH;
		o.len = 1 + below(MAX_LEN * 2);
		o.off = below(m->size + 1);
		if (o.off + o.len > MAX_SIZE)
			o.len = o.off < MAX_SIZE ? MAX_SIZE - o.off : 1;
	} else if (r < 80) {
		o.type = OP_READ;
		o.off = below(m->size + 1);
		o.len = 1 + below(MAX_LEN);
	} else if (r < 83) {
		o.type = OP_REOPEN;
	} else if (r < 85) {
		o.type = OP_REPLACE;
		o.off = 0;
		o.len = 1 + below(MAX_LEN);
	} else {
		o.type = below(2) ? OP_FSYNC : OP_FDSYNC;
	}
	return o;
}

static void apply(struct op *o, uint64_t j)
{
	struct mfile *m = &model[o->file];

	switch (o->type) {
	case OP_PWRITE:
	case OP_APPEND:
		for (uint64_t i = 0; i < o->len; i++)
			m->data[o->off + i] = pattern(j, o->off + i);
		if (o->off + o->len > m->size)
			m->size = o->off + o->len;
		break;
	case OP_TRUNC:
		if (o->off < m->size)
			memset(m->data + o->off, 0, m->size - o->off);
		m->size = o->off;
		break;
	case OP_REPLACE:
		memset(m->data, 0, m->size);
		for (uint64_t i = 0; i < o->len; i++)
			m->data[i] = pattern(j, i);
		m->size = o->len;
		break;
	case OP_PUNCH:
		if (o->off < m->size) {
			uint64_t end = o->off + o->len < m->size ? o->off + o->len : m->size;

			memset(m->data + o->off, 0, end - o->off);
		}
		break;
	default:
		break;
	}
	o->size_after = m->size;
}

static void model_init(void)
{
	for (int f = 0; f < NF; f++) {
		model[f].data = calloc(1, MAX_SIZE);
		model[f].size = 0;
		if (!model[f].data) {
			fprintf(stderr, "crashw: out of memory\n");
			exit(2);
		}
	}
}

static void file_path(char *p, size_t n, const char *dir, uint64_t round, int f)
{
	snprintf(p, n, "%s/r%" PRIu64 "-f%d", dir, round, f);
}

/* ---- 2. write ------------------------------------------------------------------------------ */

/* Report to the harness: one write(2) per line, so a line is either whole or absent. */
static void say(const char *line)
{
	size_t len = strlen(line);

	if (write(STDOUT_FILENO, line, len) != (ssize_t)len)
		exit(2); /* the harness went away */
}

static __attribute__((noreturn)) void die(const char *what, uint64_t j)
{
	fprintf(stderr, "crashw write: seed %" PRIu64 " round %" PRIu64 " op %" PRIu64 ": %s: %s\n",
		seed_arg, round_arg, j, what, strerror(errno));
	exit(1);
}

static void open_file(const char *dir, int f, int fd[2], int extra)
{
	char p[PATH_MAX];

	file_path(p, sizeof(p), dir, round_arg, f);
	fd[0] = open(p, O_RDWR | extra, 0644);
	fd[1] = fd[0] < 0 ? -1 : open(p, O_WRONLY | O_APPEND);
	if (fd[0] < 0 || fd[1] < 0)
		die("open", 0);
}

static int do_write(const char *dir)
{
	bool lie = getenv("CRASHW_LIE") != NULL; /* report syncs without making them */
	static uint8_t buf[2 * MAX_LEN];
	int fd[NF][2], ufd;
	char line[64], p[PATH_MAX + 8];

	for (int f = 0; f < NF && round_arg > 0; f++) {
		file_path(p, sizeof(p), dir, round_arg - 1, f);
		if (unlink(p) < 0 && errno != ENOENT)
			die("unlink of the last round's file", 0);
		strcat(p, ".tmp"); /* left by a cut inside a replace */
		if (unlink(p) < 0 && errno != ENOENT)
			die("unlink of the last round's temp file", 0);
	}
	for (int f = 0; f < NF; f++)
		open_file(dir, f, fd[f], O_CREAT | O_TRUNC);
	/*
	 * A file unlinked while open: its blob lives until the last close, which the cut
	 * prevents, so every round leaves an orphan blob for fsck (a warning) and --repair.
	 */
	snprintf(p, sizeof(p), "%s/r%" PRIu64 "-unlinked", dir, round_arg);
	ufd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
	memset(buf, 0x5a, MAX_LEN);
	if (ufd < 0 || write(ufd, buf, MAX_LEN) != MAX_LEN || fsync(ufd) < 0 || unlink(p) < 0)
		die("the unlinked-while-open file", 0);
	for (uint64_t j = 0;; j++) {
		struct op o = next_op();
		ssize_t n;

		snprintf(line, sizeof(line), "B %" PRIu64 "\n", j);
		say(line);
		switch (o.type) {
		case OP_PWRITE:
		case OP_APPEND:
			for (uint64_t i = 0; i < o.len; i++)
				buf[i] = pattern(j, o.off + i);
			n = o.type == OP_PWRITE ? pwrite(fd[o.file][0], buf, o.len, (off_t)o.off)
						: write(fd[o.file][1], buf, o.len);
			if (n != (ssize_t)o.len)
				die("write", j);
			break;
		case OP_TRUNC:
			if (ftruncate(fd[o.file][0], (off_t)o.off) < 0)
				die("ftruncate", j);
			break;
		case OP_PUNCH:
			if (fallocate(fd[o.file][0], FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				      (off_t)o.off, (off_t)o.len) < 0)
				die("fallocate(PUNCH_HOLE)", j);
			break;
		case OP_READ: {
			struct mfile *m = &model[o.file];
			uint64_t want = o.off >= m->size	  ? 0
					: m->size - o.off < o.len ? m->size - o.off
								  : o.len;

			/* keep the unlinked file busy too: dirty pages of a file without a name */
			if (pwrite(ufd, buf, 4096, (off_t)(j % 64) * 4096) != 4096)
				die("write to the unlinked file", j);

			n = pread(fd[o.file][0], buf, o.len, (off_t)o.off);
			if (n != (ssize_t)want || memcmp(buf, m->data + o.off, want) != 0) {
				errno = EIO;
				die("read-back differs from what was written", j);
			}
			break;
		}
		case OP_REOPEN:
			close(fd[o.file][0]);
			close(fd[o.file][1]);
			open_file(dir, o.file, fd[o.file], 0);
			break;
		case OP_REPLACE: {
			char tmp[sizeof(p) + 8];
			int tfd;

			/* the atomic-replace idiom: the old blob goes when the rename drops it */
			close(fd[o.file][0]);
			close(fd[o.file][1]);
			file_path(p, sizeof(p), dir, round_arg, o.file);
			snprintf(tmp, sizeof(tmp), "%s.tmp", p);
			for (uint64_t i = 0; i < o.len; i++)
				buf[i] = pattern(j, i);
			tfd = open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0644);
			if (tfd < 0 || write(tfd, buf, o.len) != (ssize_t)o.len || fsync(tfd) < 0 ||
			    close(tfd) < 0 || rename(tmp, p) < 0)
				die("replace (write, fsync, rename)", j);
			open_file(dir, o.file, fd[o.file], 0);
			break;
		}
		case OP_FSYNC:
		case OP_FDSYNC:
			if (lie)
				break; /* the harness's self-test: it must notice */
			if ((o.type == OP_FSYNC ? fsync(fd[o.file][0]) : fdatasync(fd[o.file][0])) <
			    0)
				die("fsync", j);
			break;
		}
		apply(&o, j);
		if (o.type == OP_FSYNC || o.type == OP_FDSYNC || o.type == OP_REPLACE) {
			snprintf(line, sizeof(line), "S %d %" PRIu64 "\n", o.file, j);
			say(line);
		}
	}
}

/* ---- 3. check ------------------------------------------------------------------------------ */

struct later {
	struct op *ops; /* ops on one file after its last sync, in order */
	uint64_t *idx;
	size_t n;
};

/* May a later op have left @v at byte @i? */
static bool later_allows(const struct later *l, uint64_t i, uint8_t v)
{
	for (size_t k = 0; k < l->n; k++) {
		const struct op *o = &l->ops[k];

		switch (o->type) {
		case OP_PWRITE:
		case OP_APPEND:
			if (i >= o->off && i < o->off + o->len && v == pattern(l->idx[k], i))
				return true;
			break;
		case OP_TRUNC:
			if (i >= o->off && v == 0)
				return true;
			break;
		case OP_PUNCH:
			if (i >= o->off && i < o->off + o->len && v == 0)
				return true;
			break;
		default:
			break;
		}
	}
	return false;
}

/*
 * Bytes (and size) in which the file differs from the writer's last state: unsynced work the
 * cut dropped.  The harness wants some in a run, or the cut dropped nothing and tested nothing.
 */
static uint64_t dropped;

static int check_state(const char *p, const struct mfile *snap, const struct later *l,
		       const uint8_t *got, uint64_t n);

/*
 * A cut inside a replace (the last op began, its "S" never came) leaves FILE as either the new
 * file (fsynced before the rename: exactly the replace's content) or the old one.
 */
static bool replace_pending(const struct later *l)
{
	return l->n && l->ops[l->n - 1].type == OP_REPLACE;
}

static int check_file(const char *dir, int f, const struct mfile *snap, struct later *l,
		      bool synced)
{
	static uint8_t got[MAX_SIZE + 1];
	char p[PATH_MAX];
	struct stat st;
	ssize_t n;
	int fd;

	for (size_t k = 0; k + 1 < l->n; k++)
		if (l->ops[k].type == OP_REPLACE) {
			fprintf(stderr,
				"crashw check: replace op %" PRIu64 " without its sync line\n",
				l->idx[k]);
			return 1;
		}
	file_path(p, sizeof(p), dir, round_arg, f);
	fd = open(p, O_RDONLY);
	if (fd < 0) {
		if (errno == ENOENT && !synced)
			return 0; /* killed before it was created */
		fprintf(stderr, "open %s: %s\n", p, strerror(errno));
		return 1;
	}
	if (fstat(fd, &st) < 0) {
		fprintf(stderr, "fstat %s: %s\n", p, strerror(errno));
		close(fd);
		return 1;
	}
	n = st.st_size > MAX_SIZE ? -1 : pread(fd, got, MAX_SIZE + 1, 0);
	close(fd);
	if (n != st.st_size) {
		fprintf(stderr, "%s: read %zd bytes (%s), size %lld\n", p, n,
			n < 0 ? strerror(errno) : "short", (long long)st.st_size);
		return 1;
	}
	dropped += (uint64_t)n > model[f].size ? (uint64_t)n - model[f].size
					       : model[f].size - (uint64_t)n;
	for (uint64_t i = 0; i < (uint64_t)n; i++)
		dropped += i < model[f].size && got[i] != model[f].data[i];
	if (replace_pending(l)) {
		/* the new file: model[f] is the state after the replace, the last op */
		if ((uint64_t)n == model[f].size && memcmp(got, model[f].data, (size_t)n) == 0)
			return 0;
		l->n--; /* or the old file, as if the replace had not begun */
	}
	return check_state(p, snap, l, got, (uint64_t)n);
}

/* The file @p read as @got (@n bytes) against its synced state and the ops after it. */
static int check_state(const char *p, const struct mfile *snap, const struct later *l,
		       const uint8_t *got, uint64_t n)
{
	uint64_t lo = snap->size, hi = snap->size;

	for (size_t k = 0; k < l->n; k++) {
		if (l->ops[k].type == OP_TRUNC && l->ops[k].off < lo)
			lo = l->ops[k].off;
		if (l->ops[k].size_after > hi)
			hi = l->ops[k].size_after;
	}
	if (n < lo || n > hi) {
		fprintf(stderr,
			"%s: size %" PRIu64 ", synced size %" PRIu64 ", allowed [%" PRIu64
			", %" PRIu64 "] (%zu later ops)\n",
			p, n, snap->size, lo, hi, l->n);
		return 1;
	}
	for (uint64_t i = 0; i < n; i++) {
		uint8_t want = i < snap->size ? snap->data[i] : 0;

		if (got[i] != want && !later_allows(l, i, got[i])) {
			fprintf(stderr,
				"%s: byte %" PRIu64 " is 0x%02x, synced 0x%02x, and no later "
				"op wrote that (synced size %" PRIu64 ", size %" PRIu64
				", %zu later ops)\n",
				p, i, got[i], want, snap->size, n, l->n);
			return 1;
		}
	}
	return 0;
}

static int do_check(const char *dir, uint64_t last, const int64_t sync[NF])
{
	struct mfile snap[NF];
	struct later l[NF];
	int bad = 0;

	for (int f = 0; f < NF; f++) {
		snap[f].data = calloc(1, MAX_SIZE);
		snap[f].size = 0;
		l[f].ops = calloc(last + 1, sizeof(*l[f].ops));
		l[f].idx = calloc(last + 1, sizeof(*l[f].idx));
		l[f].n = 0;
		if (!snap[f].data || !l[f].ops || !l[f].idx) {
			fprintf(stderr, "crashw: out of memory\n");
			return 2;
		}
	}
	for (uint64_t j = 0; j <= last; j++) {
		struct op o = next_op();
		int f = o.file;

		apply(&o, j);
		if ((int64_t)j == sync[f]) {
			memcpy(snap[f].data, model[f].data, MAX_SIZE);
			snap[f].size = model[f].size;
			l[f].n = 0;
		} else if ((int64_t)j > sync[f]) {
			l[f].ops[l[f].n] = o;
			l[f].idx[l[f].n++] = j;
		}
	}
	for (int f = 0; f < NF; f++)
		bad |= check_file(dir, f, &snap[f], &l[f], sync[f] >= 0);
	printf("dropped %" PRIu64 "\n", dropped);
	if (bad)
		fprintf(stderr,
			"crashw check: seed %" PRIu64 " round %" PRIu64 " last op %" PRIu64
			": synced data lost\n",
			seed_arg, round_arg, last);
	for (int f = 0; f < NF; f++) {
		free(snap[f].data);
		free(l[f].ops);
		free(l[f].idx);
	}
	return bad;
}

/* ---- 4. main ------------------------------------------------------------------------------- */

static uint64_t num(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 0);

	if (*end) {
		fprintf(stderr, "crashw: not a number: %s\n", s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "init") == 0) {
		char p[PATH_MAX];
		int fd;

		snprintf(p, sizeof(p), "%s/init", argv[2]);
		fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || write(fd, "init\n", 5) != 5 || fsync(fd) < 0 || close(fd) < 0) {
			fprintf(stderr, "crashw init: %s: %s\n", p, strerror(errno));
			return 2;
		}
		return 0;
	}
	if (argc == 5 && strcmp(argv[1], "write") == 0) {
		seed_arg = num(argv[3]);
		round_arg = num(argv[4]);
		seed_rng();
		model_init();
		return do_write(argv[2]);
	}
	if (argc == 6 + NF && strcmp(argv[1], "check") == 0) {
		int64_t sync[NF];

		seed_arg = num(argv[3]);
		round_arg = num(argv[4]);
		for (int f = 0; f < NF; f++)
			sync[f] = strcmp(argv[6 + f], "-1") == 0 ? -1 : (int64_t)num(argv[6 + f]);
		seed_rng();
		model_init();
		return do_check(argv[2], num(argv[5]), sync);
	}
	fprintf(stderr, "usage: crashw init DIR | write DIR SEED ROUND | check DIR SEED ROUND "
			"LAST S0 S1 S2 S3\n");
	return 2;
}
