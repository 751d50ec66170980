/* startspin: a thread that spins from before kscope starts, pinned to one CPU, so it may never
 * switch out while kscope measures (nothing else is pinned there; on an idle machine nothing
 * preempts it). The ground truth is its own CPU clock as a time series.
 *
 * Usage: startspin CPU OUT [SCHED]
 *   The spinner thread pins itself to CPU (SCHED "fifo": SCHED_FIFO priority 1, so ordinary
 *   tasks on that CPU do not preempt it either), then spins in startspin_spin(), and about every
 *   200 us of its own CPU time appends (CLOCK_MONOTONIC ns, CLOCK_THREAD_CPUTIME_ID ns) to a
 *   table in memory (two clock reads, no context switch). The main thread prints "ready PID TID"
 *   once the spinner has spun 50 ms, waits for SIGUSR1 (or SIGTERM), stops the spinner and
 *   writes OUT: one line per pair "MONO CPU", then prints "done N" (N pairs).
 *
 *   SCHED "woken": SCHED_FIFO as "fifo", and every 100 ms of its CPU time the spinner takes a
 *   priority-inheritance mutex that a holder thread on another CPU holds for 2 ms while it
 *   spins. The kernel's PI futex (an rt_mutex) lets the spinner spin on the running owner with
 *   its sleeping state already set; the owner's unlock then wakes it while it is still on its
 *   CPU, and it goes on without a context switch. That is how kscope top sees a "wakeup while
 *   running" of a thread running since before tracing.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <linux/futex.h>
#include <unistd.h>

#define MAX_PAIRS (1u << 20) /* 200 s of spinning at one pair per 200 us */

static uint64_t (*pairs)[2];
static volatile unsigned npairs;
static volatile int stop;
static volatile pid_t spinner_tid;
static int cpu;
static int fifo;
static int woken;

static uint64_t now_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* woken: the spinner asks for `lock` while the holder, running on another CPU, holds it. The
 * kernel's PI futex makes the spinner spin on the running owner with its sleeping state set
 * (rt_mutex adaptive spinning); the holder's unlock then wakes it while it is on its CPU. */
static pthread_mutex_t lock;
static int want;            /* futex word: the spinner wants the holder to take the lock */
static volatile int held;   /* the holder holds the lock */

static void take_from_holder(void)
{
	__atomic_store_n(&want, 1, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, &want, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	while (!__atomic_load_n(&held, __ATOMIC_SEQ_CST) && !stop)
		__builtin_ia32_pause();
	pthread_mutex_lock(&lock);
	__atomic_store_n(&held, 0, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&lock);
}

static void *holder(void *arg)
{
	(void)arg;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu == 0 ? 1 : 0, &set);
	sched_setaffinity(0, sizeof(set), &set); /* best effort */
	while (!stop) {
		struct timespec limit = {0, 100000000};
		syscall(SYS_futex, &want, FUTEX_WAIT_PRIVATE, 0, &limit, NULL, 0);
		if (!__atomic_exchange_n(&want, 0, __ATOMIC_SEQ_CST))
			continue;
		pthread_mutex_lock(&lock);
		__atomic_store_n(&held, 1, __ATOMIC_SEQ_CST);
		uint64_t until = now_ns(CLOCK_MONOTONIC) + 2000000; /* the spinner blocks meanwhile */
		while (now_ns(CLOCK_MONOTONIC) < until)
			__builtin_ia32_pause();
		pthread_mutex_unlock(&lock);
	}
	return NULL;
}

__attribute__((noinline)) static void startspin_spin(void)
{
	uint64_t next = 0, next_wait = 100000000;
	volatile uint64_t x = 0;
	while (!stop) {
		for (int i = 0; i < 2000; i++)
			x += (uint64_t)i * 2654435761u;
		uint64_t c = now_ns(CLOCK_THREAD_CPUTIME_ID);
		if (woken && c >= next_wait) {
			take_from_holder();
			next_wait = c + 100000000;
		}
		if (c < next)
			continue;
		next = c + 200000;
		uint64_t m = now_ns(CLOCK_MONOTONIC);
		if (npairs < MAX_PAIRS) {
			pairs[npairs][0] = m;
			pairs[npairs][1] = c;
			__atomic_store_n(&npairs, npairs + 1, __ATOMIC_RELEASE);
		}
	}
}

static void *spinner(void *arg)
{
	(void)arg;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0) {
		perror("sched_setaffinity");
		exit(1);
	}
	if (fifo) {
		struct sched_param p = {.sched_priority = 1};
		if (sched_setscheduler(0, SCHED_FIFO, &p) != 0) {
			perror("sched_setscheduler");
			exit(1);
		}
	}
	spinner_tid = (pid_t)syscall(SYS_gettid);
	startspin_spin();
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: startspin CPU OUT [fifo|other|woken]\n");
		return 2;
	}
	cpu = atoi(argv[1]);
	woken = argc == 4 && strcmp(argv[3], "woken") == 0;
	fifo = argc == 4 && (strcmp(argv[3], "fifo") == 0 || woken);
	pairs = calloc(MAX_PAIRS, sizeof(*pairs));
	if (!pairs) {
		perror("calloc");
		return 1;
	}
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGUSR1);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* the spinner inherits it: never interrupted */
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setprotocol(&ma, PTHREAD_PRIO_INHERIT);
	pthread_mutex_init(&lock, &ma);
	pthread_t th, wth;
	if (pthread_create(&th, NULL, spinner, NULL) != 0 ||
	    (woken && pthread_create(&wth, NULL, holder, NULL) != 0)) {
		perror("pthread_create");
		return 1;
	}
	/* Ready once the spinner has spun 50 ms of its own CPU time. */
	for (;;) {
		unsigned n = __atomic_load_n(&npairs, __ATOMIC_ACQUIRE);
		if (n > 0 && pairs[n - 1][1] >= 50000000ull)
			break;
		usleep(1000);
	}
	printf("ready %d %d\n", getpid(), spinner_tid);
	fflush(stdout);
	int sig;
	sigwait(&sigs, &sig);
	stop = 1;
	pthread_join(th, NULL);
	if (woken)
		pthread_join(wth, NULL);
	FILE *out = fopen(argv[2], "w");
	if (!out) {
		perror(argv[2]);
		return 1;
	}
	for (unsigned i = 0; i < npairs; i++)
		fprintf(out, "%llu %llu\n", (unsigned long long)pairs[i][0],
			(unsigned long long)pairs[i][1]);
	fclose(out);
	printf("done %u\n", npairs);
	fflush(stdout);
	return 0;
}
