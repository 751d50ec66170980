// SPDX-License-Identifier: GPL-2.0
/* Where one walk of the native unwinder (unwind.bpf.h) spends its time: bench/unwind_parts.cpp
 * runs `unwind_bench` with BPF_PROG_TEST_RUN (a raw_tp program runs in the bpf() caller's
 * context: bpf_task_pt_regs(current) are the caller's user registers at its system call, its
 * stack is readable), from a known call chain of its own process, whose tables it loaded.
 *
 * Each run repeats one part `bench_reps` times between two clock reads and leaves the total in
 * bench_ns:
 *   CLOCK  one bpf_ktime_get_ns (to subtract from single-shot timings)
 *   WALK   the whole walk, kscope_unwind_walk (what kscope top and faults call)
 *   then the parts of a walk, each over the frames the last WALK found (its ips, their mappings
 *   and rows: bench_prepare fills them):
 *   PROCS  the unwind_procs hash lookup, once a frame
 *   MAPS   the binary search of the mappings, once a frame
 *   ROWS   the unwind_files lookup and the binary search of the rows, once a frame
 *   READS  two bpf_probe_read_user of 8 bytes a frame (return address, saved rbp), at the frames'
 *          own stack addresses
 *   READ16 one bpf_probe_read_user of 16 bytes a frame at the same addresses
 *   LOOP   an empty bpf_loop of one iteration a frame (the walk's own loop)
 *   STORE  the walk's end: the ustacks lookup of the walked stack's id
 * Nothing here is attached: only BPF_PROG_TEST_RUN runs it. */
#include "kscope_common.bpf.h"
#include "unwind.bpf.h"

char LICENSE[] SEC("license") = "GPL";

enum {
	BENCH_CLOCK = 0,
	BENCH_WALK,
	BENCH_PROCS,
	BENCH_MAPS,
	BENCH_ROWS,
	BENCH_READS,
	BENCH_READ16,
	BENCH_LOOP,
	BENCH_STORE,
	BENCH_PREPARE, /* not timed: fills the per-frame inputs of the parts from the last walk */
	BENCH_MODES,
};

/* In (all zero-initialized: one .bss section the skeleton maps): */
__u32 bench_mode = 0;
__u32 bench_reps = 0;
/* Out: */
__u64 bench_ns = 0;
__s32 bench_id = 0;
__u32 bench_len = 0;
__u32 bench_reason = 0;
__u32 bench_frames_with_row = 0; /* frames of the last walk that PREPARE found a row for */
#define BENCH_SLOTS 128 /* >= KSCOPE_UNWIND_MAX_FRAMES, a power of two */
__u64 bench_ips[BENCH_SLOTS];

/* Per frame of the last walk: its mapping's file and the file pc looked up, and two stack
 * addresses of the frame (for the reads). */
__u32 bench_file_ids[BENCH_SLOTS];
__u32 bench_fpcs[BENCH_SLOTS];
__u64 bench_addrs[BENCH_SLOTS];
__u64 bench_sink = 0; /* keeps results alive */

struct bench_args {
	__u32 tgid;
	__u64 ip, sp, bp;
	__u32 len;
	__u64 acc;
};

static long bench_walk_cb(__u32 i, void *data)
{
	struct bench_args *a = data;
	bench_id = kscope_unwind_walk(a->tgid, a->ip, a->sp, a->bp);
	return 0;
}

static long bench_clock_cb(__u32 i, void *data)
{
	struct bench_args *a = data;
	a->acc += bpf_ktime_get_ns();
	return 0;
}

/* Frame indexes are masked (the arrays have 128 slots): the verifier sees the bound on the
 * register the access uses. */
#define BENCH_FRAME(f) ((f) & (BENCH_SLOTS - 1))

/* The parts run once a frame: an inner bpf_loop over the frames (a plain loop would be verified
 * once per frame). */
static long bench_procs_frame(__u32 f, void *data)
{
	struct bench_args *a = data;
	struct kscope_unwind_process *p = bpf_map_lookup_elem(&unwind_procs, &a->tgid);
	a->acc += p ? p->count : 1;
	return 0;
}

static long bench_maps_frame(__u32 f, void *data)
{
	struct bench_args *a = data;
	f = BENCH_FRAME(f);
	struct kscope_unwind_process *p = bpf_map_lookup_elem(&unwind_procs, &a->tgid);
	if (!p)
		return 1;
	struct kscope_unwind_mapping *m = kscope_unwind_find_mapping(p, bench_ips[f]);
	a->acc += m ? m->file_id : 1;
	return 0;
}

static long bench_rows_frame(__u32 f, void *data)
{
	struct bench_args *a = data;
	f = BENCH_FRAME(f);
	if (bench_file_ids[f] == KSCOPE_UNWIND_NO_FILE)
		return 0;
	struct kscope_unwind_row *r = kscope_unwind_find_row(bench_file_ids[f], bench_fpcs[f]);
	a->acc += r ? r->cfa_off : 1;
	return 0;
}

static long bench_reads_frame(__u32 f, void *data)
{
	struct bench_args *a = data;
	f = BENCH_FRAME(f);
	__u64 x = 0, y = 0, addr = bench_addrs[f];
	kscope_unwind_read(&x, addr + 8);
	kscope_unwind_read(&y, addr);
	a->acc += x + y;
	return 0;
}

static long bench_read16_frame(__u32 f, void *data)
{
	struct bench_args *a = data;
	f = BENCH_FRAME(f);
	__u64 xy[2] = {};
	bpf_probe_read_user(xy, sizeof(xy), (const void *)bench_addrs[f]);
	a->acc += xy[0] + xy[1];
	return 0;
}

static long bench_empty_frame(__u32 f, void *data)
{
	struct bench_args *a = data;
	a->acc += f;
	return 0;
}

static long bench_procs_cb(__u32 i, void *data)
{
	struct bench_args *a = data;
	bpf_loop(a->len, bench_procs_frame, a, 0);
	return 0;
}

/* The mapping search with the procs lookup it needs (the walk does both each frame). */
static long bench_maps_cb(__u32 i, void *data)
{
	struct bench_args *a = data;
	bpf_loop(a->len, bench_maps_frame, a, 0);
	return 0;
}

static long bench_rows_cb(__u32 i, void *data)
{
	struct bench_args *a = data;
	bpf_loop(a->len, bench_rows_frame, a, 0);
	return 0;
}

static long bench_reads_cb(__u32 i, void *data)
{
	struct bench_args *a = data;
	bpf_loop(a->len, bench_reads_frame, a, 0);
	return 0;
}

static long bench_read16_cb(__u32 i, void *data)
{
	struct bench_args *a = data;
	bpf_loop(a->len, bench_read16_frame, a, 0);
	return 0;
}

static long bench_loop_cb(__u32 i, void *data)
{
	struct bench_args *a = data;
	bpf_loop(a->len, bench_empty_frame, a, 0);
	return 0;
}

static long bench_store_cb(__u32 i, void *data)
{
	struct bench_args *a = data;
	__u32 id = (__u32)bench_id;
	struct kscope_unwind_stack *s = bpf_map_lookup_elem(&ustacks, &id);
	a->acc += s ? s->len : 1;
	return 0;
}

/* The inputs of the parts from the stack the last WALK stored (bench_id). */
static long bench_prepare_frame(__u32 f, void *data)
{
	struct bench_args *a = data;
	__u32 id = (__u32)bench_id;
	struct kscope_unwind_stack *s = bpf_map_lookup_elem(&ustacks, &id);
	struct kscope_unwind_process *p = bpf_map_lookup_elem(&unwind_procs, &a->tgid);
	if (!s || !p || f >= KSCOPE_UNWIND_MAX_FRAMES)
		return 1;
	__u32 k = f;
	asm volatile("" : "+r"(k));
	if (k >= KSCOPE_UNWIND_MAX_FRAMES)
		return 1;
	__u64 pc = s->ips[k];
	bench_ips[k] = pc;
	/* The frames' stack addresses for the reads: sp, then 16 bytes further per frame (every
	 * frame holds at least its return address and the alignment, so these lie inside the
	 * walked frames). */
	bench_addrs[k] = a->sp + 16 * (__u64)k;
	bench_file_ids[k] = KSCOPE_UNWIND_NO_FILE;
	struct kscope_unwind_mapping *m = kscope_unwind_find_mapping(p, pc);
	if (!m || m->file_id == KSCOPE_UNWIND_NO_FILE)
		return 0;
	__u64 lookup = k == 0 ? pc : pc - 1;
	if (lookup < m->bias || lookup - m->bias > 0xffffffffull)
		return 0;
	bench_file_ids[k] = m->file_id;
	bench_fpcs[k] = (__u32)(lookup - m->bias);
	bench_frames_with_row++;
	return 0;
}

static __always_inline int bench_prepare(struct bench_args *a)
{
	__u32 id = (__u32)bench_id;
	struct kscope_unwind_stack *s = bpf_map_lookup_elem(&ustacks, &id);
	if (!s)
		return -1;
	__u32 len = s->len;
	bench_len = len;
	bench_reason = s->reason;
	bench_frames_with_row = 0;
	bpf_loop(len < KSCOPE_UNWIND_MAX_FRAMES ? len : KSCOPE_UNWIND_MAX_FRAMES,
		 bench_prepare_frame, a, 0);
	return 0;
}

SEC("raw_tp")
int unwind_bench(void *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	struct bench_args a = {
		.tgid = bpf_get_current_pid_tgid() >> 32,
		.ip = BPF_CORE_READ(regs, ip),
		.sp = BPF_CORE_READ(regs, sp),
		.bp = BPF_CORE_READ(regs, bp),
		.len = bench_len < KSCOPE_UNWIND_MAX_FRAMES ? bench_len : KSCOPE_UNWIND_MAX_FRAMES,
	};
	__u32 reps = bench_reps;
	__u32 mode = bench_mode;
	if (mode == BENCH_PREPARE)
		return bench_prepare(&a);
	__u64 t0 = bpf_ktime_get_ns();
	switch (mode) {
	case BENCH_CLOCK:
		bpf_loop(reps, bench_clock_cb, &a, 0);
		break;
	case BENCH_WALK:
		bpf_loop(reps, bench_walk_cb, &a, 0);
		break;
	case BENCH_PROCS:
		bpf_loop(reps, bench_procs_cb, &a, 0);
		break;
	case BENCH_MAPS:
		bpf_loop(reps, bench_maps_cb, &a, 0);
		break;
	case BENCH_ROWS:
		bpf_loop(reps, bench_rows_cb, &a, 0);
		break;
	case BENCH_READS:
		bpf_loop(reps, bench_reads_cb, &a, 0);
		break;
	case BENCH_READ16:
		bpf_loop(reps, bench_read16_cb, &a, 0);
		break;
	case BENCH_LOOP:
		bpf_loop(reps, bench_loop_cb, &a, 0);
		break;
	case BENCH_STORE:
		bpf_loop(reps, bench_store_cb, &a, 0);
		break;
	default:
		return -1;
	}
	bench_ns = bpf_ktime_get_ns() - t0;
	bench_sink += a.acc;
	return 0;
}
