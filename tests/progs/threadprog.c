/* threadprog: a multi-threaded process whose threads' page faults the tests control.
 *
 * Usage: threadprog rounds T N   T worker threads; prints "ready PID TID..." on stdout, then on
 *                                each SIGUSR1 every worker writes N fresh anonymous pages and
 *                                the main thread prints "done K" (K = rounds so far) once all
 *                                are idle again. Between rounds every thread is blocked, so its
 *                                /proc/PID/task/TID/stat counters are stable. SIGTERM ends it.
 *        threadprog busy T       T worker threads that map, write and unmap 64 fresh pages in
 *                                a loop without pause; prints "ready PID TID..." once all run.
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
		fprintf(stderr, "usage: threadprog rounds T N | busy T\n");
		return 2;
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
