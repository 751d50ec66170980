/* clang-format off */
/* (C in the kernel style of the programs that include it, like the other test programs) */
/* The worker gate of the thread programs behind the kscope top tests (oncpuprog, topprog), and
 * main's view of its workers' scheduling state.
 *
 * NWORKERS worker threads each call gate_arrive() when started: counted, they block until main
 * releases them all at once (gate_release_and_wait_done); after their work, gate_leave() counts
 * them done and blocks them for good (the program is killed). So the work lies between two
 * moments at which every worker is blocked (state S, wait_blocked()), where main reads the
 * ground truth. The including program defines NWORKERS, worker_tid(i) (the tid of worker i), its
 * workers[NWORKERS] (each with a clockid_t cpu_clock) and worker_main(&workers[i]), the thread
 * function; gate_start() starts them.
 */
#ifndef KSCOPE_TESTS_PROGS_LIB_WORKER_GATE_H
#define KSCOPE_TESTS_PROGS_LIB_WORKER_GATE_H

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static pid_t worker_tid(int i);
static void *worker_main(void *arg);

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t go_cond = PTHREAD_COND_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static int go, started, done;

/* In a worker, before its work: counted as started, then blocked until the release. */
static void gate_arrive(void)
{
	pthread_mutex_lock(&lock);
	started++;
	pthread_cond_broadcast(&done_cond);
	while (!go)
		pthread_cond_wait(&go_cond, &lock);
	pthread_mutex_unlock(&lock);
}

/* In a worker, after its work: counted as done, then blocked until the program ends. */
static void gate_leave(void)
{
	pthread_mutex_lock(&lock);
	done++;
	pthread_cond_broadcast(&done_cond);
	while (go != 2)
		pthread_cond_wait(&go_cond, &lock);
	pthread_mutex_unlock(&lock);
}

/* In main: until every worker has arrived at the gate. */
static void gate_wait_started(void)
{
	pthread_mutex_lock(&lock);
	while (started < NWORKERS)
		pthread_cond_wait(&done_cond, &lock);
	pthread_mutex_unlock(&lock);
}

/* In main: releases every worker, then waits until all of them are done. */
static void gate_release_and_wait_done(void)
{
	pthread_mutex_lock(&lock);
	go = 1;
	pthread_cond_broadcast(&go_cond);
	while (done < NWORKERS)
		pthread_cond_wait(&done_cond, &lock);
	pthread_mutex_unlock(&lock);
}

static uint64_t clock_ns(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The scheduling state letter of one of this process's threads ('?' when unreadable). */
static char thread_state(pid_t tid)
{
	char path[128], buf[1024];
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	FILE *f = fopen(path, "r");
	if (!f)
		return '?';
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	fclose(f);
	char *p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

/* Until every worker is blocked in the kernel (S): its last switch-out has happened. Gives up
 * after about 5 s (the ground truth read then is still what it is). */
static void wait_blocked(void)
{
	for (int tries = 0; tries < 5000; tries++) {
		int all = 1;
		for (int i = 0; i < NWORKERS; i++)
			if (thread_state(worker_tid(i)) != 'S')
				all = 0;
		if (all)
			return;
		usleep(1000);
	}
}

/* In main: blocks SIGUSR1 (the workers inherit the mask), starts the workers and takes their CPU
 * clocks, waits until every one is blocked at the gate, prints "ready PID" and waits for SIGUSR1
 * (sent once the tracer is attached). */
static void gate_start(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	for (int i = 0; i < NWORKERS; i++) {
		pthread_t th;
		pthread_create(&th, NULL, worker_main, &workers[i]);
		pthread_getcpuclockid(th, &workers[i].cpu_clock);
	}
	gate_wait_started();
	wait_blocked();
	printf("ready %d\n", getpid());
	fflush(stdout);

	int sig;
	sigwait(&set, &sig);
}

#endif
