/* Ground truth for `kscope faults --stacks`: page faults taken at the end of known call chains,
 * in a program built -O2 -fomit-frame-pointer (CMakeLists.txt), the way distributions build.
 *
 *   fault_stacks chain PAGES [go]    main -> run_chain -> f1 -> ... -> f8 -> toucher: writes one
 *                                    byte to each of PAGES fresh pages of an anonymous mapping
 *   fault_stacks memset PAGES [go]   main -> memset_caller -> memset (libc) of a fresh mapping
 *   fault_stacks qsort PAGES [go]    main -> qsort_driver -> qsort (libc) -> ... -> compare_touch:
 *                                    the comparison callback touches the next fresh page
 *   fault_stacks read PAGES [go]     main -> read_caller -> read(/dev/zero) into a fresh mapping:
 *                                    the faults are taken in the kernel (copy_to_user)
 *   fault_stacks rbp PAGES [go]      main -> rbp_caller -> rbp_toucher: touches each fresh page
 *                                    through rbp, as code built without frame pointers may use
 *                                    it: a frame-pointer walk reads the page before the program
 *
 * Maps the buffer first, prints "buffer START END" and "ready PID", then waits for SIGUSR1
 * (unless "go"), so a tracer can attach and load its tables before the faults it checks.
 * Every function of a chain is noipa (no inlining, cloning or interprocedural changes) and does
 * work after its call (no tail call), so each is one frame. Prints "done" at the end.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* gcc's noipa: no inlining, cloning or interprocedural changes. clang has no such attribute
 * (it ignored it and inlined the chain in the sanitizer build): noinline there. */
#if defined(__clang__)
#define NOIPA __attribute__((noinline))
#else
#define NOIPA __attribute__((noipa))
#endif
/* Work after a call keeps it a call (no jump), so the caller's frame stays on the stack. */
#define KEEP() __asm__ volatile("" ::: "memory")

static char *buffer;
static size_t pages;
static volatile sig_atomic_t released;
static volatile uint64_t sink;

static void on_usr1(int sig)
{
	(void)sig;
	released = 1;
}

NOIPA static void toucher(void)
{
	for (size_t i = 0; i < pages; i++)
		buffer[i * 4096] = 1;
	KEEP();
}

NOIPA static void f8(void) { toucher(); KEEP(); }
NOIPA static void f7(void) { f8(); KEEP(); }
NOIPA static void f6(void) { f7(); KEEP(); }
NOIPA static void f5(void) { f6(); KEEP(); }
NOIPA static void f4(void) { f5(); KEEP(); }
NOIPA static void f3(void) { f4(); KEEP(); }
NOIPA static void f2(void) { f3(); KEEP(); }
NOIPA static void f1(void) { f2(); KEEP(); }
NOIPA static void run_chain(void) { f1(); KEEP(); }

NOIPA static void memset_caller(void)
{
	memset(buffer, 1, pages * 4096);
	KEEP();
}

static size_t next_page;

NOIPA static int compare_touch(const void *a, const void *b)
{
	if (next_page < pages)
		buffer[next_page++ * 4096] = 1;
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

NOIPA static void qsort_driver(void)
{
	/* Enough comparisons to touch every page: n log n > pages. */
	size_t n = pages + 64;
	int *v = malloc(n * sizeof(int));
	if (!v)
		exit(1);
	for (size_t i = 0; i < n; i++)
		v[i] = (int)((i * 2654435761u) % 1000003u);
	/* The array is touched (and faulted in) before, so only the callback's pages fault inside. */
	qsort(v, n, sizeof(int), compare_touch);
	sink += (uint64_t)v[0];
	free(v);
	KEEP();
}

/* rbp points 64 bytes into each page when the program writes the page's first byte (rbp is
 * clobbered, so the compiler saves and restores it with its CFI). */
NOIPA static void rbp_toucher(void)
{
	for (size_t i = 0; i < pages; i++)
		__asm__ volatile("mov %0, %%rbp\n\tmovb $1, -64(%%rbp)" : : "r"(buffer + i * 4096 + 64)
				 : "rbp", "memory");
	KEEP();
}

NOIPA static void rbp_caller(void) { rbp_toucher(); KEEP(); }

NOIPA static void read_caller(void)
{
	int fd = open("/dev/zero", O_RDONLY);
	if (fd < 0)
		exit(1);
	size_t want = pages * 4096, got = 0;
	while (got < want) {
		ssize_t n = read(fd, buffer + got, want - got);
		if (n <= 0)
			exit(1);
		got += (size_t)n;
	}
	close(fd);
	KEEP();
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: fault_stacks chain|memset|qsort|read|rbp PAGES [go]\n");
		return 2;
	}
	pages = strtoul(argv[2], NULL, 10);
	if (pages == 0)
		return 2;
	buffer = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buffer == MAP_FAILED)
		return 1;
	/* One fault per page, whatever the transparent huge page setting. */
	madvise(buffer, pages * 4096, MADV_NOHUGEPAGE);
	signal(SIGUSR1, on_usr1);
	/* Blocked until sigsuspend, so a SIGUSR1 sent right after "ready" is not lost. */
	sigset_t usr1, none;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigemptyset(&none);
	sigprocmask(SIG_BLOCK, &usr1, NULL);
	printf("buffer %#lx %#lx\n", (unsigned long)buffer, (unsigned long)(buffer + pages * 4096));
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	if (!(argc > 3 && strcmp(argv[3], "go") == 0)) {
		while (!released)
			sigsuspend(&none);
	}
	if (strcmp(argv[1], "chain") == 0)
		run_chain();
	else if (strcmp(argv[1], "memset") == 0)
		memset_caller();
	else if (strcmp(argv[1], "qsort") == 0)
		qsort_driver();
	else if (strcmp(argv[1], "read") == 0)
		read_caller();
	else if (strcmp(argv[1], "rbp") == 0)
		rbp_caller();
	else
		return 2;
	printf("done\n");
	fflush(stdout);
	return 0;
}
