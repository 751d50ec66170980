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
#include <unistd.h>

#define MAX_PAIRS (1u << 20) /* 200 s of spinning at one pair per 200 us */

static uint64_t (*pairs)[2];
static volatile unsigned npairs;
static volatile int stop;
static volatile pid_t spinner_tid;
static int cpu;
static int fifo;

static uint64_t now_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

__attribute__((noinline)) static void startspin_spin(void)
{
	uint64_t next = 0;
	volatile uint64_t x = 0;
	while (!stop) {
		for (int i = 0; i < 2000; i++)
			x += (uint64_t)i * 2654435761u;
		uint64_t c = now_ns(CLOCK_THREAD_CPUTIME_ID);
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
		fprintf(stderr, "usage: startspin CPU OUT [fifo]\n");
		return 2;
	}
	cpu = atoi(argv[1]);
	fifo = argc == 4 && strcmp(argv[3], "fifo") == 0;
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
	pthread_t th;
	if (pthread_create(&th, NULL, spinner, NULL) != 0) {
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
