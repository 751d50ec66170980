// SPDX-License-Identifier: GPL-2.0
/* kscope faults: one complete record per page fault of the traced processes.
 *
 * A fault is seen twice:
 *  - at entry, by the exceptions:page_fault_user / page_fault_kernel tracepoints
 *    (arch/x86/mm/fault.c handle_page_fault(), before the fault is handled): they know the
 *    address, the instruction pointer and the hardware error code (read/write/exec), and this is
 *    where the VMA and the mm's segment bounds are looked up;
 *  - at resolution, by the PERF_COUNT_SW_PAGE_FAULTS_MIN/_MAJ software events, which
 *    mm_account_fault() fires after the retry loop with the final minor/major outcome.
 * The entry is kept per thread in task storage and completed by the software-event program of
 * the same thread, which emits one record with the latency between the two.
 *
 * Faults taken through get_user_pages() (MAP_POPULATE, execve argument copying,
 * process_vm_readv) are counted by the kernel in task->min_flt/maj_flt but call
 * mm_account_fault() with regs == NULL, so no software event fires: user space reconciles with
 * the per-thread counters reported at thread exit.
 */
#include "kscope_common.bpf.h"
#include "kscope/abi/faults.h"
#include "unwind.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by user space between open and load. */
const volatile __u64 wakeup_bytes = 1 << 20;
const volatile bool follow_children = false;
/* kscope faults --stacks: enum kscope_fault_stack_mode. */
const volatile __u8 stack_mode = KSCOPE_FAULT_STACKS_OFF;

/* Set by user space: KSCOPE_TRACING_* (threads keep their task storage). */
__u32 tracing_enabled = KSCOPE_TRACING_OFF;

/* x86 page-fault error code bits (arch/x86/include/asm/trap_pf.h). */
#define X86_PF_WRITE (1UL << 1)
#define X86_PF_INSTR (1UL << 4)
#define RLIMIT_STACK_IDX 3
#ifndef EEXIST
#define EEXIST 17
#endif

struct pending_fault {
	__u64 ts_ns;
	__u64 addr;
	__u64 ip;
	__u16 flags; /* access, mode and segment, as in kscope_fault_event.flags */
	__u8 valid;
	__u8 announced; /* a task (or exec) record has named this thread */
	/* The last VMA this thread faulted in, valid while mm->mm_lock_seq is unchanged: every
	 * mmap_write_unlock() bumps it, so no mmap/munmap/mprotect/brk happened in between. */
	__u16 cache_segment;
	__u16 cache_valid;
	__u32 cache_seq;
	__u64 cache_start;
	__u64 cache_end;
	__u32 cpu;     /* CPU the pending fault was taken on */
	__u8 base_set; /* thread_bounds has this thread's base */
	__u8 end_set;  /* ... and its end */
	__u8 walking;  /* take_stacks() is reading this thread's memory (see on_fault_entry) */
	__u8 pad;
	__s32 ustack; /* the pending fault's stacks (kscope_fault_event.ustack/kstack) */
	__s32 kstack;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct pending_fault);
} pending SEC(".maps");

/* Thread group ids being traced. User space inserts the targets; fork adds children when
 * follow_children is set. Value: unused. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u32);
} traced_tgids SEC(".maps");

/* kscope faults -t: the traced threads (their tgid is KSCOPE_TGID_THREADS in traced_tgids). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u32);
} traced_tids SEC(".maps");

/* See struct kscope_thread_bounds. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct kscope_thread_bounds);
} thread_bounds SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events SEC(".maps");

/* Kernel stacks of kernel-mode faults, and user stacks with frame pointers (--stacks=fp). */
struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 16384); /* resized by user space */
	__uint(key_size, sizeof(__u32));
	__uint(value_size, 127 * sizeof(__u64));
} fault_stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KSCOPE_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} fault_counters SEC(".maps");

static __always_inline void count_n(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&fault_counters, &idx);
	if (v)
		*v += n;
}

static __always_inline void count(__u32 idx)
{
	count_n(idx, 1);
}

/* This CPU's batch of fault records (see KSCOPE_FAULT_BATCH): the header and records are laid
 * out as the ring-buffer record they become. */
struct fault_batch {
	struct kscope_fault_batch_header hdr;
	struct kscope_fault_event ev[KSCOPE_FAULT_BATCH];
	/* Set while this CPU writes the batch: the flush program may interrupt it (it runs in an
	 * IPI) and must then leave the batch alone. */
	__u32 busy;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fault_batch);
} batches SEC(".maps");

#define barrier() asm volatile("" ::: "memory")

/* Writes the batch to the ring buffer (the caller owns it: busy set, or in the flush IPI with
 * busy clear). */
static __always_inline void write_batch(struct fault_batch *b)
{
	__u32 n = b->hdr.count;
	if (n == 0)
		return;
	if (n > KSCOPE_FAULT_BATCH)
		n = KSCOPE_FAULT_BATCH;
	b->hdr.type = KSCOPE_REC_FAULT_BATCH;
	b->hdr.pad = 0;
	b->hdr.count = n;
	__u64 size = sizeof(b->hdr) + (__u64)n * sizeof(struct kscope_fault_event);
	/* Hide the arithmetic from clang (it turns "+ 8" into "| 8", which the verifier cannot
	 * bound) and bound it for the verifier. */
	asm volatile("" : "+r"(size));
	if (size > sizeof(b->hdr) + sizeof(b->ev))
		size = sizeof(b->hdr) + sizeof(b->ev);
	if (bpf_ringbuf_output(&events, b, size, kscope_rb_flags(&events, wakeup_bytes)) == 0)
		count_n(KSCOPE_CNT_FAULT_EMITTED, n);
	else
		count_n(KSCOPE_CNT_FAULT_DROPPED, n);
	b->hdr.count = 0;
}

/* Control records keep their order relative to this CPU's faults: write the batch first. */
static __always_inline void flush_this_cpu(void)
{
	__u32 zero = 0;
	struct fault_batch *b = bpf_map_lookup_elem(&batches, &zero);
	if (!b || b->busy)
		return;
	b->busy = 1;
	barrier();
	write_batch(b);
	barrier();
	b->busy = 0;
}

static __always_inline bool is_traced(__u32 tgid)
{
	__u32 *state = bpf_map_lookup_elem(&traced_tgids, &tgid);
	return state && *state == KSCOPE_TGID_TRACED;
}

/* A thread of a traced process, or one of the threads traced by -t. */
static __always_inline bool thread_traced(__u32 tgid, __u32 tid)
{
	__u32 *state = bpf_map_lookup_elem(&traced_tgids, &tgid);

	if (!state)
		return false;
	if (*state == KSCOPE_TGID_TRACED)
		return true;
	return *state == KSCOPE_TGID_THREADS && bpf_map_lookup_elem(&traced_tids, &tid);
}

/* The thread's own counters now, as its base or end bound (see kscope_thread_bounds). At a
 * fault entry the fault is not counted yet: mm_account_fault() counts it at completion. */
static __always_inline void note_bounds(struct task_struct *task, __u32 tid, bool end)
{
	struct kscope_thread_bounds *b = bpf_map_lookup_elem(&thread_bounds, &tid);

	if (!b) {
		struct kscope_thread_bounds zero = {};

		bpf_map_update_elem(&thread_bounds, &tid, &zero, BPF_NOEXIST);
		b = bpf_map_lookup_elem(&thread_bounds, &tid);
		if (!b) {
			count(KSCOPE_CNT_BOUNDS_FULL);
			return;
		}
	}
	if (end) {
		b->end_min_flt = task->min_flt;
		b->end_maj_flt = task->maj_flt;
		b->flags |= KSCOPE_BOUNDS_END;
	} else {
		b->base_min_flt = task->min_flt;
		b->base_maj_flt = task->maj_flt;
		b->flags |= KSCOPE_BOUNDS_BASE;
	}
}

/* A thread's name (`comm`: the task's, or a new one being set) for user space. */
static __always_inline void emit_task(const char *comm, __u32 tgid, __u32 tid, __u64 now)
{
	flush_this_cpu();
	struct kscope_task_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(KSCOPE_CNT_CTRL_DROPPED);
		return;
	}
	e->type = KSCOPE_REC_TASK;
	e->pad = 0;
	e->pid = tgid;
	e->tid = tid;
	e->pad2 = 0;
	e->ts_ns = now;
	bpf_probe_read_kernel_str(e->comm, sizeof(e->comm), comm);
	bpf_ringbuf_submit(e, 0);
}

struct vma_lookup {
	__u64 start_stack;
	__u64 vm_start;
	__u64 vm_end;
	__u16 segment;
};

static long classify_vma(struct task_struct *task, struct vm_area_struct *vma, void *data)
{
	struct vma_lookup *c = data;

	c->vm_start = vma->vm_start;
	c->vm_end = vma->vm_end;
	if (vma->vm_start <= c->start_stack && c->start_stack < vma->vm_end)
		c->segment = KSCOPE_SEG_STACK;
	else if (vma->vm_file)
		c->segment = KSCOPE_SEG_FILE;
	else if (vma->vm_ops)
		/* Anonymous VMAs have no vm_ops (vma_set_anonymous()); an anonymous mapping with
		 * vm_ops is a special mapping: [vdso], [vvar], uprobes' XOL area. */
		c->segment = KSCOPE_SEG_OTHER;
	else
		c->segment = KSCOPE_SEG_ANON;
	return 0;
}

/* The segment rules of `kscope faults` (README, "Segments"), from the mm's own bounds first and
 * the VMA second. */
/* mm->mm_lock_seq exists with CONFIG_PER_VMA_LOCK (6.4+); an int before 6.12, a seqcount_t
 * (whose first member is the sequence) after: read its first 32 bits either way. */
struct seqcount___kscope {
	unsigned int sequence;
};
struct mm_struct___seqcount {
	struct seqcount___kscope mm_lock_seq;
} __attribute__((preserve_access_index));
struct mm_struct___int {
	int mm_lock_seq;
} __attribute__((preserve_access_index));

static __always_inline bool read_mm_seq(struct mm_struct *mm, __u32 *seq)
{
	/* A direct load (mm is a BTF pointer), not a probe-read helper call: this runs per fault. */
	if (bpf_core_field_exists(struct mm_struct___seqcount, mm_lock_seq.sequence)) {
		*seq = ((struct mm_struct___seqcount *)mm)->mm_lock_seq.sequence;
		return true;
	}
	if (bpf_core_field_exists(struct mm_struct___int, mm_lock_seq)) {
		*seq = (__u32)((struct mm_struct___int *)mm)->mm_lock_seq;
		return true;
	}
	return false;
}

static __always_inline __u16 classify_segment(struct task_struct *task, __u64 addr,
					      struct pending_fault *p)
{
	struct mm_struct *mm = task->mm;
	struct vma_lookup c = {};
	bool have_seq;
	__u32 seq = 0;
	long err;

	if (!mm)
		return KSCOPE_SEG_OTHER;
	if (addr >= mm->start_code && addr < mm->end_code)
		return KSCOPE_SEG_CODE;
	if (addr >= mm->start_data && addr < mm->start_brk)
		return KSCOPE_SEG_DATA;
	if (addr >= mm->start_brk && addr < mm->brk)
		return KSCOPE_SEG_HEAP;

	/* bpf_find_vma() takes mmap_lock and walks the maple tree: measured at several
	 * microseconds per fault here, so reuse the last answer while the address space is
	 * unchanged. */
	have_seq = read_mm_seq(mm, &seq);
	if (have_seq && p->cache_valid && p->cache_seq == seq && addr >= p->cache_start &&
	    addr < p->cache_end)
		return p->cache_segment;

	c.start_stack = mm->start_stack;
	c.segment = KSCOPE_SEG_OTHER;
	err = bpf_find_vma(task, addr, classify_vma, &c, 0);
	if (!err && have_seq) {
		p->cache_valid = 1;
		p->cache_seq = seq;
		p->cache_start = c.vm_start;
		p->cache_end = c.vm_end;
		p->cache_segment = c.segment;
	}
	if (err == -ENOENT) {
		/* No VMA covers the address yet: a stack access below the stack VMA is expanded by
		 * lock_mm_and_find_vma() after this tracepoint. Anything else is a bad access. */
		__u64 limit = task->signal->rlim[RLIMIT_STACK_IDX].rlim_cur;
		if (addr < c.start_stack && c.start_stack - addr <= limit)
			return KSCOPE_SEG_STACK;
		return KSCOPE_SEG_OTHER;
	}
	if (err) {
		/* -EBUSY: mmap_lock was contended (bpf_find_vma only trylocks): the VMA is not
		 * known, so neither is the segment. Said as such, never guessed. */
		count(KSCOPE_CNT_VMA_BUSY);
		return KSCOPE_SEG_UNKNOWN;
	}
	return c.segment;
}

/* A stack id in fault_stacks, or why there is none. Without BPF_F_REUSE_STACKID a bucket that
 * holds another stack is an -EEXIST (a collision), never an overwritten or wrong stack. */
static __always_inline __s32 fault_stack_id(void *ctx, __u64 flags)
{
	long id = bpf_get_stackid(ctx, &fault_stacks, flags);
	if (id >= 0)
		return (__s32)id;
	return id == -EEXIST ? KSCOPE_FAULT_STACK_COLLISION : KSCOPE_FAULT_STACK_ERROR;
}

/* The stacks of the fault being entered (kscope faults --stacks). A user-mode fault's regs are
 * its user registers; a kernel-mode fault (get_user_pages, copy_to_user) walks the kernel stack
 * and the user registers saved at kernel entry. */
static __always_inline void take_stacks(void *ctx, struct task_struct *task, struct pt_regs *regs,
					bool kernel_mode, struct pending_fault *p)
{
	p->ustack = KSCOPE_FAULT_STACK_NONE;
	p->kstack = KSCOPE_FAULT_STACK_NONE;
	if (stack_mode == KSCOPE_FAULT_STACKS_OFF)
		return;
	if (kernel_mode)
		p->kstack = fault_stack_id(ctx, 0);
	if (stack_mode == KSCOPE_FAULT_STACKS_FP) {
		p->ustack = fault_stack_id(ctx, BPF_F_USER_STACK);
		return;
	}
	struct pt_regs *u = kernel_mode ? (struct pt_regs *)bpf_task_pt_regs(task) : regs;
	p->ustack = kscope_unwind_user(task->tgid, BPF_CORE_READ(u, ip), BPF_CORE_READ(u, sp),
				       BPF_CORE_READ(u, bp));
}

static __always_inline int on_fault_entry(void *ctx, unsigned long address, struct pt_regs *regs,
					  unsigned long error_code, bool kernel_mode)
{
	__u32 state = tracing_enabled;
	struct task_struct *task;
	struct pending_fault *p;
	__u64 id;
	__u16 flags;

	if (state == KSCOPE_TRACING_OFF)
		return 0;
	/* page_fault_kernel also fires for faults on kernel addresses (vmalloc, ...): only faults on
	 * user memory belong to the process. Kernel addresses have the top bit set. */
	if ((long)address < 0)
		return 0;

	/* A thread of a traced process has task storage from its first fault on: one lookup, no
	 * hash-map lookup per fault. Other threads fall through to the traced-process filter. */
	task = bpf_get_current_task_btf();
	p = bpf_task_storage_get(&pending, task, 0, 0);
	if (!p) {
		id = bpf_get_current_pid_tgid();
		/* Stopping: a thread that never faulted while tracing keeps no state. */
		if (state != KSCOPE_TRACING_ON || !thread_traced(id >> 32, (__u32)id))
			return 0;
		p = bpf_task_storage_get(&pending, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (!p) {
			count(KSCOPE_CNT_NO_STORAGE);
			return 0;
		}
	}
	/* A fault taken by our own walk of this thread's stack (take_stacks() below, with page
	 * faults disabled): the frame-pointer walk follows rbp wherever it points, and a binary
	 * built without frame pointers keeps data pointers there, often into pages not faulted in
	 * yet. The kernel raises page_fault_kernel for it, then fails the read; the program never
	 * took this fault, so it must not overwrite the pending one. Counted, not recorded. */
	if (p->walking) {
		count(KSCOPE_CNT_OWN_READ);
		return 0;
	}
	if (state != KSCOPE_TRACING_ON) {
		if (!p->end_set) {
			p->end_set = 1;
			note_bounds(task, task->pid, true);
		}
		return 0;
	}
	if (!p->base_set) {
		p->base_set = 1;
		note_bounds(task, task->pid, false);
	}
	if (p->valid)
		count(KSCOPE_CNT_FAILED_ENTRY);

	if (error_code & X86_PF_INSTR)
		flags = 2;
	else if (error_code & X86_PF_WRITE)
		flags = 1;
	else
		flags = 0;
	if (kernel_mode)
		flags |= KSCOPE_FAULT_KERNEL_MODE;
	/* The segment is decided at completion, not here: this tracepoint runs before
	 * do_user_addr_fault() enables interrupts, and with interrupts off bpf_find_vma() has to
	 * defer its mmap_read_unlock() to irq_work, an interrupt per fault (measured: 8x slower). */

	p->ts_ns = bpf_ktime_get_ns();
	p->addr = address;
	p->ip = PT_REGS_IP(regs);
	p->flags = flags;
	p->cpu = bpf_get_smp_processor_id();
	p->walking = 1;
	take_stacks(ctx, task, regs, kernel_mode, p);
	p->walking = 0;
	p->valid = 1;
	return 0;
}

SEC("tp_btf/page_fault_user")
int BPF_PROG(fault_entry_user, unsigned long address, struct pt_regs *regs,
	     unsigned long error_code)
{
	return on_fault_entry(ctx, address, regs, error_code, false);
}

SEC("tp_btf/page_fault_kernel")
int BPF_PROG(fault_entry_kernel, unsigned long address, struct pt_regs *regs,
	     unsigned long error_code)
{
	return on_fault_entry(ctx, address, regs, error_code, true);
}

static __always_inline int on_fault_done(struct bpf_perf_event_data *ctx, bool major)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, tid = (__u32)id;
	struct kscope_fault_event *e;
	struct task_struct *task;
	struct pending_fault *p;
	__u64 now;

	/* While stopping, faults that entered while tracing was on still complete. */
	if (tracing_enabled == KSCOPE_TRACING_OFF)
		return 0;
	/* Only threads of traced processes have task storage (see on_fault_entry). */
	task = bpf_get_current_task_btf();
	p = bpf_task_storage_get(&pending, task, 0, 0);
	if (!p)
		return 0;
	if (!p->valid || p->addr != ctx->addr) {
		count(KSCOPE_CNT_NO_ENTRY);
		return 0;
	}
	p->valid = 0;
	now = bpf_ktime_get_ns();

	if (!p->announced) {
		p->announced = 1;
		/* Stamped with the fault's start, so user space orders it before the fault. */
		emit_task(task->comm, tgid, tid, p->ts_ns);
	}

	__u32 zero = 0;
	struct fault_batch *b = bpf_map_lookup_elem(&batches, &zero);
	if (!b || b->busy) {
		/* Cannot happen (nothing that writes faults nests on a CPU); counted, not silent. */
		count(KSCOPE_CNT_FAULT_DROPPED);
		return 0;
	}
	b->busy = 1;
	barrier();
	__u32 n = b->hdr.count;
	if (n >= KSCOPE_FAULT_BATCH) {
		write_batch(b);
		n = 0;
	}
	e = &b->ev[n];
	e->type = KSCOPE_REC_FAULT;
	/* mm_account_fault() runs in process context with interrupts on; a stack fault below the
	 * stack VMA has been expanded into it by now. */
	e->flags = p->flags | (major ? KSCOPE_FAULT_MAJOR : 0) |
		   (classify_segment(task, p->addr, p) << KSCOPE_FAULT_SEGMENT_SHIFT);
	e->cpu = p->cpu;
	e->ts_ns = p->ts_ns;
	e->addr = p->addr;
	e->ip = p->ip;
	e->pid = tgid;
	e->tid = tid;
	e->latency_ns = now - p->ts_ns;
	e->ustack = p->ustack;
	e->kstack = p->kstack;
	b->hdr.count = n + 1;
	if (n + 1 >= KSCOPE_FAULT_BATCH)
		write_batch(b);
	barrier();
	b->busy = 0;
	/* Stopping: this fault entered while tracing was on and is the thread's last recorded one
	 * (no new fault starts now), so its counters now, this fault included, are its end. */
	if (tracing_enabled != KSCOPE_TRACING_ON && !p->end_set) {
		p->end_set = 1;
		note_bounds(task, tid, true);
	}
	return 0;
}

/* Run by user space on each CPU (BPF_PROG_TEST_RUN with BPF_F_TEST_RUN_ON_CPU, which calls it
 * in an IPI on that CPU): writes out the CPU's partial batch so records are never held back
 * longer than one poll interval, and none are left behind at the end. */
SEC("raw_tp")
int flush_batches(void *ctx)
{
	__u32 zero = 0;
	struct fault_batch *b = bpf_map_lookup_elem(&batches, &zero);
	if (!b)
		return 0;
	/* busy: this IPI interrupted the CPU while it wrote a record; tell the caller to retry. */
	if (b->busy)
		return 1;
	write_batch(b);
	return 0;
}

SEC("perf_event")
int fault_done_minor(struct bpf_perf_event_data *ctx)
{
	return on_fault_done(ctx, false);
}

SEC("perf_event")
int fault_done_major(struct bpf_perf_event_data *ctx)
{
	return on_fault_done(ctx, true);
}

/* The thread's name is in a record user space has (exec, rename): no task record needed. */
static __always_inline void mark_announced(struct task_struct *t)
{
	struct pending_fault *p = bpf_task_storage_get(&pending, t, 0,
						       BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (p)
		p->announced = 1;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 parent_tgid = parent->tgid, child_tgid = child->tgid, traced = KSCOPE_TGID_TRACED;
	struct kscope_fork_event *e;

	/* Threads (CLONE_THREAD) share the tgid and are traced already. */
	if (!follow_children || child_tgid == parent_tgid || !is_traced(parent_tgid))
		return 0;
	bpf_map_update_elem(&traced_tgids, &child_tgid, &traced, BPF_ANY);

	flush_this_cpu();
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(KSCOPE_CNT_CTRL_DROPPED);
		return 0;
	}
	e->type = KSCOPE_REC_FORK;
	e->pad = 0;
	e->parent_pid = parent_tgid;
	e->child_pid = child_tgid;
	e->pad2 = 0;
	e->ts_ns = bpf_ktime_get_ns();
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 tgid = p->tgid, tid = p->pid;
	struct kscope_exec_event *e;
	__u32 *state = bpf_map_lookup_elem(&traced_tgids, &tgid);
	bool armed_now = false;

	if (!state)
		return 0;
	if (*state == KSCOPE_TGID_ARMED_FOR_EXEC) {
		/* kscope faults -- COMMAND: the child waited at a gate until this map entry existed,
		 * then called execve; trace from the new image's first instruction. */
		*state = KSCOPE_TGID_TRACED;
		armed_now = true;
	}
	mark_announced(p);
	/* The new image's executable, loader and vDSO, for walks before user space loads them. */
	kscope_unwind_note_exec(p);
	flush_this_cpu();
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(KSCOPE_CNT_CTRL_DROPPED);
		return 0;
	}
	e->type = KSCOPE_REC_EXEC;
	e->pad = 0;
	e->pid = tgid;
	e->tid = tid;
	e->pad2 = 0;
	e->ts_ns = bpf_ktime_get_ns();
	e->min_flt = p->min_flt;
	e->maj_flt = p->maj_flt;
	e->armed_now = armed_now;
	e->pad3 = 0;
	bpf_probe_read_kernel_str(e->comm, sizeof(e->comm), p->comm);
	bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), bprm->filename);
	/* Wake user space now: it snapshots the new mappings while the process is alive. */
	bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
	return 0;
}

SEC("tp_btf/task_rename")
int BPF_PROG(on_rename, struct task_struct *task, const char *comm)
{
	if (!thread_traced(task->tgid, task->pid))
		return 0;
	mark_announced(task);
	emit_task(comm, task->tgid, task->pid, bpf_ktime_get_ns());
	return 0;
}

/* do_exit() fires this after exit_mm(): the thread takes no more faults, so its counters are
 * final. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *p)
{
	__u32 tgid = p->tgid, tid = p->pid;
	struct kscope_exit_event *e;
	__u32 *state = bpf_map_lookup_elem(&traced_tgids, &tgid);
	bool group_dead;

	if (!state)
		return 0;
	group_dead = p->signal->live.counter == 0;
	if (*state == KSCOPE_TGID_THREADS && !bpf_map_lookup_elem(&traced_tids, &tid)) {
		/* -t: another thread of the process. The tgid stays until the process is gone. */
		if (group_dead)
			bpf_map_delete_elem(&traced_tgids, &tgid);
		return 0;
	}
	if (*state != KSCOPE_TGID_TRACED && *state != KSCOPE_TGID_THREADS) {
		/* Armed but never exec'd (execve failed): just forget it. */
		if (group_dead)
			bpf_map_delete_elem(&traced_tgids, &tgid);
		return 0;
	}
	flush_this_cpu();
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(KSCOPE_CNT_CTRL_DROPPED);
	} else {
		e->type = KSCOPE_REC_EXIT;
		e->group_dead = group_dead;
		e->pid = tgid;
		e->tid = tid;
		e->pad = 0;
		e->ts_ns = bpf_ktime_get_ns();
		e->min_flt = p->min_flt;
		e->maj_flt = p->maj_flt;
		bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
	}
	/* Stop tracing the tgid once its last thread is gone, so a recycled pid is not traced. */
	if (group_dead)
		bpf_map_delete_elem(&traced_tgids, &tgid);
	return 0;
}
