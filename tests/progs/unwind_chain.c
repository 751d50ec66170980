/* Ground truth for the native unwinder: known call chains in a program built
 * -O2 -fomit-frame-pointer (CMakeLists.txt builds it as PIE, non-PIE and stripped).
 *
 *   unwind_chain spin SECONDS     main -> chain_1 -> ... -> chain_10 -> leaf_spin (user-space spin)
 *   unwind_chain sleep SECONDS    main -> chain_1 -> ... -> chain_10 -> leaf_sleep -> nanosleep
 *   unwind_chain qsort SECONDS    main -> qsort_driver -> qsort (libc) -> ... -> compare_spin
 *   unwind_chain recurse SECONDS  main -> recurse x 200 -> leaf_spin (deeper than 127 frames)
 *   unwind_chain stop             waits for SIGUSR1, then main -> chain_1 .. chain_10 -> leaf_stop ->
 *                                 raise(SIGSTOP): stopped in a known place, for eu-stack
 *
 * Prints "ready PID" once started. Every function of a chain is noipa (no inlining, cloning or
 * interprocedural changes) and does work after its call (no tail call), so each is one frame.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NOIPA __attribute__((noipa))
/* Work after a call keeps it a call (no jump), so the caller's frame stays on the stack. */
#define KEEP() __asm__ volatile("" ::: "memory")

static double deadline_s;
static volatile uint64_t sink;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int mode_sleep, mode_stop;
static volatile sig_atomic_t released;

static void on_usr1(int sig)
{
	(void)sig;
	released = 1;
}

NOIPA static void leaf_spin(void)
{
	while (now_s() < deadline_s)
		for (int i = 0; i < 100000; i++)
			sink += (uint64_t)i;
	KEEP();
}

NOIPA static void leaf_sleep(void)
{
	struct timespec ts = {0, 2000000};
	while (now_s() < deadline_s)
		nanosleep(&ts, NULL);
	KEEP();
}

NOIPA static void leaf_stop(void)
{
	raise(SIGSTOP);
	KEEP();
}

NOIPA static void leaf(void)
{
	if (mode_stop)
		leaf_stop();
	else if (mode_sleep)
		leaf_sleep();
	else
		leaf_spin();
	KEEP();
}

NOIPA static void chain_10(void) { leaf(); KEEP(); }
NOIPA static void chain_9(void) { chain_10(); KEEP(); }
NOIPA static void chain_8(void) { chain_9(); KEEP(); }
NOIPA static void chain_7(void) { chain_8(); KEEP(); }
NOIPA static void chain_6(void) { chain_7(); KEEP(); }
NOIPA static void chain_5(void) { chain_6(); KEEP(); }
NOIPA static void chain_4(void) { chain_5(); KEEP(); }
NOIPA static void chain_3(void) { chain_4(); KEEP(); }
NOIPA static void chain_2(void) { chain_3(); KEEP(); }
NOIPA static void chain_1(void) { chain_2(); KEEP(); }

/* Spins inside the comparison callback, so the stack is main -> qsort_driver -> libc's qsort
 * internals -> compare_spin. */
NOIPA static int compare_spin(const void *a, const void *b)
{
	if (now_s() < deadline_s) {
		for (int i = 0; i < 100000; i++)
			sink += (uint64_t)i;
	}
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

NOIPA static void qsort_driver(void)
{
	int values[64];
	while (now_s() < deadline_s) {
		for (int i = 0; i < 64; i++)
			values[i] = (i * 7919) % 64;
		qsort(values, 64, sizeof(values[0]), compare_spin);
	}
	KEEP();
}

NOIPA static int recurse(int depth)
{
	if (depth == 0) {
		leaf_spin();
		return 0;
	}
	int r = recurse(depth - 1);
	KEEP();
	return r + 1;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: unwind_chain spin|sleep|qsort|recurse SECONDS | stop\n");
		return 2;
	}
	double seconds = argc > 2 ? atof(argv[2]) : 0;
	deadline_s = now_s() + seconds;
	signal(SIGUSR1, on_usr1);
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	if (strcmp(argv[1], "spin") == 0) {
		chain_1();
	} else if (strcmp(argv[1], "sleep") == 0) {
		mode_sleep = 1;
		chain_1();
	} else if (strcmp(argv[1], "stop") == 0) {
		struct timespec ts = {0, 10000000};
		while (!released)
			nanosleep(&ts, NULL);
		mode_stop = 1;
		chain_1();
	} else if (strcmp(argv[1], "qsort") == 0) {
		qsort_driver();
	} else if (strcmp(argv[1], "recurse") == 0) {
		sink += (uint64_t)recurse(200);
	} else {
		fprintf(stderr, "unwind_chain: unknown mode %s\n", argv[1]);
		return 2;
	}
	KEEP();
	return 0;
}
