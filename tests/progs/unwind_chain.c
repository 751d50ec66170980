/* Ground truth for the native unwinder: known call chains in a program built
 * -O2 -fomit-frame-pointer (CMakeLists.txt builds it as PIE, non-PIE and stripped).
 *
 *   unwind_chain spin SECONDS     main -> chain_1 -> ... -> chain_10 -> leaf_spin (user-space spin)
 *   unwind_chain sleep SECONDS    main -> chain_1 -> ... -> chain_10 -> leaf_sleep -> nanosleep
 *   unwind_chain qsort SECONDS    main -> qsort_driver -> qsort (libc) -> ... -> compare_spin
 *   unwind_chain recurse SECONDS  main -> recurse x 200 -> leaf_spin (deeper than 127 frames)
 *   unwind_chain stop             waits for SIGUSR1, then main -> chain_1 .. chain_10 -> leaf_stop ->
 *                                 raise(SIGSTOP): stopped in a known place, for eu-stack
 *   unwind_chain signal SECONDS   main -> chain_1 .. chain_10 -> leaf_flag_spin (no calls), which a
 *                                 SIGALRM every 30 ms interrupts: on_alarm -> sig_spin spins ~20 ms
 *                                 (the stack continues through __restore_rt into leaf_flag_spin)
 *   unwind_chain thread SECONDS   a second thread: thread_main -> chain_1 .. chain_10 -> leaf_spin
 *                                 (main waits in pthread_join)
 *   unwind_chain dlopen SECONDS LIB  waits for SIGUSR1, then dlopen(LIB) and main -> dlopen_driver ->
 *                                 LIB's dl_entry -> dl_middle -> dl_leaf (spins): a library loaded
 *                                 after kscope started
 *
 * Prints "ready PID" once started. Every function of a chain is noipa (no inlining, cloning or
 * interprocedural changes) and does work after its call (no tail call), so each is one frame.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

static double deadline_s;
static volatile uint64_t sink;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int mode_sleep, mode_stop, mode_signal;
static volatile sig_atomic_t flag_done;
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

/* No calls: an interrupted PC is in this function itself. */
NOIPA static void leaf_flag_spin(void)
{
	while (!flag_done)
		sink++;
	KEEP();
}

/* ~20 ms of work per signal, in the handler's own frame. */
NOIPA static void sig_spin(void)
{
	for (uint64_t i = 0; i < 20000000 && !flag_done; i++)
		sink += i;
	KEEP();
}

NOIPA static void on_alarm(int sig)
{
	(void)sig;
	if (now_s() >= deadline_s) {
		flag_done = 1;
		return;
	}
	sig_spin();
	KEEP();
}

NOIPA static void leaf(void)
{
	if (mode_signal)
		leaf_flag_spin();
	else if (mode_stop)
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

NOIPA static void *thread_main(void *arg)
{
	(void)arg;
	chain_1();
	KEEP();
	return NULL;
}

NOIPA static void dlopen_driver(void (*entry)(double))
{
	entry(deadline_s);
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
		fprintf(stderr, "usage: unwind_chain spin|sleep|qsort|recurse|signal|thread SECONDS | stop | dlopen SECONDS LIB\n");
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
	} else if (strcmp(argv[1], "signal") == 0) {
		mode_signal = 1;
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_alarm;
		sa.sa_flags = SA_RESTART;
		sigaction(SIGALRM, &sa, NULL);
		struct itimerval it = {{0, 30000}, {0, 30000}};
		setitimer(ITIMER_REAL, &it, NULL);
		chain_1();
	} else if (strcmp(argv[1], "thread") == 0) {
		pthread_t t;
		if (pthread_create(&t, NULL, thread_main, NULL) != 0)
			return 1;
		pthread_join(t, NULL);
	} else if (strcmp(argv[1], "dlopen") == 0) {
		if (argc < 4)
			return 2;
		struct timespec ts = {0, 10000000};
		while (!released)
			nanosleep(&ts, NULL);
		void *lib = dlopen(argv[3], RTLD_NOW);
		void (*entry)(double) = lib ? (void (*)(double))dlsym(lib, "dl_entry") : NULL;
		if (!entry) {
			fprintf(stderr, "unwind_chain: %s\n", dlerror());
			return 1;
		}
		deadline_s = now_s() + seconds;
		dlopen_driver(entry);
	} else if (strcmp(argv[1], "recurse") == 0) {
		sink += (uint64_t)recurse(200);
	} else {
		fprintf(stderr, "unwind_chain: unknown mode %s\n", argv[1]);
		return 2;
	}
	KEEP();
	return 0;
}
