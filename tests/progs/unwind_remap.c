/* Ground truth for the native unwinder's early mappings across munmap(): maps the executable
 * PT_LOAD of FILE_A, unmaps it, maps FILE_B's at the same address, waiting for SIGUSR1 before
 * each step, and says what it did:
 *
 *   unwind_remap FILE_A FILE_B
 *     "ready PID"                          then waits
 *     "mapped a START END"                 FILE_A's text at [START, END), then waits
 *     "unmapped START END"                 then waits
 *     "mapped b START END"                 FILE_B's text at the same START, then waits
 *     "done"
 *
 * The files' inodes are the test's to read (stat). */
#define _GNU_SOURCE
#include <elf.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static sigset_t usr1;

static void step(void)
{
	int sig;
	fflush(stdout);
	sigwait(&usr1, &sig);
}

/* Maps the first executable PT_LOAD of path at `at` (0: anywhere); returns its start and sets
 * *len. */
static char *map_text(const char *path, char *at, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	Elf64_Ehdr eh;
	if (fd < 0 || pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) || eh.e_phentsize != sizeof(Elf64_Phdr)) {
		fprintf(stderr, "unwind_remap: cannot read %s\n", path);
		exit(1);
	}
	for (int i = 0; i < eh.e_phnum && i < 64; i++) {
		Elf64_Phdr ph;
		if (pread(fd, &ph, sizeof(ph), eh.e_phoff + (off_t)i * sizeof(ph)) != sizeof(ph))
			break;
		if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X))
			continue;
		off_t off = ph.p_offset & ~0xfffL;
		*len = ((ph.p_offset + ph.p_filesz - off) + 0xfff) & ~0xfffUL;
		char *p = mmap(at, *len, PROT_READ | PROT_EXEC,
			       MAP_PRIVATE | (at ? MAP_FIXED_NOREPLACE : 0), fd, off);
		if (p == MAP_FAILED || (at && p != at)) {
			perror("unwind_remap: mmap");
			exit(1);
		}
		close(fd);
		return p;
	}
	fprintf(stderr, "unwind_remap: %s has no executable PT_LOAD\n", path);
	exit(1);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: unwind_remap FILE_A FILE_B\n");
		return 2;
	}
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, NULL);
	printf("ready %d\n", (int)getpid());
	step();
	size_t len_a = 0, len_b = 0;
	char *a = map_text(argv[1], NULL, &len_a);
	printf("mapped a %lx %lx\n", (unsigned long)a, (unsigned long)(a + len_a));
	step();
	munmap(a, len_a);
	printf("unmapped %lx %lx\n", (unsigned long)a, (unsigned long)(a + len_a));
	step();
	char *b = map_text(argv[2], a, &len_b);
	printf("mapped b %lx %lx\n", (unsigned long)b, (unsigned long)(b + len_b));
	step();
	printf("done\n");
	return 0;
}
