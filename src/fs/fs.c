/* SPDX-License-Identifier: MIT */
/*
 * The file layer's mount and file objects (zvfs/fs.h).
 *
 * Map:
 *   1. helpers          little-endian xattrs, random numbers, UUID text
 *   2. placeholder xattr  format and parse "zvfs1 <uuid> <blob> <gen>"
 *   3. mount / unmount  device claim, load or format, store identity
 *   4. files table      blob id -> struct zvfs_file, LRU of cached files
 *   5. create / open / close / remove / set_ino
 *   6. stats
 *
 * The data path lives in file.c, the page frames in cache.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "blob/blob_internal.h" /* zvfs_bs_abandon() */
#include "fs/fs_internal.h"
#include "util/log.h"

/* ---- 1. helpers ---------------------------------------------------------------- */

static void put_le64(uint8_t *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *b)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static int random_bytes(void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = getrandom(p, len, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* A non-zero random generation. */
static int random_gen(uint64_t *gen)
{
	int rc;

	do {
		rc = random_bytes(gen, sizeof(*gen));
	} while (rc == 0 && *gen == 0);
	return rc;
}

static int make_uuid(char out[37])
{
	uint8_t u[16];
	int rc = random_bytes(u, sizeof(u));

	if (rc < 0)
		return rc;
	u[6] = (uint8_t)((u[6] & 0x0f) | 0x40); /* version 4 */
	u[8] = (uint8_t)((u[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
		 u[13], u[14], u[15]);
	return 0;
}

static bool is_uuid(const char *s)
{
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		char ch = s[i];

		if (dash ? ch != '-' : !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
			return false;
	}
	return true;
}

void zvfs_fs_short_id(const char *uuid, char sid[17])
{
	size_t n = 0;

	for (const char *p = uuid; *p && n < 16; p++)
		if (*p != '-')
			sid[n++] = *p;
	sid[n] = '\0';
}

static int get_u64_xattr(struct zvfs_blob *blob, const char *name, uint64_t *v)
{
	uint8_t b[8];
	int rc = zvfs_blob_get_xattr(blob, name, b, sizeof(b), false);

	if (rc < 0)
		return rc;
	if (rc != 8)
		return -EUCLEAN;
	*v = get_le64(b);
	return 0;
}

static int get_ino_xattr(struct zvfs_blob *blob, struct zvfs_fs_ino *ino)
{
	uint8_t b[16];
	int rc = zvfs_blob_get_xattr(blob, FS_XATTR_INO, b, sizeof(b), false);

	if (rc < 0)
		return rc;
	if (rc != 16)
		return -EUCLEAN;
	ino->dev = get_le64(b);
	ino->ino = get_le64(b + 8);
	return 0;
}

int fs_set_size_xattr(struct zvfs_file *f, uint64_t size)
{
	uint8_t b[8];
	int rc;

	put_le64(b, size);
	rc = zvfs_blob_set_xattr(f->blob, FS_XATTR_SIZE, b, sizeof(b), false);
	if (rc == 0)
		f->disk_size = size;
	f->md_dirty = true;
	return rc;
}

/* ---- 2. placeholder xattr ------------------------------------------------------ */

/*
 * "zvfs1 " + store id (the UUID's first 16 hex digits) + " " + blob id (16 hex) + " " +
 * generation (16 hex): 56 bytes.  Short enough that ext4 keeps the xattr inside a 256-byte
 * inode (up to 60 bytes of value with this name), so a placeholder owns no block at all
 * (st_blocks == 0); the full UUID costs every file an external xattr block.
 */
#define XATTR_LEN (6 + 16 + 1 + 16 + 1 + 16)

static int parse_hex64(const char *s, uint64_t *v)
{
	uint64_t x = 0;

	for (int i = 0; i < 16; i++) {
		char ch = s[i];
		unsigned d;

		if (ch >= '0' && ch <= '9')
			d = (unsigned)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			d = (unsigned)(ch - 'a' + 10);
		else if (ch >= 'A' && ch <= 'F')
			d = (unsigned)(ch - 'A' + 10);
		else
			return -EUCLEAN;
		x = x << 4 | d;
	}
	*v = x;
	return 0;
}

int zvfs_fs_xattr_parse(const void *xattr, size_t xlen, char store_id[37], zvfs_blob_id *blob_id,
			uint64_t *gen)
{
	const char *s = xattr;

	/* tolerate a trailing NUL from tools that store C strings */
	if (xattr && xlen == XATTR_LEN + 1 && s[XATTR_LEN] == '\0')
		xlen--;
	if (!xattr || xlen != XATTR_LEN || memcmp(s, "zvfs1 ", 6) || s[22] != ' ' || s[39] != ' ')
		return -EUCLEAN;
	uint64_t store;

	if (parse_hex64(s + 6, &store) || parse_hex64(s + 23, blob_id) || parse_hex64(s + 40, gen))
		return -EUCLEAN;
	memcpy(store_id, s + 6, 16);
	store_id[16] = '\0';
	return 0;
}

static size_t xattr_format(const struct zvfs_fs *fs, zvfs_blob_id id, uint64_t gen, char *out)
{
	char tmp[XATTR_LEN + 1];

	snprintf(tmp, sizeof(tmp), "zvfs1 %s %016" PRIx64 " %016" PRIx64, fs->sid, id, gen);
	memcpy(out, tmp, XATTR_LEN);
	return XATTR_LEN;
}

/* ---- 3. mount / unmount ---------------------------------------------------------- */

void zvfs_fs_opts_init(struct zvfs_fs_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
}

static void log_holder(const char *spec, pid_t pid)
{
	char path[64], comm[64] = "?";
	FILE *f;

	if (pid > 0) {
		snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
		f = fopen(path, "re");
		if (f) {
			if (fgets(comm, sizeof(comm), f))
				comm[strcspn(comm, "\n")] = '\0';
			fclose(f);
		}
	}
	ZVFS_ERR("store %s is in use by pid %d (%s)", spec, (int)pid, comm);
}

/* True when the first 4 KiB of the device are zero (nothing we would overwrite). */
static int device_blank(struct zvfs_bdev *bdev, bool *blank)
{
	const struct zvfs_bdev_geometry *g = zvfs_bdev_get_geometry(bdev);
	size_t len = g->block_size > 4096 ? g->block_size : 4096;
	uint8_t *buf = zvfs_bdev_buf_alloc(bdev, len);
	int rc;

	if (!buf)
		return -ENOMEM;
	rc = zvfs_bdev_read_sync(bdev, buf, len, 0);
	if (rc == 0) {
		*blank = true;
		for (size_t i = 0; i < 4096; i++) {
			if (buf[i]) {
				*blank = false;
				break;
			}
		}
	}
	zvfs_bdev_buf_free(bdev, buf);
	return rc;
}

/* Read the store's UUID from the super blob, creating both if missing. */
static int store_identity(struct zvfs_fs *fs, const char *spec)
{
	zvfs_blob_id sid = zvfs_bs_get_super(fs->bs);
	struct zvfs_blob *sb;
	char buf[40];
	int rc;

	if (sid == ZVFS_BLOBID_INVALID) {
		struct zvfs_blob_xattr xa = {
			.name = FS_XATTR_UUID, .value = fs->uuid, .value_len = 36};
		struct zvfs_blob_opts bo;

		if (fs->read_only) {
			ZVFS_ERR("store %s has no identity and is mounted read-only", spec);
			return -EROFS;
		}
		rc = make_uuid(fs->uuid);
		if (rc < 0)
			return rc;
		zvfs_blob_opts_init(&bo);
		bo.thin = true;
		bo.xattrs = &xa;
		bo.nxattrs = 1;
		rc = zvfs_blob_create(fs->bs, &bo, &sid);
		if (rc == 0)
			rc = zvfs_bs_set_super(fs->bs, sid);
		if (rc < 0)
			ZVFS_ERR("store %s: cannot create the super blob: %s", spec, strerror(-rc));
		else
			zvfs_fs_short_id(fs->uuid, fs->sid);
		return rc;
	}
	rc = zvfs_blob_open(fs->bs, sid, &sb);
	if (rc < 0) {
		ZVFS_ERR("store %s: cannot open the super blob: %s", spec, strerror(-rc));
		return rc;
	}
	rc = zvfs_blob_get_xattr(sb, FS_XATTR_UUID, buf, sizeof(buf), false);
	zvfs_blob_close(sb);
	if (rc != 36 || !is_uuid(buf)) {
		ZVFS_ERR("store %s: super blob has no valid %s", spec, FS_XATTR_UUID);
		return -EUCLEAN;
	}
	memcpy(fs->uuid, buf, 36);
	fs->uuid[36] = '\0';
	zvfs_fs_short_id(fs->uuid, fs->sid);
	return 0;
}

int zvfs_fs_mount(const struct zvfs_fs_opts *opts, struct zvfs_fs **fsp)
{
	struct zvfs_bs_opts bo;
	struct zvfs_bs_stats st;
	struct zvfs_fs *fs;
	pid_t holder = 0;
	bool blank = false;
	int rc;

	*fsp = NULL;
	if (!opts || !opts->device)
		return -EINVAL;
	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->read_only = opts->read_only;
	rc = zvfs_bdev_open(opts->device, &fs->bdev, NULL, 0);
	if (rc < 0)
		goto err_free;
	rc = zvfs_bdev_claim(fs->bdev, &holder);
	if (rc == -EBUSY)
		log_holder(opts->device, holder);
	else if (rc < 0)
		ZVFS_ERR("store %s: cannot claim: %s", opts->device, strerror(-rc));
	if (rc < 0)
		goto err_close_bdev;

	/*
	 * A blank device (first 4 KiB zero) holds no store: format it when
	 * asked, without a load that would only log the missing signature.
	 */
	rc = device_blank(fs->bdev, &blank);
	if (rc < 0)
		goto err_close_bdev;
	if (blank && opts->format && !opts->read_only) {
		zvfs_bs_opts_init(&bo);
		bo.cluster_size = opts->cluster_size ? opts->cluster_size : 128u << 10;
		bo.num_md_pages = UINT32_MAX;
		rc = zvfs_bs_init(fs->bdev, &bo, &fs->bs);
		if (rc < 0) {
			ZVFS_ERR("store %s: format failed: %s", opts->device, strerror(-rc));
			goto err_close_bdev;
		}
	} else if (blank) {
		ZVFS_ERR("store %s: no store on the device (format not requested)", opts->device);
		rc = -EILSEQ;
		goto err_close_bdev;
	} else {
		zvfs_bs_opts_init(&bo);
		memset(bo.bstype, 0, sizeof(bo.bstype)); /* load: any type */
		bo.read_only = opts->read_only;
		rc = zvfs_bs_load(fs->bdev, &bo, &fs->bs);
		if (rc == -EILSEQ) {
			ZVFS_ERR("store %s: the device holds something that is not a ZVFS store",
				 opts->device);
			goto err_close_bdev;
		} else if (rc < 0) {
			ZVFS_ERR("store %s: load failed: %s", opts->device, strerror(-rc));
			goto err_close_bdev;
		}
	}

	rc = zvfs_bs_get_stats(fs->bs, &st);
	if (rc < 0)
		goto err_unload;
	fs->io_unit = st.io_unit_size;
	fs->cl_size = st.cluster_size;
	fs->loaded_dirty = st.loaded_dirty;
	fs->psz = st.io_unit_size > 4096 ? st.io_unit_size : 4096;
	fs->dio_align = zvfs_bdev_get_geometry(fs->bdev)->block_size;
	fs->buf_align = zvfs_bdev_get_geometry(fs->bdev)->buf_align;
	fs->prep_ahead = zvfs_bdev_get_geometry(fs->bdev)->alloc_on_write;
	if (fs->cl_size % fs->psz) {
		ZVFS_ERR("store %s: cluster size %" PRIu64 " is not a multiple of %u", opts->device,
			 fs->cl_size, fs->psz);
		rc = -EINVAL;
		goto err_unload;
	}
	rc = store_identity(fs, opts->device);
	if (rc < 0)
		goto err_unload;

	fs->table_size = 1024;
	fs->table = calloc(fs->table_size, sizeof(*fs->table));
	if (!fs->table) {
		rc = -ENOMEM;
		goto err_unload;
	}
	if (pthread_mutex_init(&fs->lock, NULL)) {
		rc = -ENOMEM;
		goto err_free_table;
	}
	rc = fs_cache_init(fs, opts->cache_size ? opts->cache_size : 256ull << 20);
	if (rc < 0)
		goto err_destroy_lock;
	*fsp = fs;
	return 0;

err_destroy_lock:
	pthread_mutex_destroy(&fs->lock);
err_free_table:
	free(fs->table);
err_unload:
	zvfs_bs_unload(fs->bs);
err_close_bdev:
	zvfs_bdev_close(fs->bdev);
err_free:
	free(fs);
	return rc;
}

/* ---- 4. files table ---------------------------------------------------------------- */

static uint32_t table_slot(const struct zvfs_fs *fs, zvfs_blob_id id)
{
	return (uint32_t)((id * 0x9E3779B97F4A7C15ull) >> 32) & (fs->table_size - 1);
}

static struct zvfs_file *table_find(struct zvfs_fs *fs, zvfs_blob_id id)
{
	struct zvfs_file *f = fs->table[table_slot(fs, id)];

	while (f && f->id != id)
		f = f->tnext;
	return f;
}

static void table_grow(struct zvfs_fs *fs)
{
	uint32_t nsize = fs->table_size * 2, osize = fs->table_size;
	struct zvfs_file **nt = calloc(nsize, sizeof(*nt)), **old = fs->table;

	if (!nt)
		return; /* longer chains, still correct */
	fs->table = nt;
	fs->table_size = nsize;
	for (uint32_t i = 0; i < osize; i++) {
		struct zvfs_file *f = old[i], *n;

		for (; f; f = n) {
			uint32_t s = table_slot(fs, f->id);

			n = f->tnext;
			f->tnext = nt[s];
			nt[s] = f;
		}
	}
	free(old);
}

static void table_insert(struct zvfs_fs *fs, struct zvfs_file *f)
{
	uint32_t s;

	if (fs->nfiles >= fs->table_size)
		table_grow(fs);
	s = table_slot(fs, f->id);
	f->tnext = fs->table[s];
	fs->table[s] = f;
	fs->nfiles++;
}

static void table_remove(struct zvfs_fs *fs, struct zvfs_file *f)
{
	struct zvfs_file **pp = &fs->table[table_slot(fs, f->id)];

	while (*pp && *pp != f)
		pp = &(*pp)->tnext;
	if (*pp) {
		*pp = f->tnext;
		fs->nfiles--;
	}
}

static void lru_remove(struct zvfs_fs *fs, struct zvfs_file *f)
{
	if (!f->in_lru)
		return;
	if (f->lru_prev)
		f->lru_prev->lru_next = f->lru_next;
	else
		fs->lru_head = f->lru_next;
	if (f->lru_next)
		f->lru_next->lru_prev = f->lru_prev;
	else
		fs->lru_tail = f->lru_prev;
	f->lru_prev = f->lru_next = NULL;
	f->in_lru = false;
	fs->nlru--;
}

static void lru_append(struct zvfs_fs *fs, struct zvfs_file *f)
{
	f->lru_next = NULL;
	f->lru_prev = fs->lru_tail;
	if (fs->lru_tail)
		fs->lru_tail->lru_next = f;
	else
		fs->lru_head = f;
	fs->lru_tail = f;
	f->in_lru = true;
	fs->nlru++;
}

static int file_new(struct zvfs_fs *fs, struct zvfs_blob *blob, zvfs_blob_id id,
		    struct zvfs_file **fp)
{
	struct zvfs_file *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	if (fs_file_index_init(f) < 0) {
		free(f);
		return -ENOMEM;
	}
	if (pthread_mutex_init(&f->mu, NULL)) {
		fs_file_index_fini(f);
		free(f);
		return -ENOMEM;
	}
	if (pthread_cond_init(&f->dio_cv, NULL)) {
		pthread_mutex_destroy(&f->mu);
		fs_file_index_fini(f);
		free(f);
		return -ENOMEM;
	}
	if (pthread_mutex_init(&f->mirror_mu, NULL)) {
		pthread_cond_destroy(&f->dio_cv);
		pthread_mutex_destroy(&f->mu);
		fs_file_index_fini(f);
		free(f);
		return -ENOMEM;
	}
	f->fs = fs;
	f->blob = blob;
	f->id = id;
	f->ncl = zvfs_blob_get_num_clusters(blob);
	f->alloc_synced = zvfs_blob_get_num_allocated_clusters(blob);
	*fp = f;
	return 0;
}

/*
 * Tear down a file that is out of the table: write back and persist its
 * size (unless it is going to be deleted), free its pages, close the blob,
 * delete it if unlinked.  Returns the first error.
 */
static int file_destroy(struct zvfs_fs *fs, struct zvfs_file *f, bool del)
{
	int rc = 0, rc2;

	pthread_mutex_lock(&f->mu);
	if (!del && !fs->read_only) {
		fs_file_trim_prep(f);
		rc = fs_file_flush_locked(f);
	}
	fs_file_drop_all(f);
	pthread_mutex_unlock(&f->mu);
	fs->old_hits += atomic_load(&f->st_hits);
	fs->old_misses += atomic_load(&f->st_misses);
	fs->old_ra += atomic_load(&f->st_ra);
	fs->old_wb += atomic_load(&f->st_wb);
	rc2 = zvfs_blob_close(f->blob);
	if (rc2 < 0 && !del && rc == 0)
		rc = rc2;
	if (del) {
		rc2 = zvfs_bs_delete_blob(fs->bs, f->id);
		if (rc2 < 0) {
			ZVFS_ERR("cannot delete blob %016" PRIx64 ": %s", f->id, strerror(-rc2));
			if (rc == 0)
				rc = rc2;
		}
	}
	pthread_cond_destroy(&f->dio_cv);
	pthread_mutex_destroy(&f->mu);
	pthread_mutex_destroy(&f->mirror_mu);
	free(f->mirrors); /* the daemon removed its mirrors when it closed its handles */
	fs_file_index_fini(f);
	free(f);
	return rc;
}

/* Keep the number of cached (handle-less) files bounded; fs->lock held. */
static void lru_trim(struct zvfs_fs *fs)
{
	while (fs->nlru > FS_MAX_CACHED_FILES) {
		struct zvfs_file *f = fs->lru_head;
		zvfs_blob_id id = f->id;
		int rc;

		lru_remove(fs, f);
		table_remove(fs, f);
		rc = file_destroy(fs, f, false);
		if (rc < 0)
			ZVFS_ERR("evicting cached file %016" PRIx64 ": %s", id, strerror(-rc));
	}
}

int zvfs_fs_unmount(struct zvfs_fs *fs)
{
	int rc = 0, rc2;

	if (!fs)
		return 0;
	pthread_mutex_lock(&fs->lock);
	for (uint32_t i = 0; i < fs->table_size; i++) {
		struct zvfs_file *f;

		while ((f = fs->table[i]) != NULL) {
			fs->table[i] = f->tnext;
			fs->nfiles--;
			rc2 = file_destroy(fs, f, f->unlinked && !fs->read_only);
			if (rc2 < 0 && rc == 0)
				rc = rc2;
		}
	}
	fs->lru_head = fs->lru_tail = NULL;
	fs->nlru = 0;
	pthread_mutex_unlock(&fs->lock);
	fs_cache_fini(fs);
	rc2 = zvfs_bs_unload(fs->bs);
	if (rc2 < 0) {
		/*
		 * The store could not be written (device gone, power cut): drop
		 * it without writing, as a crash would; the next load recovers.
		 */
		ZVFS_ERR("unload: %s", strerror(-rc2));
		zvfs_bs_abandon(fs->bs);
		if (rc == 0)
			rc = rc2;
	}
	rc2 = zvfs_bdev_close(fs->bdev);
	if (rc2 < 0 && rc == 0)
		rc = rc2;
	pthread_mutex_destroy(&fs->lock);
	free(fs->table);
	free(fs);
	return rc;
}

void zvfs_fs_forget(struct zvfs_fs *fs)
{
	/* The parent owns the store; the child only lets go of the pointer. */
	(void)fs;
}

const char *zvfs_fs_store_id(const struct zvfs_fs *fs)
{
	return fs->uuid;
}

struct zvfs_bs *zvfs_fs_get_bs(const struct zvfs_fs *fs)
{
	return fs->bs;
}

int zvfs_fs_sync_all(struct zvfs_fs *fs)
{
	int rc = 0, rc2;

	if (fs->read_only)
		return 0;
	pthread_mutex_lock(&fs->lock);
	for (uint32_t i = 0; i < fs->table_size; i++) {
		for (struct zvfs_file *f = fs->table[i]; f; f = f->tnext) {
			rc2 = zvfs_file_sync(f, ZVFS_SYNC_NOFLUSH);
			if (rc2 < 0 && rc == 0)
				rc = rc2;
			/* metadata only where it changed: each sync_md costs a flush */
			pthread_mutex_lock(&f->mu);
			rc2 = fs_md_needed(f) ? fs_persist_md(f) : 0;
			pthread_mutex_unlock(&f->mu);
			if (rc2 < 0 && rc == 0)
				rc = rc2;
		}
	}
	pthread_mutex_unlock(&fs->lock);
	/* data of files whose metadata did not change */
	rc2 = zvfs_bs_flush(fs->bs);
	if (rc2 < 0 && rc == 0)
		rc = rc2;
	return rc;
}

/* ---- 5. create / open / close / remove ---------------------------------------------- */

int zvfs_fs_file_create(struct zvfs_fs *fs, const struct zvfs_fs_ino *ino, struct zvfs_file **filep,
			char *xattr, size_t *xlen)
{
	uint8_t sz[8], gb[8], ib[16];
	struct zvfs_blob_xattr xa[3] = {
		{.name = FS_XATTR_SIZE, .value = sz, .value_len = 8},
		{.name = FS_XATTR_GEN, .value = gb, .value_len = 8},
		{.name = FS_XATTR_INO, .value = ib, .value_len = 16},
	};
	struct zvfs_blob_opts bo;
	struct zvfs_blob *blob;
	struct zvfs_file *f;
	zvfs_blob_id id;
	uint64_t gen;
	int rc;

	*filep = NULL;
	if (fs->read_only)
		return -EROFS;
	if (!ino || !xattr || !xlen)
		return -EINVAL;
	rc = random_gen(&gen);
	if (rc < 0)
		return rc;
	put_le64(sz, 0);
	put_le64(gb, gen);
	put_le64(ib, ino->dev);
	put_le64(ib + 8, ino->ino);
	zvfs_blob_opts_init(&bo);
	bo.thin = true;
	bo.num_clusters = 0;
	bo.xattrs = xa;
	bo.nxattrs = 3;
	rc = zvfs_blob_create(fs->bs, &bo, &id);
	if (rc < 0) {
		ZVFS_ERR("create: cannot create a blob: %s", strerror(-rc));
		return rc;
	}
	rc = zvfs_blob_open(fs->bs, id, &blob);
	if (rc < 0)
		goto err_delete;
	rc = file_new(fs, blob, id, &f);
	if (rc < 0) {
		zvfs_blob_close(blob);
		goto err_delete;
	}
	f->gen = gen;
	f->ino = *ino;
	f->handles = 1;
	pthread_mutex_lock(&fs->lock);
	table_insert(fs, f);
	fs->nopen++;
	pthread_mutex_unlock(&fs->lock);
	*xlen = xattr_format(fs, id, gen, xattr);
	*filep = f;
	return 0;

err_delete:
	ZVFS_ERR("create: blob %016" PRIx64 ": %s", id, strerror(-rc));
	zvfs_bs_delete_blob(fs->bs, id);
	return rc;
}

/* Parse and check the store; -EXDEV for another store's file. */
static int parse_for(struct zvfs_fs *fs, const void *xattr, size_t xlen, zvfs_blob_id *id,
		     uint64_t *gen)
{
	char sid[37];
	int rc = zvfs_fs_xattr_parse(xattr, xlen, sid, id, gen);

	if (rc < 0)
		return rc;
	if (strcmp(sid, fs->sid))
		return -EXDEV;
	return 0;
}

static bool ino_eq(const struct zvfs_fs_ino *a, const struct zvfs_fs_ino *b)
{
	return a->dev == b->dev && a->ino == b->ino;
}

/*
 * Open blob id and check it against gen and ino; on success the blob is
 * open and its size in *size.  -ESTALE on any mismatch or a missing blob.
 */
static int blob_open_checked(struct zvfs_fs *fs, zvfs_blob_id id, uint64_t gen,
			     const struct zvfs_fs_ino *ino, struct zvfs_blob **bp, uint64_t *size)
{
	struct zvfs_fs_ino bino;
	uint64_t bgen;
	int rc;

	rc = zvfs_blob_open(fs->bs, id, bp);
	if (rc == -ENOENT)
		return -ESTALE;
	if (rc < 0)
		return rc;
	if (get_u64_xattr(*bp, FS_XATTR_GEN, &bgen) < 0 || bgen != gen ||
	    get_ino_xattr(*bp, &bino) < 0 || !ino_eq(&bino, ino)) {
		rc = -ESTALE;
		goto err_close;
	}
	rc = get_u64_xattr(*bp, FS_XATTR_SIZE, size);
	if (rc < 0 || *size > ZVFS_FS_MAX_SIZE) {
		ZVFS_ERR("blob %016" PRIx64 ": bad %s", id, FS_XATTR_SIZE);
		rc = -EUCLEAN;
		goto err_close;
	}
	return 0;

err_close:
	zvfs_blob_close(*bp);
	*bp = NULL;
	return rc;
}

int zvfs_fs_file_open(struct zvfs_fs *fs, const void *xattr, size_t xlen,
		      const struct zvfs_fs_ino *ino, struct zvfs_file **filep)
{
	struct zvfs_blob *blob;
	struct zvfs_file *f;
	zvfs_blob_id id;
	uint64_t gen, size;
	bool fresh = false;
	int rc;

	*filep = NULL;
	rc = parse_for(fs, xattr, xlen, &id, &gen);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&fs->lock);
	f = table_find(fs, id);
	if (f) {
		if (f->gen != gen || !ino_eq(&f->ino, ino)) {
			rc = -ESTALE;
			goto out_unlock;
		}
		if (f->handles++ == 0) {
			lru_remove(fs, f);
			fs->nopen++;
		}
		*filep = f;
		goto out_unlock;
	}
	/* Blob open under fs->lock: two opens of one blob must not race to insert. */
	rc = blob_open_checked(fs, id, gen, ino, &blob, &size);
	if (rc < 0)
		goto out_unlock;
	rc = file_new(fs, blob, id, &f);
	if (rc < 0) {
		zvfs_blob_close(blob);
		goto out_unlock;
	}
	f->gen = gen;
	f->ino = *ino;
	f->handles = 1;
	atomic_store(&f->size, size);
	f->disk_size = size;
	/* past the size the device holds zeroes (scrubbed after a crash, below) */
	f->dev_end = (size + fs->psz - 1) / fs->psz * fs->psz;
	table_insert(fs, f);
	fs->nopen++;
	*filep = f;
	fresh = true;
out_unlock:
	pthread_mutex_unlock(&fs->lock);
	/* After a crash, bytes past the recorded size may hold data written back
	 * before the size was: zero them so a later extension reads zeroes. */
	if (fresh && fs->loaded_dirty && !fs->read_only)
		fs_file_scrub_tail(f);
	return rc;
}

int zvfs_file_close(struct zvfs_file *file)
{
	struct zvfs_fs *fs = file->fs;
	int rc = 0;

	pthread_mutex_lock(&fs->lock);
	if (file->handles == 0) {
		pthread_mutex_unlock(&fs->lock);
		return -EINVAL;
	}
	if (--file->handles == 0) {
		fs->nopen--;
		if (file->unlinked) {
			table_remove(fs, file);
			rc = file_destroy(fs, file, true);
		} else {
			lru_append(fs, file);
			lru_trim(fs);
		}
	}
	pthread_mutex_unlock(&fs->lock);
	return rc;
}

static int file_remove(struct zvfs_fs *fs, const void *xattr, size_t xlen,
		       const struct zvfs_fs_ino *ino, bool open_elsewhere);

int zvfs_fs_file_remove(struct zvfs_fs *fs, const void *xattr, size_t xlen,
			const struct zvfs_fs_ino *ino)
{
	return file_remove(fs, xattr, xlen, ino, false);
}

int zvfs_fs_file_remove_shared(struct zvfs_fs *fs, const void *xattr, size_t xlen,
			       const struct zvfs_fs_ino *ino)
{
	return file_remove(fs, xattr, xlen, ino, true);
}

void zvfs_file_set_unlinked(struct zvfs_file *file, bool unlinked)
{
	pthread_mutex_lock(&file->fs->lock);
	file->unlinked = unlinked;
	pthread_mutex_unlock(&file->fs->lock);
}

static int file_remove(struct zvfs_fs *fs, const void *xattr, size_t xlen,
		       const struct zvfs_fs_ino *ino, bool open_elsewhere)
{
	struct zvfs_blob *blob;
	struct zvfs_file *f;
	zvfs_blob_id id;
	uint64_t gen, size;
	int rc;

	rc = parse_for(fs, xattr, xlen, &id, &gen);
	if (rc < 0)
		return rc;
	if (fs->read_only)
		return -EROFS;
	pthread_mutex_lock(&fs->lock);
	f = table_find(fs, id);
	if (f) {
		if (f->gen != gen || !ino_eq(&f->ino, ino)) {
			rc = -ESTALE;
		} else if (f->handles) {
			f->unlinked = true;
		} else if (!open_elsewhere) {
			lru_remove(fs, f);
			table_remove(fs, f);
			rc = file_destroy(fs, f, true);
		}
		goto out_unlock;
	}
	if (open_elsewhere)
		goto out_unlock; /* the last close elsewhere deletes it */
	rc = blob_open_checked(fs, id, gen, ino, &blob, &size);
	if (rc < 0)
		goto out_unlock;
	zvfs_blob_close(blob);
	rc = zvfs_bs_delete_blob(fs->bs, id);
	if (rc < 0)
		ZVFS_ERR("remove: cannot delete blob %016" PRIx64 ": %s", id, strerror(-rc));
out_unlock:
	pthread_mutex_unlock(&fs->lock);
	return rc;
}

int zvfs_file_set_ino(struct zvfs_file *file, const struct zvfs_fs_ino *ino)
{
	struct zvfs_fs *fs = file->fs;
	uint8_t ib[16];
	int rc;

	if (fs->read_only)
		return -EROFS;
	put_le64(ib, ino->dev);
	put_le64(ib + 8, ino->ino);
	pthread_mutex_lock(&fs->lock);
	pthread_mutex_lock(&file->mu);
	rc = zvfs_blob_set_xattr(file->blob, FS_XATTR_INO, ib, sizeof(ib), false);
	if (rc == 0)
		rc = fs_persist_md(file);
	if (rc == 0)
		file->ino = *ino;
	pthread_mutex_unlock(&file->mu);
	pthread_mutex_unlock(&fs->lock);
	return rc;
}

/* ---- 6. stats ------------------------------------------------------------------------ */

int zvfs_fs_get_stats(struct zvfs_fs *fs, struct zvfs_fs_stats *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&fs->lock);
	st->files_open = fs->nopen;
	st->files_cached = fs->nfiles - fs->nopen;
	st->cache_hits = fs->old_hits;
	st->cache_misses = fs->old_misses;
	st->readahead = fs->old_ra;
	st->writeback = fs->old_wb;
	for (uint32_t i = 0; i < fs->table_size; i++) {
		for (struct zvfs_file *f = fs->table[i]; f; f = f->tnext) {
			st->cache_hits += atomic_load_explicit(&f->st_hits, memory_order_relaxed);
			st->cache_misses +=
				atomic_load_explicit(&f->st_misses, memory_order_relaxed);
			st->readahead += atomic_load_explicit(&f->st_ra, memory_order_relaxed);
			st->writeback += atomic_load_explicit(&f->st_wb, memory_order_relaxed);
		}
	}
	pthread_mutex_unlock(&fs->lock);
	st->cache_bytes = (uint64_t)atomic_load(&fs->cache.held) * fs->psz;
	st->cache_dirty = (uint64_t)atomic_load(&fs->cache.dirty) * fs->psz;
	st->cache_limit = fs->cache.limit * fs->psz;
	st->polled_reads = zvfs_bdev_polled(fs->bdev);
	return 0;
}
