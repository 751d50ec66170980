/* foldprog: a living thread that moves on from stack to stack, for kscope top's folding of idle
 * accounts. The ground truth is its own CPU clock as a time series, and its switch counts.
 *
 * Usage: foldprog OUT PHASES PHASE_MS [REST_MS]
 *   Starts a worker thread ("phaser") that waits to be released, prints "ready PID TID" and
 *   waits for SIGUSR1. Then it reads the worker's voluntary/involuntary switch counts
 *   (/proc/self/task/TID/status) and releases it. The worker runs PHASES phases of PHASE_MS
 *   (wall time) each: phase i runs at recursion depth i of fold_descend() (so every phase has
 *   stacks of its own, and those of earlier phases go idle), spinning 2 ms of its CPU time and
 *   sleeping 1 ms (nanosleep), over and over. About every 200 us of its CPU time, and before and
 *   after each sleep, it appends (CLOCK_MONOTONIC ns, CLOCK_THREAD_CPUTIME_ID ns) to a table in
 *   memory. With REST_MS, it then sleeps REST_MS in one nanosleep in fold_rest() (a thread's
 *   newest account, idle for that long) and runs one more phase at depth 1 (PHASE_MS). Then it
 *   blocks for good. Once it is blocked (state S), the main
 *   thread reads its switch counts again and writes OUT: one line "MONO CPU" per pair, then
 *   "switches VOL INVOL" (the counts' growth from release to blocked), prints "done N" (N pairs)
 *   and waits for SIGUSR1 or SIGTERM to exit, the worker still alive.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if defined(__clang__)
#define NOIPA __attribute__((noinline))
#else
#define NOIPA __attribute__((noipa))
#endif
#define KEEP() __asm__ volatile("" ::: "memory")

#define MAX_PAIRS (1u << 20)

static uint64_t (*pairs)[2];
static unsigned npairs;
static int phases;
static uint64_t phase_ns, rest_ns;
static volatile pid_t worker_tid;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int released, finished;
static volatile uint64_t sink;

static uint64_t now_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void note(void)
{
	if (npairs < MAX_PAIRS) {
		pairs[npairs][0] = now_ns(CLOCK_MONOTONIC);
		pairs[npairs][1] = now_ns(CLOCK_THREAD_CPUTIME_ID);
		npairs++;
	}
}

NOIPA static void fold_work(uint64_t until)
{
	while (now_ns(CLOCK_MONOTONIC) < until) {
		uint64_t spin_end = now_ns(CLOCK_THREAD_CPUTIME_ID) + 2000000, next = 0;
		for (;;) {
			for (int i = 0; i < 1000; i++)
				sink += (uint64_t)i * 2654435761u;
			uint64_t c = now_ns(CLOCK_THREAD_CPUTIME_ID);
			if (c >= next) {
				note();
				next = c + 200000;
			}
			if (c >= spin_end)
				break;
		}
		note();
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
		note();
	}
	KEEP();
}

NOIPA static void fold_descend(int depth, uint64_t until)
{
	if (depth > 1)
		fold_descend(depth - 1, until);
	else
		fold_work(until);
	sink++; /* not a tail call: each level keeps its frame */
}

NOIPA static void fold_rest(void)
{
	struct timespec ts = {(time_t)(rest_ns / 1000000000ull), (long)(rest_ns % 1000000000ull)};
	note();
	nanosleep(&ts, NULL);
	note();
	KEEP();
}

static void *worker(void *arg)
{
	(void)arg;
	worker_tid = (pid_t)syscall(SYS_gettid);
	pthread_setname_np(pthread_self(), "phaser");
	pthread_mutex_lock(&mu);
	while (!released)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	for (int i = 1; i <= phases; i++)
		fold_descend(i, now_ns(CLOCK_MONOTONIC) + phase_ns);
	if (rest_ns) {
		fold_rest();
		fold_descend(1, now_ns(CLOCK_MONOTONIC) + phase_ns);
	}
	note();
	pthread_mutex_lock(&mu);
	finished = 1;
	for (;;)
		pthread_cond_wait(&cv, &mu); /* blocked for good, alive */
	return NULL;
}

static char task_state(pid_t tid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	FILE *f = fopen(path, "r");
	if (!f)
		return '?';
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *paren = strrchr(buf, ')');
	return paren && paren[1] == ' ' ? paren[2] : '?';
}

static void switches(pid_t tid, uint64_t *vol, uint64_t *invol)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	FILE *f = fopen(path, "r");
	*vol = *invol = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long v;
		if (sscanf(line, "voluntary_ctxt_switches: %llu", &v) == 1)
			*vol = v;
		else if (sscanf(line, "nonvoluntary_ctxt_switches: %llu", &v) == 1)
			*invol = v;
	}
	fclose(f);
}

int main(int argc, char **argv)
{
	if (argc < 4 || argc > 5 || atoi(argv[2]) < 1 || atoi(argv[3]) < 1) {
		fprintf(stderr, "usage: foldprog OUT PHASES PHASE_MS [REST_MS]\n");
		return 2;
	}
	rest_ns = argc == 5 ? (uint64_t)atoi(argv[4]) * 1000000ull : 0;
	phases = atoi(argv[2]);
	phase_ns = (uint64_t)atoi(argv[3]) * 1000000ull;
	pairs = calloc(MAX_PAIRS, sizeof(*pairs));
	if (!pairs) {
		perror("calloc");
		return 1;
	}
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGUSR1);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* the worker inherits it: never interrupted */
	pthread_t th;
	if (pthread_create(&th, NULL, worker, NULL) != 0) {
		perror("pthread_create");
		return 1;
	}
	while (!worker_tid || task_state(worker_tid) != 'S')
		usleep(1000);
	printf("ready %d %d\n", getpid(), (int)worker_tid);
	fflush(stdout);
	int sig;
	sigwait(&sigs, &sig);
	uint64_t vol0, invol0, vol1, invol1;
	switches(worker_tid, &vol0, &invol0);
	pthread_mutex_lock(&mu);
	released = 1;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	for (;;) {
		pthread_mutex_lock(&mu);
		int done = finished;
		pthread_mutex_unlock(&mu);
		if (done && task_state(worker_tid) == 'S')
			break;
		usleep(2000);
	}
	switches(worker_tid, &vol1, &invol1);
	FILE *out = fopen(argv[1], "w");
	if (!out) {
		perror(argv[1]);
		return 1;
	}
	for (unsigned i = 0; i < npairs; i++)
		fprintf(out, "%llu %llu\n", (unsigned long long)pairs[i][0],
			(unsigned long long)pairs[i][1]);
	fprintf(out, "switches %llu %llu\n", (unsigned long long)(vol1 - vol0),
		(unsigned long long)(invol1 - invol0));
	fclose(out);
	printf("done %u\n", npairs);
	fflush(stdout);
	sigwait(&sigs, &sig);
	return 0;
}
