/* threadprog: a multi-threaded process whose threads' page faults the tests control.
 *
 * Usage: threadprog rounds T N   T worker threads; prints "ready PID TID..." on stdout, then on
 *                                each SIGUSR1 every worker writes N fresh anonymous pages and
 *                                the main thread prints "done K" (K = rounds so far) once all
 *                                are idle again. Between rounds every thread is blocked, so its
 *                                /proc/PID/task/TID/stat counters are stable. SIGTERM ends it.
 *        threadprog busy T       T worker threads that map, write and unmap 64 fresh pages in
 *                                a loop without pause; prints "ready PID TID..." once all run.
 *        threadprog leader-exit N MS  the main thread prints "ready PID TID" and pthread_exit()s;
 *                                its one worker then waits 200 ms, writes N fresh pages (kept
 *                                mapped), stays alive MS more milliseconds and exits the process
 *                                with status 0: a process whose main thread is a zombie while
 *                                the process still runs.
 * Faults are plain writes (no MAP_POPULATE, no mlock): every one fires a per-fault event.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define MAX_THREADS 64

static size_t pages_per_round;
static pthread_barrier_t start_barrier, end_barrier, ready_barrier;
static pid_t tids[MAX_THREADS];

static void write_fresh_pages(size_t n)
{
	char *p = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	for (size_t i = 0; i < n; i++)
		((volatile char *)p)[i * PAGE] = 1;
	munmap(p, n * PAGE);
}

static void *round_worker(void *arg)
{
	tids[(long)arg] = (pid_t)syscall(SYS_gettid);
	pthread_barrier_wait(&ready_barrier);
	for (;;) {
		pthread_barrier_wait(&start_barrier);
		write_fresh_pages(pages_per_round);
		pthread_barrier_wait(&end_barrier);
	}
	return NULL;
}

static void *busy_worker(void *arg)
{
	tids[(long)arg] = (pid_t)syscall(SYS_gettid);
	pthread_barrier_wait(&ready_barrier);
	for (;;)
		write_fresh_pages(64);
	return NULL;
}

static size_t leader_exit_pages;
static long leader_exit_ms;

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts))
		;
}

static void *leader_exit_worker(void *arg)
{
	tids[(long)arg] = (pid_t)syscall(SYS_gettid);
	pthread_barrier_wait(&ready_barrier);
	sleep_ms(200);
	char *p = mmap(NULL, leader_exit_pages * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		exit(1);
	for (size_t i = 0; i < leader_exit_pages; i++)
		((volatile char *)p)[i * PAGE] = 1;
	sleep_ms(leader_exit_ms);
	exit(0);
}

static void print_ready(int t)
{
	printf("ready %d", (int)getpid());
	for (int i = 0; i < t; i++)
		printf(" %d", (int)tids[i]);
	printf("\n");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: threadprog rounds T N | busy T | leader-exit N MS\n");
		return 2;
	}
	if (!strcmp(argv[1], "leader-exit")) {
		if (argc < 4)
			return 2;
		leader_exit_pages = (size_t)atol(argv[2]);
		leader_exit_ms = atol(argv[3]);
		pthread_barrier_init(&ready_barrier, NULL, 2);
		pthread_t th;
		if (pthread_create(&th, NULL, leader_exit_worker, (void *)0))
			return 1;
		pthread_barrier_wait(&ready_barrier);
		print_ready(1);
		pthread_exit(NULL);
	}
	int t = atoi(argv[2]);
	if (t < 1 || t > MAX_THREADS) {
		fprintf(stderr, "threadprog: T must be 1..%d\n", MAX_THREADS);
		return 2;
	}
	/* Workers inherit this mask: only the main thread takes SIGUSR1 (sigwait). */
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	pthread_barrier_init(&ready_barrier, NULL, (unsigned)t + 1);
	pthread_barrier_init(&start_barrier, NULL, (unsigned)t + 1);
	pthread_barrier_init(&end_barrier, NULL, (unsigned)t + 1);
	int rounds = !strcmp(argv[1], "rounds");
	if (rounds) {
		if (argc < 4)
			return 2;
		pages_per_round = (size_t)atol(argv[3]);
	} else if (strcmp(argv[1], "busy")) {
		fprintf(stderr, "threadprog: unknown mode %s\n", argv[1]);
		return 2;
	}
	for (long i = 0; i < t; i++) {
		pthread_t th;
		if (pthread_create(&th, NULL, rounds ? round_worker : busy_worker, (void *)i)) {
			fprintf(stderr, "threadprog: pthread_create failed\n");
			return 1;
		}
	}
	pthread_barrier_wait(&ready_barrier);
	print_ready(t);
	if (!rounds)
		for (;;)
			pause();
	for (int k = 1;; k++) {
		int sig;
		sigwait(&usr1, &sig);
		pthread_barrier_wait(&start_barrier);
		pthread_barrier_wait(&end_barrier);
		printf("done %d\n", k);
		fflush(stdout);
	}
}
