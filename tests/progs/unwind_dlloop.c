/* Ground truth for freeing the unwind tables of unmapped files: dlopen()s each LIB in turn, runs
 * its dl_entry (tests/progs/lib/unwind_dl.c: dl_entry -> dl_middle -> dl_leaf, spinning SPIN
 * seconds), dlclose()s it and waits GAP seconds before the next, so a tracer sees each library
 * mapped, used and unmapped in turn.
 *
 *   unwind_dlloop SPIN GAP LIB...     prints "ready PID", waits for SIGUSR1, then "opened I" and
 *                                     "closed I" per library, "done" at the end
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: unwind_dlloop SPIN GAP LIB...\n");
		return 2;
	}
	double spin = atof(argv[1]), gap = atof(argv[2]);
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, NULL);
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	int sig;
	sigwait(&usr1, &sig);
	for (int i = 3; i < argc; i++) {
		void *lib = dlopen(argv[i], RTLD_NOW | RTLD_LOCAL);
		if (!lib) {
			fprintf(stderr, "unwind_dlloop: %s\n", dlerror());
			return 1;
		}
		void (*entry)(double) = (void (*)(double))dlsym(lib, "dl_entry");
		if (!entry) {
			fprintf(stderr, "unwind_dlloop: no dl_entry in %s\n", argv[i]);
			return 1;
		}
		printf("opened %d\n", i - 3);
		fflush(stdout);
		entry(now() + spin);
		dlclose(lib);
		printf("closed %d\n", i - 3);
		fflush(stdout);
		struct timespec ts = {(time_t)gap, (long)((gap - (double)(time_t)gap) * 1e9)};
		nanosleep(&ts, NULL);
	}
	printf("done\n");
	fflush(stdout);
	return 0;
}
