/* SPDX-License-Identifier: MIT */
/*
 * stdio_prog - stdio on files in a directory, run under libzvfs.so by
 * test_stdio.sh.  glibc's stdio calls hidden aliases (__open_nocancel,
 * __read, __write) that symbol interposition never sees; these cases prove
 * the library's streams carry the data anyway.
 *
 *   stdio_prog streams DIR    fopen/fread/fwrite/fprintf/fseek/fseeko/
 *                             ftello/fgets/fflush/fclose, fdopen +
 *                             fread_unlocked, fileno, freopen of stdout
 *   stdio_prog print N        N numbered lines on stdout with printf, puts
 *                             and fwrite (the shell redirects it to a file)
 *   stdio_prog checkprint N FILE   FILE holds exactly what "print N" prints
 *
 * Prints "ok NAME" / "FAIL NAME: why" on stderr (stdout may be the file under
 * test); exit 0 when all passed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int failed;

static void check(const char *name, int cond, const char *why)
{
	if (cond) {
		fprintf(stderr, "ok %s\n", name);
	} else {
		fprintf(stderr, "FAIL %s: %s (errno %s)\n", name, why, strerror(errno));
		failed++;
	}
}

static unsigned char pat(size_t i, unsigned seed)
{
	return (unsigned char)(((i * 131 + seed * 7) % 251) + 1);
}

static void fill(unsigned char *buf, size_t n, size_t off, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = pat(off + i, seed);
}

static int matches(const unsigned char *buf, size_t n, size_t off, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		if (buf[i] != pat(off + i, seed))
			return 0;
	return 1;
}

static char *path_in(const char *dir, const char *name)
{
	static char buf[4][4096];
	static int next;
	char *p = buf[next++ % 4];

	snprintf(p, sizeof(buf[0]), "%s/%s", dir, name);
	return p;
}

static void streams(const char *dir)
{
	enum { BIG = 1000003 };
	unsigned char *buf = malloc(BIG), *rd = malloc(BIG);
	char line[256];
	char fa[4096], ft[4096];
	snprintf(fa, sizeof(fa), "%s", path_in(dir, "stream.bin"));
	snprintf(ft, sizeof(ft), "%s", path_in(dir, "text.txt"));
	FILE *f;

	if (!buf || !rd) {
		check("malloc", 0, "out of memory");
		return;
	}
	fill(buf, BIG, 0, 3);

	/* fwrite in odd pieces, fread back in others. */
	f = fopen(fa, "w+");
	check("fopen w+", f != NULL, fa);
	if (!f)
		goto out;
	size_t done = 0, step = 1;
	while (done < BIG) {
		size_t n = step < BIG - done ? step : BIG - done;
		if (fwrite(buf + done, 1, n, f) != n)
			break;
		done += n;
		step = step * 3 + 1;
	}
	check("fwrite", done == BIG, "short fwrite");
	check("ftello after fwrite", ftello(f) == BIG, "wrong position");
	check("fflush", fflush(f) == 0, "fflush failed");
	check("fseek SEEK_SET", fseek(f, 4095, SEEK_SET) == 0, "fseek failed");
	check("fread", fread(rd, 1, 10000, f) == 10000 && matches(rd, 10000, 4095, 3),
	      "wrong data");
	check("fseeko SEEK_END", fseeko(f, -17, SEEK_END) == 0 && ftello(f) == BIG - 17,
	      "wrong position");
	check("fread short at EOF", fread(rd, 1, 100, f) == 17 && feof(f), "not 17 bytes + EOF");
	rewind(f);
	check("fread whole file", fread(rd, 1, BIG, f) == BIG && matches(rd, BIG, 0, 3),
	      "wrong data");
	struct stat st;
	check("fstat(fileno) size", fstat(fileno(f), &st) == 0 && st.st_size == BIG, "wrong size");
	check("fclose", fclose(f) == 0, "fclose failed");

	/* fprintf / fgets, append mode. */
	f = fopen(ft, "w");
	check("fopen w", f != NULL, ft);
	if (f) {
		for (int i = 0; i < 1000; i++)
			fprintf(f, "line %d %s\n", i, i % 2 ? "odd" : "even");
		fclose(f);
	}
	f = fopen(ft, "a");
	check("fopen a", f != NULL, ft);
	if (f) {
		fputs("appended\n", f);
		check("ftello in append mode", ftello(f) > 10000, "position not at end");
		fclose(f);
	}
	f = fopen(ft, "r");
	check("fopen r", f != NULL, ft);
	if (f) {
		int n = 0, good = 1;
		char want[64];
		while (fgets(line, sizeof(line), f)) {
			if (n < 1000) {
				snprintf(want, sizeof(want), "line %d %s\n", n,
					 n % 2 ? "odd" : "even");
				good &= strcmp(line, want) == 0;
			} else {
				good &= strcmp(line, "appended\n") == 0;
			}
			n++;
		}
		check("fgets lines", n == 1001 && good, "wrong lines");
		fclose(f);
	}
	f = fopen(ft, "r+");
	check("fopen r+", f != NULL, ft);
	if (f) {
		fseek(f, 5, SEEK_SET);
		fputc('X', f);
		fseek(f, 0, SEEK_SET);
		check("r+ overwrite",
		      fgets(line, sizeof(line), f) && strcmp(line, "line X even\n") == 0, line);
		fclose(f);
	}

	/* fdopen + fread_unlocked on an fd from open(). */
	int fd = open(fa, O_RDONLY);
	check("open for fdopen", fd >= 0, fa);
	if (fd >= 0) {
		lseek(fd, 1000, SEEK_SET);
		f = fdopen(fd, "r");
		check("fdopen", f != NULL, "fdopen failed");
		if (f) {
			check("fileno of fdopen", fileno(f) == fd, "another fd");
			check("fdopen starts at the fd's offset",
			      fread_unlocked(rd, 1, 5000, f) == 5000 && matches(rd, 5000, 1000, 3),
			      "wrong data");
			fclose(f);
		}
	}
	fd = open(path_in(dir, "fdopen_w.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0) {
		f = fdopen(fd, "w");
		if (f) {
			fprintf(f, "through fdopen %d\n", 42);
			fclose(f);
		}
		f = fopen(path_in(dir, "fdopen_w.txt"), "r");
		check("fdopen w: written",
		      f && fgets(line, sizeof(line), f) && strcmp(line, "through fdopen 42\n") == 0,
		      "wrong content");
		if (f)
			fclose(f);
	}

	/* freopen of stdout onto a file, then back to reading it. */
	fflush(stdout);
	int saved = dup(1);
	const char *fr = path_in(dir, "freopen.txt");
	FILE *o = freopen(fr, "w", stdout);
	check("freopen stdout", o != NULL, fr);
	if (o) {
		printf("freopen line %d\n", 1);
		puts("freopen line 2");
		fflush(stdout);
		dup2(saved, 1); /* give the terminal back; the stream is done */
		f = fopen(fr, "r");
		int good = f && fgets(line, sizeof(line), f) &&
			   strcmp(line, "freopen line 1\n") == 0 && fgets(line, sizeof(line), f) &&
			   strcmp(line, "freopen line 2\n") == 0;
		check("freopen stdout: content", good, "wrong content");
		if (f)
			fclose(f);
	}
	close(saved);
	f = freopen(fa, "r", fopen(ft, "r"));
	check("freopen another file", f && fread(rd, 1, 100, f) == 100 && matches(rd, 100, 0, 3),
	      "wrong data");
	if (f)
		fclose(f);
out:
	free(buf);
	free(rd);
}

static void print_lines(long n, FILE *to)
{
	for (long i = 0; i < n; i++) {
		if (i % 3 == 0)
			fprintf(to, "printf %ld\n", i);
		else if (i % 3 == 1)
			fputs("puts line\n", to);
		else
			fwrite("fwrite line\n", 1, 12, to);
	}
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "streams") == 0) {
		streams(argv[2]);
	} else if (argc == 3 && strcmp(argv[1], "print") == 0) {
		print_lines(atol(argv[2]), stdout);
		return fflush(stdout) == 0 ? 0 : 1;
	} else if (argc == 4 && strcmp(argv[1], "checkprint") == 0) {
		char *want = NULL, *got = NULL;
		size_t wlen = 0, glen = 0;
		FILE *w = open_memstream(&want, &wlen);
		print_lines(atol(argv[2]), w);
		fclose(w);
		FILE *g = fopen(argv[3], "r");
		check("checkprint: fopen", g != NULL, argv[3]);
		if (g) {
			got = malloc(wlen + 2);
			glen = got ? fread(got, 1, wlen + 1, g) : 0;
			fclose(g);
		}
		check("checkprint: content", g && glen == wlen && memcmp(want, got, wlen) == 0,
		      "stdout did not land in the file");
		free(want);
		free(got);
	} else {
		fprintf(stderr, "usage: stdio_prog streams DIR | print N | checkprint N FILE\n");
		return 1;
	}
	return failed ? 1 : 0;
}
