/* faultprog: a program whose page faults are known in advance. Ground truth for kscope's
 * runtime tests, and the built-in workload of `make demo`.
 *
 * Usage: faultprog MODE [ARGS...] [--truth FILE]
 *   anon-write N SEED  mmap N anonymous pages, write one byte to each in a permuted order
 *   anon-write-migrate N SEED   the same, moving to another CPU every 37 pages
 *   anon-read N        mmap N anonymous pages, read each (untouched memory)
 *   segments           touch pages of .data, .bss, the brk heap and the main stack
 *   file-major N DIR   create an N-page file in DIR, evict it from the page cache, map it with
 *                      MADV_RANDOM and read each page once (one major fault per page)
 *   populate P N       mmap P pages with MAP_POPULATE (get_user_pages faults), then write N
 *                      other fresh pages
 *   wait-touch N       print "ready" on stdout, wait for SIGUSR1, write N pages, exit
 *   fork-touch N       fork a child that writes N pages; the parent waits for it
 *   loop-touch         write a fresh page every millisecond until killed
 *   threads T N        T threads each write N pages of their own mapping: the first under
 *                      the inherited name, the rest after renaming themselves toucher-0..
 *   touch N [CHUNK]    write N fresh anonymous pages once each in address order, CHUNK pages
 *                      per mmap (unmapped after; default all N in one), and print
 *                      "elapsed_ns T" for the write loops alone (the benchmark workload)
 *   demo               a mix of all of the above, for a readable plot
 * With --truth FILE it writes what it did to FILE, one fact per line:
 *   page ADDR          a page written or read, in order
 *   range NAME START END
 *   populate ADDR N
 *   counters MINFLT MAJFLT   its own /proc/self/stat counters just before exit
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL

static FILE *truth;
static char truth_buf[1 << 20];

/* .data and .bss, large enough to span several pages each. */
char data_pages[16 * PAGE] __attribute__((aligned(4096))) = {1};
char bss_pages[16 * PAGE] __attribute__((aligned(4096)));

static void fact(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fact(const char *fmt, ...)
{
	va_list ap;
	if (!truth)
		return;
	va_start(ap, fmt);
	vfprintf(truth, fmt, ap);
	va_end(ap);
}

static void *map_anon(size_t pages, int extra_flags)
{
	void *p = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0);
	if (p == MAP_FAILED) {
		perror("faultprog: mmap");
		exit(1);
	}
	return p;
}

/* Writes one byte to each page, in a permutation of 0..n-1 fixed by seed. */
/* Moves the calling thread to the next CPU it may run on (for `anon-write-migrate`). */
static void migrate_to_next_cpu(void)
{
	static cpu_set_t allowed;
	static int have_allowed, current = -1;
	if (!have_allowed) {
		if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0)
			return;
		have_allowed = 1;
	}
	for (int i = 1; i <= CPU_SETSIZE; i++) {
		int cpu = (current + i + CPU_SETSIZE) % CPU_SETSIZE;
		if (!CPU_ISSET(cpu, &allowed))
			continue;
		cpu_set_t one;
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		if (sched_setaffinity(0, sizeof(one), &one) == 0)
			current = cpu;
		return;
	}
}

static size_t migrate_every; /* anon-write-migrate: change CPU every this many pages */

__attribute__((noinline)) void touch_pages_permuted(volatile char *base, size_t n, unsigned seed)
{
	size_t *order = malloc(n * sizeof(*order));
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	srand(seed);
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)rand() % i;
		size_t t = order[i - 1];
		order[i - 1] = order[j];
		order[j] = t;
	}
	/* Record the order first: writing the truth file must not fault between the touches. */
	for (size_t i = 0; i < n; i++)
		fact("page %p\n", (void *)(base + order[i] * PAGE));
	for (size_t i = 0; i < n; i++) {
		if (migrate_every && i % migrate_every == 0)
			migrate_to_next_cpu();
		base[order[i] * PAGE] = 1;
	}
	free(order);
}

__attribute__((noinline)) void read_pages(volatile char *base, size_t n)
{
	volatile char sink = 0;
	for (size_t i = 0; i < n; i++)
		fact("page %p\n", (void *)(base + i * PAGE));
	for (size_t i = 0; i < n; i++)
		sink += base[i * PAGE];
	(void)sink;
}

__attribute__((noinline)) void write_pages(volatile char *base, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fact("page %p\n", (void *)(base + i * PAGE));
	for (size_t i = 0; i < n; i++)
		base[i * PAGE] = 1;
}

/* Touches stack pages below the current frame: a big local array, written from the top down
 * as a real stack grows. */
__attribute__((noinline)) void touch_stack(size_t pages)
{
	volatile char frame[pages * PAGE];
	uintptr_t lo = (uintptr_t)frame, hi = lo + pages * PAGE;
	fact("range stack %#lx %#lx\n", (unsigned long)lo, (unsigned long)hi);
	for (size_t i = pages; i > 0; i--)
		frame[(i - 1) * PAGE] = 1;
}

static void mode_segments(void)
{
	fact("range data %p %p\n", (void *)data_pages, (void *)(data_pages + sizeof(data_pages)));
	write_pages(data_pages, 16);
	fact("range bss %p %p\n", (void *)bss_pages, (void *)(bss_pages + sizeof(bss_pages)));
	write_pages(bss_pages, 16);
	char *heap = sbrk(0);
	/* Align the heap pages so each write is a fresh page. */
	uintptr_t aligned = ((uintptr_t)heap + PAGE - 1) & ~(PAGE - 1);
	if (sbrk((intptr_t)(aligned - (uintptr_t)heap + 16 * PAGE)) == (void *)-1) {
		perror("faultprog: sbrk");
		exit(1);
	}
	fact("range heap %#lx %#lx\n", (unsigned long)aligned, (unsigned long)(aligned + 16 * PAGE));
	write_pages((char *)aligned, 16);
	touch_stack(16);
}

static void mode_file_major(size_t n, const char *dir)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/faultprog.XXXXXX", dir);
	int fd = mkstemp(path);
	if (fd < 0) {
		perror("faultprog: mkstemp");
		exit(1);
	}
	unlink(path);
	char *buf = malloc(PAGE);
	memset(buf, 'x', PAGE);
	for (size_t i = 0; i < n; i++)
		if (write(fd, buf, PAGE) != (ssize_t)PAGE) {
			perror("faultprog: write");
			exit(1);
		}
	free(buf);
	fsync(fd);
	/* Drop the file's pages from the page cache so every first access reads the disk. */
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	char *p = mmap(NULL, n * PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED) {
		perror("faultprog: mmap file");
		exit(1);
	}
	/* No read-ahead: one page per fault. */
	madvise(p, n * PAGE, MADV_RANDOM);
	read_pages(p, n);
	close(fd);
}

static volatile sig_atomic_t got_usr1;
static void on_usr1(int sig) { (void)sig; got_usr1 = 1; }

struct thread_arg {
	size_t pages;
	char *base;
	char name[16];
};

static void *thread_main(void *p)
{
	struct thread_arg *a = p;
	/* The first page under the inherited name, the rest after a rename (the task_rename
	 * tracepoint). */
	a->base[0] = 1;
	pthread_setname_np(pthread_self(), a->name);
	for (size_t i = 1; i < a->pages; i++)
		a->base[i * PAGE] = 1;
	return NULL;
}

static void write_counters(void)
{
	/* Read our own counters as late as possible; everything after this point must not fault:
	 * the buffers are static and already touched, the code was run once before. */
	static char stat[4096];
	int fd = open("/proc/self/stat", O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, stat, sizeof(stat) - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return;
	stat[n] = 0;
	char *p = strrchr(stat, ')');
	unsigned long minflt = 0, majflt = 0;
	/* fields after comm: state ppid pgrp session tty tpgid flags minflt cminflt majflt */
	if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %lu %*u %lu", &minflt, &majflt) == 2)
		fact("counters %lu %lu\n", minflt, majflt);
}

int main(int argc, char **argv)
{
	const char *truth_path = NULL;
	int nargs = 0;
	char *args[16];
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--truth") && i + 1 < argc)
			truth_path = argv[++i];
		else if (nargs < 16)
			args[nargs++] = argv[i];
	}
	if (nargs < 1) {
		fprintf(stderr, "usage: faultprog MODE [ARGS...] [--truth FILE]\n");
		return 2;
	}
	if (truth_path) {
		truth = fopen(truth_path, "w");
		if (!truth) {
			perror("faultprog: truth file");
			return 1;
		}
		/* A big static buffer: writing facts does not allocate or fault later. */
		setvbuf(truth, truth_buf, _IOFBF, sizeof(truth_buf));
		memset(truth_buf, 0, sizeof(truth_buf));
	}
	const char *mode = args[0];
#define ARG(i, def) (nargs > (i) ? strtoul(args[i], NULL, 10) : (def))
	if (!strcmp(mode, "anon-write")) {
		size_t n = ARG(1, 256);
		char *p = map_anon(n, 0);
		touch_pages_permuted(p, n, (unsigned)ARG(2, 1));
	} else if (!strcmp(mode, "anon-write-migrate")) {
		size_t n = ARG(1, 256);
		char *p = map_anon(n, 0);
		migrate_every = 37;
		touch_pages_permuted(p, n, (unsigned)ARG(2, 1));
	} else if (!strcmp(mode, "anon-read")) {
		size_t n = ARG(1, 64);
		read_pages(map_anon(n, 0), n);
	} else if (!strcmp(mode, "segments")) {
		mode_segments();
	} else if (!strcmp(mode, "file-major")) {
		mode_file_major(ARG(1, 32), nargs > 2 ? args[2] : "/var/tmp");
	} else if (!strcmp(mode, "populate")) {
		size_t pop = ARG(1, 100), n = ARG(2, 50);
		char *p = map_anon(pop, MAP_POPULATE);
		fact("populate %p %zu\n", (void *)p, pop);
		write_pages(map_anon(n, 0), n);
	} else if (!strcmp(mode, "wait-touch")) {
		size_t n = ARG(1, 64);
		char *p = map_anon(n, 0);
		signal(SIGUSR1, on_usr1);
		printf("ready\n");
		fflush(stdout);
		while (!got_usr1)
			usleep(1000);
		write_pages(p, n);
	} else if (!strcmp(mode, "fork-touch")) {
		size_t n = ARG(1, 64);
		if (truth)
			fflush(truth);
		pid_t child = fork();
		if (child == 0) {
			if (truth) {
				fclose(truth);
				truth = NULL;
			}
			char *p = map_anon(n, 0);
			write_pages(p, n);
			_exit(0);
		}
		int status;
		waitpid(child, &status, 0);
		fact("child %d\n", child);
	} else if (!strcmp(mode, "loop-touch")) {
		for (;;) {
			char *p = map_anon(1, 0);
			p[0] = 1;
			usleep(1000);
		}
	} else if (!strcmp(mode, "threads")) {
		size_t t = ARG(1, 4), n = ARG(2, 64);
		pthread_t th[64];
		struct thread_arg a[64];
		if (t > 64)
			t = 64;
		for (size_t i = 0; i < t; i++) {
			a[i].pages = n;
			a[i].base = map_anon(n, 0);
			snprintf(a[i].name, sizeof(a[i].name), "toucher-%zu", i);
			fact("range %s %p %p\n", a[i].name, (void *)a[i].base,
			     (void *)(a[i].base + n * PAGE));
		}
		for (size_t i = 0; i < t; i++)
			pthread_create(&th[i], NULL, thread_main, &a[i]);
		for (size_t i = 0; i < t; i++)
			pthread_join(th[i], NULL);
	} else if (!strcmp(mode, "touch")) {
		size_t n = ARG(1, 262144);
		size_t chunk = ARG(2, n);
		if (chunk == 0 || chunk > n)
			chunk = n;
		long long elapsed = 0;
		for (size_t done = 0; done < n; done += chunk) {
			size_t m = n - done < chunk ? n - done : chunk;
			volatile char *p = map_anon(m, 0);
			struct timespec t0, t1;
			clock_gettime(CLOCK_MONOTONIC, &t0);
			for (size_t i = 0; i < m; i++)
				p[i * PAGE] = 1;
			clock_gettime(CLOCK_MONOTONIC, &t1);
			elapsed += (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL +
				   (t1.tv_nsec - t0.tv_nsec);
			munmap((void *)p, m * PAGE);
		}
		printf("elapsed_ns %lld\n", elapsed);
		fflush(stdout);
	} else if (!strcmp(mode, "demo")) {
		truth = NULL;
		mode_segments();
		size_t n = 2048;
		char *p = map_anon(n, 0);
		touch_pages_permuted(p, n / 2, 7);
		write_pages(p + (n / 2) * PAGE, n / 2);
		mode_file_major(64, "/var/tmp");
		for (int i = 0; i < 50; i++) {
			char *q = malloc(64 * 1024);
			memset(q, i, 64 * 1024);
			free(q);
		}
	} else {
		fprintf(stderr, "faultprog: unknown mode '%s'\n", mode);
		return 2;
	}
	if (truth) {
		write_counters();
		write_counters(); /* second call: all code and data it uses are now resident */
		fflush(truth);
	}
	/* _exit: no atexit handlers, no stdio teardown faults after the counters were read. */
	_exit(0);
}
