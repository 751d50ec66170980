/* The native user-stack unwinder: walks the current task's user stack from its registers with
 * the .eh_frame tables user space loaded (src/unwind/), in any program type that runs in the
 * task's context (tp_btf/sched_switch for prev, tp_btf/page_fault_user, perf_event samples).
 *
 *   __s32 id = kscope_unwind_user(tgid, ip, sp, bp);
 *
 * gives the id of the walked stack in `ustacks` (or a KSCOPE_STACK_* sentinel). Each frame:
 * find the executable mapping of the PC (binary search in the process's sorted mappings), the
 * row of its file for PC (return address - 1 for callers, whose call may be a function's last
 * instruction), compute the CFA, read the return address at CFA-8 and the saved rbp, repeat.
 * A mapping without a table (JIT code, a file without .eh_frame) is crossed with the frame
 * pointer only when rbp is plausible: 8-aligned, above the current sp, within 8 MiB of it; the
 * return address it yields must then lie in an executable mapping, or the walk stops. Nothing
 * read from the stack becomes a frame without passing the mapping check. Every walk ends with a
 * reason (enum kscope_unwind_reason), counted in `unwind_counters` and kept with the stack.
 * Design, limits and what is not handled: docs/unwinding.md. */
#ifndef KSCOPE_UNWIND_BPF_H
#define KSCOPE_UNWIND_BPF_H

#include "kscope/abi/unwind.h"

#ifndef KSCOPE_UNWIND_STACK_COLLISION
#define KSCOPE_UNWIND_STACK_COLLISION (-2) /* = KSCOPE_STACK_COLLISION of the top ABI */
#define KSCOPE_UNWIND_STACK_ERROR (-3)     /* = KSCOPE_STACK_ERROR */
#endif

/* Rows of every loaded file, back to back (sized by user space). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kscope_unwind_row);
} unwind_rows SEC(".maps");

/* file id -> its rows (sized by user space). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kscope_unwind_file);
} unwind_files SEC(".maps");

/* tgid -> sorted executable mappings (8 KiB each: allocated when used, not up front). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct kscope_unwind_process);
} unwind_procs SEC(".maps");

/* File identity -> its table (written by user space with each table it loads): a mapping found
 * by the kernel's VMA before user space wrote the process's entry still gets its rows. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 8192);
	__type(key, struct kscope_unwind_file_key);
	__type(value, struct kscope_unwind_file_info);
} unwind_inodes SEC(".maps");

/* tgid -> executable mappings noted at execve and mmap() (kscope_unwind_note_exec,
 * kscope_unwind_mmap_exit), valid for the address space they were noted in. A hash allocated
 * entry by entry (an LRU map is always preallocated: ~2.1 KiB x max_entries up front); an entry
 * is deleted when its process exits (kscope_unwind_process_exit) and when user space forgets
 * the process; a full map is counted (KSCOPE_UNWIND_EARLY_DROPPED). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct kscope_unwind_early);
} unwind_early SEC(".maps");

/* Set by user space for the native walk: note mappings at execve/mmap (else nothing is done). */
const volatile bool kscope_unwind_early_on = false;

/* Walked stacks by id (31 bits of their hash); the hash in the value tells collisions apart. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct kscope_unwind_stack);
} ustacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KSCOPE_UNWIND_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} unwind_counters SEC(".maps");

/* Walk time histogram, filled only when user space sets kscope_unwind_timing before loading
 * (bench/unwind_cost.sh): otherwise the verifier removes the timing code. */
const volatile bool kscope_unwind_timing = false;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KSCOPE_UNWIND_TIMING_BUCKETS);
	__type(key, __u32);
	__type(value, __u64);
} unwind_walk_ns SEC(".maps");

/* The words of a frame read at once: from the lowest save slot a row restores up to its CFA
 * (at most 15 words, too big for the walk's share of the BPF stack). */
#define KSCOPE_UNWIND_FRAME_WORDS 16
struct kscope_unwind_words {
	__u64 w[KSCOPE_UNWIND_FRAME_WORDS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kscope_unwind_words);
} unwind_words SEC(".maps");

/* The stack being walked on this CPU (too big for the BPF stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kscope_unwind_stack);
} unwind_scratch SEC(".maps");

/* An early-mappings entry being built at execve (too big for the BPF stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kscope_unwind_early);
} unwind_early_scratch SEC(".maps");

/* x86-64 rt_sigframe: at __restore_rt, rsp points at the ucontext_t (uc_flags, uc_link,
 * uc_stack: 40 bytes) whose mcontext gregs follow: REG_RBP = 10, REG_RSP = 15, REG_RIP = 16. */
#define KSCOPE_UC_RBP (40 + 10 * 8)
#define KSCOPE_UC_RBX (40 + 11 * 8)
#define KSCOPE_UC_RSP (40 + 15 * 8)
#define KSCOPE_UC_RIP (40 + 16 * 8)
/* How far above sp a frame pointer may point to be believed (a thread's stack is at most this
 * far from its current sp in practice: the default 8 MiB stack). */
#define KSCOPE_FP_MAX_DISTANCE (8u << 20)

struct kscope_unwind_ctx {
	__u64 pc, sp, bp, bx;
	__u64 hash;
	/* The process's entry, looked up once a walk (NULL: not loaded), and the mapping of the
	 * last frame found in it (end 0: none): consecutive frames are mostly in one file, and a
	 * pc inside it needs no search. */
	struct kscope_unwind_process *proc;
	struct kscope_unwind_mapping last;
	__u32 tgid;
	__u8 bp_valid; /* bp holds the caller-visible rbp */
	__u8 bx_valid; /* bx holds rbx (only a CFA = rbx + N frame needs it: ld.so's resolver) */
	__u8 exact;    /* pc is where the thread is (first frame, after a signal), not a return address */
	__u8 via_fp;   /* pc came from a frame-pointer step */
	__u8 reason;
	__u8 done;
};

static __always_inline void kscope_unwind_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&unwind_counters, &idx);
	if (v)
		*v += 1;
}

/* Both binary searches are bpf_loop()s with small callbacks: the verifier checks a callback body
 * once instead of every unrolled step with every state reaching it (unrolled, the two searches
 * made the walker cost ~150,000 verified instructions; as loops ~15,000). */
struct kscope_unwind_msearch {
	struct kscope_unwind_process *p;
	__u64 pc;
	__u32 lo, hi;
};

static long kscope_unwind_msearch_step(__u32 i, void *data)
{
	struct kscope_unwind_msearch *q = data;
	if (q->lo >= q->hi)
		return 1;
	__u32 mid = q->lo + (q->hi - q->lo) / 2;
	if (mid >= KSCOPE_UNWIND_MAX_MAPPINGS)
		return 1;
	if (q->p->mappings[mid].start <= q->pc)
		q->lo = mid + 1;
	else
		q->hi = mid;
	return 0;
}

/* The executable mapping holding pc, NULL when none. */
static __always_inline struct kscope_unwind_mapping *
kscope_unwind_find_mapping(struct kscope_unwind_process *p, __u64 pc)
{
	struct kscope_unwind_msearch q = {.p = p, .pc = pc, .lo = 0, .hi = p->count};
	if (q.hi > KSCOPE_UNWIND_MAX_MAPPINGS)
		return NULL;
	bpf_loop(10, kscope_unwind_msearch_step, &q, 0); /* 2^9 > KSCOPE_UNWIND_MAX_MAPPINGS */
	__u32 idx = q.lo - 1;
	asm volatile("" : "+r"(idx));
	if (q.lo == 0 || idx >= KSCOPE_UNWIND_MAX_MAPPINGS)
		return NULL;
	struct kscope_unwind_mapping *m = &p->mappings[idx];
	if (pc >= m->end)
		return NULL;
	return m;
}

struct kscope_unwind_search {
	__u32 first, lo, hi, fpc;
};

static long kscope_unwind_search_step(__u32 i, void *data)
{
	struct kscope_unwind_search *q = data;
	if (q->lo >= q->hi)
		return 1;
	__u32 mid = q->lo + (q->hi - q->lo) / 2;
	__u32 key = q->first + mid;
	struct kscope_unwind_row *r = bpf_map_lookup_elem(&unwind_rows, &key);
	if (!r) {
		q->lo = 0; /* no row: NULL */
		return 1;
	}
	if (r->pc <= q->fpc)
		q->lo = mid + 1;
	else
		q->hi = mid;
	return 0;
}

/* The row of `file` in force at `fpc` (the last row whose pc <= fpc), NULL when none. The
 * file's row index (kscope_unwind_index_entry, in the rows map before its rows) narrows the
 * search to the rows of fpc's bucket: rows before it have pc <= fpc, rows from the next
 * bucket on have pc > fpc. */
static __always_inline struct kscope_unwind_row *kscope_unwind_find_row(__u32 file_id, __u32 fpc)
{
	struct kscope_unwind_file *f = bpf_map_lookup_elem(&unwind_files, &file_id);
	if (!f || f->row_count == 0 || f->row_count > KSCOPE_UNWIND_MAX_FILE_ROWS)
		return NULL;
	struct kscope_unwind_search q = {.first = f->first_row, .lo = 0, .hi = f->row_count, .fpc = fpc};
	__u32 buckets = f->index_count;
	if (buckets) {
		if (fpc < f->index_base)
			return NULL; /* before the file's first row */
		__u64 k = (__u64)(fpc - f->index_base) >> (f->index_shift & 31);
		if (k >= buckets)
			k = buckets - 1; /* past the last bucket's start: its rows reach the end */
		__u32 key = f->index_first + (__u32)k;
		struct kscope_unwind_index_entry *e = (void *)bpf_map_lookup_elem(&unwind_rows, &key);
		if (e && e->lo <= e->hi && e->hi <= q.hi) {
			q.lo = e->lo;
			q.hi = e->hi;
		}
	}
	if (bpf_loop(KSCOPE_UNWIND_ROW_SEARCH_STEPS + 1, kscope_unwind_search_step, &q, 0) < 0)
		return NULL;
	if (q.lo == 0)
		return NULL;
	__u32 key = q.first + q.lo - 1;
	return bpf_map_lookup_elem(&unwind_rows, &key);
}

/* The file has a table (so a pc without a row is "no row", not "no table"). */
static __always_inline bool kscope_unwind_file_has_rows(__u32 file_id)
{
	struct kscope_unwind_file *f = bpf_map_lookup_elem(&unwind_files, &file_id);
	return f && f->row_count;
}

/* ---- Early mappings: found before user space wrote the process's entry ----
 *
 * At execve (the executable, the dynamic loader, the vDSO) and at each mmap() that returns an
 * executable file mapping (the loader mapping a library's text, dlopen), the VMA's file identity
 * and offset are noted in unwind_early; a walk whose PC lies in none of the process's mappings
 * from user space looks there, newest first, and finds the file's table by identity in
 * unwind_inodes. Noting runs where interrupts are on (sched_process_exec, the mmap system call's
 * exit): bpf_find_vma() with interrupts off (sched_switch, a page-fault entry, a perf sample,
 * where the walks run) defers its unlock to irq_work and refuses a second call until that ran,
 * so the walk itself never looks a VMA up. */

#define KSCOPE_VM_EXEC 0x00000004ul

struct inode___mtime {
	__s64 i_mtime_sec;
	__u32 i_mtime_nsec;
} __attribute__((preserve_access_index));

struct kscope_unwind_vma {
	__u64 vdso; /* mm->context.vdso: the vDSO VMA has no file */
	__u64 start, end, offset;
	struct kscope_unwind_file_key key;
	__u8 ok;
};

static long kscope_unwind_vma_cb(struct task_struct *task, struct vm_area_struct *vma, void *data)
{
	struct kscope_unwind_vma *v = data;
	v->start = vma->vm_start;
	v->end = vma->vm_end;
	if (!(vma->vm_flags & KSCOPE_VM_EXEC))
		return 0;
	struct file *f = vma->vm_file;
	if (!f) {
		if (v->vdso && vma->vm_start == v->vdso) {
			v->offset = 0;
			v->key.size = vma->vm_end - vma->vm_start;
			v->ok = 1;
		}
		return 0;
	}
	struct inode *ino = BPF_CORE_READ(f, f_inode);
	if (!ino)
		return 0;
	v->offset = (__u64)vma->vm_pgoff << 12;
	v->key.ino = BPF_CORE_READ(ino, i_ino);
	v->key.dev = BPF_CORE_READ(ino, i_sb, s_dev);
	v->key.size = BPF_CORE_READ(ino, i_size);
	if (bpf_core_field_exists(struct inode___mtime, i_mtime_sec)) {
		struct inode___mtime *t = (void *)ino;
		v->key.mtime_sec = BPF_CORE_READ(t, i_mtime_sec);
		v->key.mtime_nsec = BPF_CORE_READ(t, i_mtime_nsec);
	}
	v->ok = 1;
	return 0;
}

struct kscope_unwind_forget {
	struct kscope_unwind_early *e;
	__u64 start, end;
	__u32 n;
};

static long kscope_unwind_forget_step(__u32 i, void *data)
{
	struct kscope_unwind_forget *q = data;
	if (i >= q->n || i >= KSCOPE_UNWIND_EARLY_MAPPINGS)
		return 1;
	__u32 idx = i;
	asm volatile("" : "+r"(idx)); /* the bound below, on the register the access uses */
	if (idx >= KSCOPE_UNWIND_EARLY_MAPPINGS)
		return 1;
	struct kscope_unwind_early_mapping *m = &q->e->mappings[idx];
	if (!m->ready || m->end <= q->start || m->start >= q->end)
		return 0;
	m->ready = 0; /* a walk skips it from now on (the slot is not reused) */
	kscope_unwind_count(KSCOPE_UNWIND_EARLY_REMOVED);
	return 0;
}

/* Drops the noted mappings of e that overlap [start, end): that range was unmapped or mapped
 * anew, so a PC there is no longer in the file the note names. */
static __always_inline void kscope_unwind_forget_range(struct kscope_unwind_early *e, __u64 start,
						       __u64 end)
{
	__u64 n = e->reserved;
	struct kscope_unwind_forget q = {
		.e = e, .start = start, .end = end,
		.n = n < KSCOPE_UNWIND_EARLY_MAPPINGS ? n : KSCOPE_UNWIND_EARLY_MAPPINGS};
	bpf_loop(KSCOPE_UNWIND_EARLY_MAPPINGS, kscope_unwind_forget_step, &q, 0);
}

/* Notes the executable VMA holding addr (if it is one) in e. replace: first drop the noted
 * mappings the VMA (executable or not) now covers (an mmap() over an older mapping). */
static __always_inline void kscope_unwind_note_vma(struct task_struct *task, __u64 addr,
						   struct kscope_unwind_early *e, __u64 vdso,
						   bool replace)
{
	struct kscope_unwind_vma v = {.vdso = vdso};
	long err = bpf_find_vma(task, addr, kscope_unwind_vma_cb, &v, 0);
	if (err) {
		if (err != -ENOENT)
			kscope_unwind_count(KSCOPE_UNWIND_EARLY_DROPPED); /* -EBUSY: mmap_lock contended */
		return;
	}
	if (replace && v.end > v.start)
		kscope_unwind_forget_range(e, v.start, v.end);
	if (!v.ok)
		return;
	__u64 slot = __sync_fetch_and_add(&e->reserved, 1);
	if (slot >= KSCOPE_UNWIND_EARLY_MAPPINGS) {
		kscope_unwind_count(KSCOPE_UNWIND_EARLY_DROPPED);
		return;
	}
	struct kscope_unwind_early_mapping *m = &e->mappings[slot];
	m->start = v.start;
	m->end = v.end;
	m->offset = v.offset;
	m->key = v.key;
	asm volatile("" ::: "memory"); /* the fields before ready (x86 keeps store order) */
	m->ready = 1;
	kscope_unwind_count(KSCOPE_UNWIND_EARLY_NOTED);
}

/* At execve (tp_btf/sched_process_exec of the exec'ing task p, interrupts on): a fresh entry
 * for the new address space with its executable, dynamic loader and vDSO text. Called by the
 * exec program of each object that walks, for the processes it traces. */
static __always_inline void kscope_unwind_note_exec(struct task_struct *p)
{
	if (!kscope_unwind_early_on)
		return;
	__u32 zero = 0, tgid = p->tgid;
	struct kscope_unwind_early *scratch = bpf_map_lookup_elem(&unwind_early_scratch, &zero);
	struct mm_struct *mm = p->mm;
	if (!scratch || !mm)
		return;
	scratch->mm = (__u64)mm;
	scratch->start_time = BPF_CORE_READ(p, group_leader, start_time);
	scratch->reserved = 0;
	for (int i = 0; i < KSCOPE_UNWIND_EARLY_MAPPINGS; i++)
		scratch->mappings[i].ready = 0;
	if (bpf_map_update_elem(&unwind_early, &tgid, scratch, BPF_ANY)) {
		kscope_unwind_count(KSCOPE_UNWIND_EARLY_DROPPED);
		return;
	}
	struct kscope_unwind_early *e = bpf_map_lookup_elem(&unwind_early, &tgid);
	if (!e)
		return;
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(p);
	__u64 entry = BPF_CORE_READ(regs, ip); /* the dynamic loader's entry (static: the program's) */
	__u64 code = mm->start_code;
	__u64 vdso = (__u64)BPF_CORE_READ(mm, context.vdso);
	kscope_unwind_note_vma(p, code, e, 0, false);
	if (entry < code || entry >= mm->end_code)
		kscope_unwind_note_vma(p, entry, e, 0, false);
	if (vdso)
		kscope_unwind_note_vma(p, vdso, e, vdso, false);
}

/* The current process's noted mappings, if they belong to its current address space (noted
 * at its execve); NULL otherwise. */
static __always_inline struct kscope_unwind_early *
kscope_unwind_current_early(struct task_struct *task)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct kscope_unwind_early *e = bpf_map_lookup_elem(&unwind_early, &tgid);
	if (!e || e->mm != (__u64)task->mm)
		return NULL;
	return e;
}

/* mmap() returned: note the mapping if it is executable, for processes noted at execve. */
SEC("tracepoint/syscalls/sys_exit_mmap")
int kscope_unwind_mmap_exit(struct trace_event_raw_sys_exit *ctx)
{
	if (!kscope_unwind_early_on)
		return 0;
	long ret = ctx->ret;
	if (ret < 0 && ret > -4096)
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	struct kscope_unwind_early *e = kscope_unwind_current_early(task);
	if (e)
		kscope_unwind_note_vma(task, (__u64)ret, e, 0, true);
	return 0;
}

/* munmap(addr, len) is about to run: the noted mappings it covers are dropped (at entry: should
 * it fail, a walk through them is cut and counted, never through a file no longer there). */
SEC("tracepoint/syscalls/sys_enter_munmap")
int kscope_unwind_munmap_enter(struct trace_event_raw_sys_enter *ctx)
{
	if (!kscope_unwind_early_on)
		return 0;
	struct kscope_unwind_early *e = kscope_unwind_current_early(bpf_get_current_task_btf());
	if (!e)
		return 0;
	__u64 start = ctx->args[0] & ~0xfffull, len = ctx->args[1];
	if (len == 0 || start + len < start)
		return 0;
	kscope_unwind_forget_range(e, start, start + len);
	return 0;
}

/* A process's last thread exits: its noted mappings go (the map is not an LRU). */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(kscope_unwind_process_exit, struct task_struct *p)
{
	if (!kscope_unwind_early_on || BPF_CORE_READ(p, signal, live.counter) != 0)
		return 0;
	__u32 tgid = p->tgid;
	bpf_map_delete_elem(&unwind_early, &tgid);
	return 0;
}

struct kscope_unwind_esearch {
	struct kscope_unwind_early *e;
	__u64 pc;
	__u32 n;
	__s32 found;
};

static long kscope_unwind_esearch_step(__u32 i, void *data)
{
	struct kscope_unwind_esearch *q = data;
	if (i >= q->n)
		return 1;
	__u32 idx = q->n - 1 - i; /* newest first: a later mapping replaces an earlier one */
	if (idx >= KSCOPE_UNWIND_EARLY_MAPPINGS)
		return 1;
	struct kscope_unwind_early_mapping *m = &q->e->mappings[idx];
	if (!*(volatile __u64 *)&m->ready)
		return 0;
	asm volatile("" ::: "memory");
	if (q->pc >= m->start && q->pc < m->end) {
		q->found = (__s32)idx;
		return 1;
	}
	return 0;
}

/* The early mapping of the current task's process holding pc, as a mapping of the walk (its
 * file id NO_FILE when the file's table is not loaded). false: none. */
static __always_inline bool kscope_unwind_early_find(__u32 tgid, __u64 pc,
						     struct kscope_unwind_mapping *out)
{
	struct kscope_unwind_early *e = bpf_map_lookup_elem(&unwind_early, &tgid);
	if (!e)
		return false;
	struct task_struct *task = bpf_get_current_task_btf();
	if (e->mm != (__u64)task->mm || e->start_time != BPF_CORE_READ(task, group_leader, start_time))
		return false;
	__u64 n = e->reserved;
	struct kscope_unwind_esearch q = {
		.e = e, .pc = pc, .n = n < KSCOPE_UNWIND_EARLY_MAPPINGS ? n : KSCOPE_UNWIND_EARLY_MAPPINGS,
		.found = -1};
	bpf_loop(KSCOPE_UNWIND_EARLY_MAPPINGS, kscope_unwind_esearch_step, &q, 0);
	__u32 idx = (__u32)q.found;
	if (q.found < 0 || idx >= KSCOPE_UNWIND_EARLY_MAPPINGS)
		return false;
	struct kscope_unwind_early_mapping *m = &e->mappings[idx];
	struct kscope_unwind_file_key key = m->key;
	__u64 offset = m->offset;
	out->start = m->start;
	out->end = m->end;
	out->bias = 0;
	out->file_id = KSCOPE_UNWIND_NO_FILE;
	struct kscope_unwind_file_info *info = bpf_map_lookup_elem(&unwind_inodes, &key);
	if (!info)
		return true; /* the file's table is not loaded (yet) */
	for (int i = 0; i < KSCOPE_UNWIND_FILE_SEGMENTS; i++) {
		if (i >= info->segment_count)
			break;
		struct kscope_unwind_file_segment *sg = &info->segments[i];
		__u64 seg_page = sg->offset & ~0xfffull;
		__u64 size = sg->filesz ? sg->filesz : 1;
		if (offset < seg_page || offset >= sg->offset + size)
			continue;
		out->bias = out->start - (sg->vaddr - (sg->offset - offset));
		out->file_id = info->file_id;
		break;
	}
	return true;
}

static __always_inline bool kscope_unwind_read(__u64 *dst, __u64 addr)
{
	return bpf_probe_read_user(dst, sizeof(*dst), (const void *)addr) == 0;
}

static __always_inline long kscope_unwind_stop(struct kscope_unwind_ctx *c, __u8 reason)
{
	c->reason = reason;
	c->done = 1;
	return 1;
}

/* One frame: record pc, then compute the caller's pc/sp/bp. Returns 1 to stop the loop. */
static long kscope_unwind_step(__u32 i, void *data)
{
	struct kscope_unwind_ctx *c = data;
	__u32 zero = 0;
	struct kscope_unwind_stack *s = bpf_map_lookup_elem(&unwind_scratch, &zero);
	if (!s)
		return kscope_unwind_stop(c, KSCOPE_UNWIND_BUDGET);
	struct kscope_unwind_process *proc = c->proc;
	struct kscope_unwind_mapping mapping = {};
	struct kscope_unwind_mapping *pm = NULL;
	if (c->last.end && c->pc >= c->last.start && c->pc < c->last.end) {
		mapping = c->last; /* the last frame's mapping holds this pc too */
	} else if (proc && (pm = kscope_unwind_find_mapping(proc, c->pc))) {
		mapping = *pm;
		c->last = mapping;
	} else if (kscope_unwind_early_on && kscope_unwind_early_find(c->tgid, c->pc, &mapping)) {
		/* A mapping made before user space wrote (or rewrote) the process's entry. */
		kscope_unwind_count(KSCOPE_UNWIND_EARLY_FRAMES);
	} else {
		if (kscope_unwind_early_on)
			kscope_unwind_count(KSCOPE_UNWIND_EARLY_MISSES);
		/* Where the thread is, is a frame even outside the known mappings (and before the
		 * process's mappings are loaded); a value read from the stack is not. */
		if (s->len == 0) {
			s->ips[0] = c->pc;
			s->len = 1;
		}
		if (!proc)
			return kscope_unwind_stop(c, KSCOPE_UNWIND_NO_PROCESS);
		return kscope_unwind_stop(c, c->via_fp ? KSCOPE_UNWIND_NO_TABLE : KSCOPE_UNWIND_NO_MAPPING);
	}
	struct kscope_unwind_mapping *m = &mapping;
	__u32 len = s->len;
	if (len >= KSCOPE_UNWIND_MAX_FRAMES)
		return kscope_unwind_stop(c, KSCOPE_UNWIND_DEPTH);
	s->ips[len] = c->pc;
	s->len = len + 1;
	c->hash = (c->hash ^ c->pc) * 0x9e3779b97f4a7c15ull;
	c->hash ^= c->hash >> 29;

	__u64 cfa = 0, ra = 0;
	bool use_fp = m->file_id == KSCOPE_UNWIND_NO_FILE;
	struct kscope_unwind_row *row = NULL;
	if (!use_fp) {
		__u64 lookup = c->exact ? c->pc : c->pc - 1;
		__u64 fpc = lookup - m->bias;
		if (lookup < m->bias || fpc > 0xffffffffull)
			return kscope_unwind_stop(c, KSCOPE_UNWIND_NO_ROW);
		row = kscope_unwind_find_row(m->file_id, (__u32)fpc);
		if (!row || (row->kind & KSCOPE_UNWIND_CFA_MASK) == KSCOPE_CFA_NONE)
			use_fp = true; /* code without CFI (hand-written assembly): the fallback */
	}
	if (use_fp) {
		/* The main thread's entry frame: its sp is where the kernel put argc at execve
		 * (mm->start_stack), nothing called it. The dynamic loader's _start has no CFI; a
		 * walk that reaches it this way is whole. */
		struct task_struct *task = bpf_get_current_task_btf();
		if (c->sp == BPF_CORE_READ(task, mm, start_stack))
			return kscope_unwind_stop(c, KSCOPE_UNWIND_COMPLETE);
		/* Frame-pointer fallback, only when rbp is plausible. */
		__u64 bp = c->bp;
		if (!c->bp_valid || bp <= c->sp || bp - c->sp > KSCOPE_FP_MAX_DISTANCE || (bp & 7))
			/* A pc before the file's first row (clang's link puts crt1's _start there)
			 * finds no row in a file that has a table. */
			return kscope_unwind_stop(c, row || (m->file_id != KSCOPE_UNWIND_NO_FILE &&
							     kscope_unwind_file_has_rows(m->file_id))
							    ? KSCOPE_UNWIND_NO_ROW
							    : KSCOPE_UNWIND_NO_TABLE);
		__u64 saved_bp;
		if (!kscope_unwind_read(&saved_bp, bp) || !kscope_unwind_read(&ra, bp + 8))
			return kscope_unwind_stop(c, KSCOPE_UNWIND_READ_FAILED);
		kscope_unwind_count(KSCOPE_UNWIND_FP_FRAMES);
		c->bx_valid = 0; /* code without CFI may have saved rbx anywhere */
		c->sp = bp + 16;
		c->bp = saved_bp;
		c->pc = ra;
		c->exact = 0;
		c->via_fp = 1;
		if (ra == 0)
			return kscope_unwind_stop(c, KSCOPE_UNWIND_COMPLETE);
		return 0;
	}
	c->via_fp = 0;

	__u8 kind = row->kind;
	__u8 cfa_kind = kind & KSCOPE_UNWIND_CFA_MASK;
	switch (cfa_kind) {
	case KSCOPE_CFA_RSP:
		cfa = c->sp + row->cfa_off;
		break;
	case KSCOPE_CFA_RBP:
		if (!c->bp_valid)
			return kscope_unwind_stop(c, KSCOPE_UNWIND_UNSUPPORTED);
		cfa = c->bp + row->cfa_off;
		break;
	case KSCOPE_CFA_RBX:
		if (!c->bx_valid)
			return kscope_unwind_stop(c, KSCOPE_UNWIND_UNSUPPORTED);
		cfa = c->bx + row->cfa_off;
		break;
	case KSCOPE_CFA_PLT:
		cfa = c->sp + row->cfa_off + ((__s8)(c->pc & 15) >= row->aux ? 8 : 0);
		break;
	case KSCOPE_CFA_SIGNAL: {
		/* Continue in the interrupted code, from the registers the kernel saved. */
		__u64 uc = c->sp, rip, rsp, rbp, rbx;
		if (!kscope_unwind_read(&rip, uc + KSCOPE_UC_RIP) ||
		    !kscope_unwind_read(&rsp, uc + KSCOPE_UC_RSP) ||
		    !kscope_unwind_read(&rbp, uc + KSCOPE_UC_RBP) ||
		    !kscope_unwind_read(&rbx, uc + KSCOPE_UC_RBX))
			return kscope_unwind_stop(c, KSCOPE_UNWIND_READ_FAILED);
		c->pc = rip;
		c->sp = rsp;
		c->bp = rbp;
		c->bp_valid = 1;
		c->bx = rbx;
		c->bx_valid = 1;
		c->exact = 1; /* an interrupted instruction, not a return address */
		return 0;
	}
	default:
		return kscope_unwind_stop(c, KSCOPE_UNWIND_UNSUPPORTED);
	}
	if (kind & KSCOPE_UNWIND_RA_UNDEFINED)
		return kscope_unwind_stop(c, KSCOPE_UNWIND_COMPLETE); /* the outermost frame */
	if (kind & KSCOPE_UNWIND_RA_UNSUPPORTED)
		return kscope_unwind_stop(c, KSCOPE_UNWIND_UNSUPPORTED);
	/* Unwinding goes up the stack: a CFA at or below sp is a corrupt stack or a wrong row. */
	if (cfa <= c->sp)
		return kscope_unwind_stop(c, KSCOPE_UNWIND_BAD_FRAME);
	__u8 aux = row->aux;
	__u32 rbp_kind = (kind & KSCOPE_UNWIND_RBP_MASK) >> KSCOPE_UNWIND_RBP_SHIFT;
	/* The return address (CFA-8) and the saved rbp and rbx this row restores, in one read of
	 * the words from the lowest of their slots up to the CFA (all in this frame). Should that
	 * fail (a slot on a page that cannot be read), the separate reads below decide, as before:
	 * a failed return-address or rbp read ends the walk, a failed rbx read makes rbx unknown. */
	__u32 bp_slot = rbp_kind == KSCOPE_RBP_OFFSET ? KSCOPE_UNWIND_RBP_SLOT(aux) : 0;
	/* (the PLT's aux is its threshold: rbx is unchanged there) */
	__u32 bx_slot = cfa_kind == KSCOPE_CFA_PLT ? KSCOPE_UNWIND_RBX_UNCHANGED
						     : KSCOPE_UNWIND_RBX_SLOT(aux);
	__u32 bx_read = bx_slot == KSCOPE_UNWIND_RBX_UNKNOWN ? 0 : bx_slot;
	__u32 n = bp_slot > bx_read ? bp_slot : bx_read;
	if (n == 0)
		n = 1;
	struct kscope_unwind_words *w = bpf_map_lookup_elem(&unwind_words, &zero);
	asm volatile("" : "+r"(n));
	if (w && n < KSCOPE_UNWIND_FRAME_WORDS && (rbp_kind != KSCOPE_RBP_OFFSET || bp_slot) &&
	    bpf_probe_read_user(w->w, n * 8, (const void *)(cfa - 8 * (__u64)n)) == 0) {
		ra = w->w[(n - 1) & (KSCOPE_UNWIND_FRAME_WORDS - 1)];
		if (rbp_kind == KSCOPE_RBP_OFFSET) {
			c->bp = w->w[(n - bp_slot) & (KSCOPE_UNWIND_FRAME_WORDS - 1)];
			c->bp_valid = 1;
		} else if (rbp_kind == KSCOPE_RBP_UNKNOWN) {
			c->bp_valid = 0;
		}
		if (bx_slot == KSCOPE_UNWIND_RBX_UNKNOWN) {
			c->bx_valid = 0;
		} else if (bx_slot != KSCOPE_UNWIND_RBX_UNCHANGED) {
			c->bx = w->w[(n - bx_slot) & (KSCOPE_UNWIND_FRAME_WORDS - 1)];
			c->bx_valid = 1;
		}
		goto next;
	}
	if (!kscope_unwind_read(&ra, cfa - 8))
		return kscope_unwind_stop(c, KSCOPE_UNWIND_READ_FAILED);
	switch (rbp_kind) {
	case KSCOPE_RBP_OFFSET: {
		__u64 rbp;
		if (!kscope_unwind_read(&rbp, cfa - 8 * (__u64)KSCOPE_UNWIND_RBP_SLOT(aux)))
			return kscope_unwind_stop(c, KSCOPE_UNWIND_READ_FAILED);
		c->bp = rbp;
		c->bp_valid = 1;
		break;
	}
	case KSCOPE_RBP_UNKNOWN:
		c->bp_valid = 0;
		break;
	default:
		break;
	}
	if (bx_slot == KSCOPE_UNWIND_RBX_UNKNOWN) {
		c->bx_valid = 0;
	} else if (bx_slot != KSCOPE_UNWIND_RBX_UNCHANGED) {
		/* Only as good as a read: a failed one makes rbx unknown, not the walk fail (few
		 * frames ever need rbx). */
		__u64 rbx;
		c->bx_valid = kscope_unwind_read(&rbx, cfa - 8 * (__u64)bx_slot);
		c->bx = rbx;
	}
next:
	c->sp = cfa;
	c->pc = ra;
	c->exact = 0;
	if (ra == 0)
		return kscope_unwind_stop(c, KSCOPE_UNWIND_COMPLETE);
	return 0;
}

/* The walk, a global function: the verifier checks a global function once per program, on its
 * own, instead of once for every path of the calling program that reaches it (inlined into
 * top's switch program it cost ~780,000 verified instructions and seconds of CPU at start; as a
 * global function, with the searches as loops, the whole switch program is ~20,000). */
__noinline __s32 kscope_unwind_walk(__u32 tgid, __u64 ip, __u64 sp, __u64 bp)
{
	__u32 zero = 0;
	struct kscope_unwind_stack *s = bpf_map_lookup_elem(&unwind_scratch, &zero);
	if (!s)
		return KSCOPE_UNWIND_STACK_ERROR;
	s->len = 0;
	s->reason = 0;
	struct kscope_unwind_ctx c = {
		.pc = ip,
		.sp = sp,
		.bp = bp,
		.hash = 0xcbf29ce484222325ull,
		.proc = bpf_map_lookup_elem(&unwind_procs, &tgid),
		.tgid = tgid,
		.bp_valid = 1,
		.exact = 1,
	};
	/* rbx of the first frame: the entry point passes ip, sp and bp of the current task's user
	 * registers (all its callers do); rbx is taken from the same registers when they match
	 * (read directly: a trusted BTF pointer, no helper call). */
	struct pt_regs *u = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	if (u && u->ip == ip && u->sp == sp) {
		c.bx = u->bx;
		c.bx_valid = 1;
	}
	kscope_unwind_count(KSCOPE_UNWIND_WALKS);
	/* One more iteration than frames: the last one finds out whether more frames remain. */
	long n = bpf_loop(KSCOPE_UNWIND_MAX_FRAMES + 1, kscope_unwind_step, &c, 0);
	if (n < 0)
		kscope_unwind_stop(&c, KSCOPE_UNWIND_BUDGET);
	else if (!c.done)
		kscope_unwind_stop(&c, KSCOPE_UNWIND_DEPTH);
	__u8 reason = c.reason < KSCOPE_UNWIND_REASON_MAX ? c.reason : KSCOPE_UNWIND_BUDGET;
	kscope_unwind_count(KSCOPE_UNWIND_ENDED + reason);
	s->reason = reason;
	__u64 h = (c.hash ^ ((__u64)reason << 56) ^ s->len) * 0x9e3779b97f4a7c15ull;
	h ^= h >> 31;
	if (s->len == 1)
		h ^= s->ips[0]; /* one-frame stacks (no process yet) hash their only frame too */
	s->hash = h;

	__u32 id = (__u32)(h & 0x7fffffff);
	struct kscope_unwind_stack *old = bpf_map_lookup_elem(&ustacks, &id);
	if (old) {
		if (old->hash == h)
			return (__s32)id;
		kscope_unwind_count(KSCOPE_UNWIND_STACK_COLLISION);
		return KSCOPE_UNWIND_STACK_COLLISION;
	}
	long err = bpf_map_update_elem(&ustacks, &id, s, BPF_NOEXIST);
	if (err == 0)
		return (__s32)id;
	old = bpf_map_lookup_elem(&ustacks, &id); /* another CPU stored it meanwhile */
	if (old && old->hash == h)
		return (__s32)id;
	kscope_unwind_count(old ? KSCOPE_UNWIND_STACK_COLLISION : KSCOPE_UNWIND_STACK_FULL);
	return old ? KSCOPE_UNWIND_STACK_COLLISION : KSCOPE_UNWIND_STACK_ERROR;
}

/* Walks the current task's user stack from (ip, sp, bp) and stores it in `ustacks`. Returns its
 * id, or KSCOPE_UNWIND_STACK_COLLISION / KSCOPE_UNWIND_STACK_ERROR (both counted). */
static __always_inline __s32 kscope_unwind_user(__u32 tgid, __u64 ip, __u64 sp, __u64 bp)
{
	if (!kscope_unwind_timing)
		return kscope_unwind_walk(tgid, ip, sp, bp);
	__u64 t0 = bpf_ktime_get_ns();
	__s32 id = kscope_unwind_walk(tgid, ip, sp, bp);
	__u64 ns = bpf_ktime_get_ns() - t0;
	__u32 bucket = ns / KSCOPE_UNWIND_TIMING_NS;
	if (bucket >= KSCOPE_UNWIND_TIMING_BUCKETS)
		bucket = KSCOPE_UNWIND_TIMING_BUCKETS - 1;
	__u64 *v = bpf_map_lookup_elem(&unwind_walk_ns, &bucket);
	if (v)
		*v += 1;
	return id;
}

#endif
