// SPDX-License-Identifier: GPL-2.0
/* Tiny programs that `kscope doctor` loads one at a time to find out, by trying, which kernel
 * features this machine offers. Each uses exactly one feature on top of a plain program. */
#include "kscope_common.bpf.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} probe_rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} probe_task_storage SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 16);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, 127 * sizeof(__u64));
} probe_stacks SEC(".maps");

SEC("tp_btf/page_fault_user")
int BPF_PROG(probe_page_fault_user, unsigned long address, struct pt_regs *regs, unsigned long ec)
{
	return 0;
}

SEC("tp_btf/page_fault_kernel")
int BPF_PROG(probe_page_fault_kernel, unsigned long address, struct pt_regs *regs, unsigned long ec)
{
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(probe_sched_process_fork, struct task_struct *parent, struct task_struct *child)
{
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(probe_sched_process_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *b)
{
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(probe_sched_process_exit, struct task_struct *p)
{
	return 0;
}

SEC("tp_btf/task_rename")
int BPF_PROG(probe_task_rename, struct task_struct *task, const char *comm)
{
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(probe_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(probe_sched_wakeup, struct task_struct *p)
{
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(probe_sched_wakeup_new, struct task_struct *p)
{
	return 0;
}

SEC("perf_event")
int probe_perf_event(struct bpf_perf_event_data *ctx)
{
	return 0;
}

static long probe_vma_cb(struct task_struct *task, struct vm_area_struct *vma, void *data)
{
	return 0;
}

/* The native unwinder notes each executable mapping that mmap() returns (unwind.bpf.h). */
SEC("tracepoint/syscalls/sys_exit_mmap")
int probe_sys_exit_mmap(void *ctx)
{
	return 0;
}

/* ... and forgets the noted mappings munmap() removes (unwind.bpf.h). */
SEC("tracepoint/syscalls/sys_enter_munmap")
int probe_sys_enter_munmap(void *ctx)
{
	return 0;
}

SEC("tp_btf/page_fault_user")
int BPF_PROG(probe_find_vma, unsigned long address, struct pt_regs *regs, unsigned long ec)
{
	__u64 unused = 0;
	bpf_find_vma(bpf_get_current_task_btf(), address, probe_vma_cb, &unused, 0);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(probe_task_storage_prog, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u64 *v = bpf_task_storage_get(&probe_task_storage, next, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (v)
		*v += 1;
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(probe_ringbuf, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u64 *e = bpf_ringbuf_reserve(&probe_rb, sizeof(*e), 0);
	if (e)
		bpf_ringbuf_discard(e, BPF_RB_NO_WAKEUP);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(probe_stackid, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	bpf_get_stackid(ctx, &probe_stacks, 0);
	bpf_get_stackid(ctx, &probe_stacks, BPF_F_USER_STACK);
	return 0;
}

/* The native user-stack unwinder (bpf/unwind.bpf.h): a task's user registers, reads of its
 * stack, bpf_loop for the frames and the searches (a callback reading a map value through a
 * pointer kept in the loop context), a global function (verified once, on its own), and its map
 * types: arrays, a per-CPU array, a hash map allocated on use, bpf_ktime_get_ns for timing. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} probe_unwind_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} probe_unwind_percpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} probe_unwind_hash SEC(".maps");

struct probe_loop_ctx {
	__u64 *value;
	__u64 sum;
};

static long probe_loop_cb(__u32 i, void *data)
{
	struct probe_loop_ctx *c = data;
	c->sum += *c->value;
	return 0;
}

__noinline int probe_unwind_global(__u32 key, __u64 sp)
{
	__u64 word = 0;
	bpf_probe_read_user(&word, sizeof(word), (const void *)sp);
	__u64 *v = bpf_map_lookup_elem(&probe_unwind_array, &key);
	if (!v)
		return 0;
	struct probe_loop_ctx c = {.value = v};
	bpf_loop(2, probe_loop_cb, &c, 0);
	__u64 *h = bpf_map_lookup_elem(&probe_unwind_hash, &key);
	__u64 *p = bpf_map_lookup_elem(&probe_unwind_percpu, &key);
	if (p)
		*p += c.sum + (h ? *h : 0) + word;
	return 1;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(probe_unwind_helpers, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(prev);
	__u64 t0 = bpf_ktime_get_ns();
	probe_unwind_global(0, BPF_CORE_READ(regs, sp));
	return bpf_ktime_get_ns() < t0;
}

/* kscope faults flushes its per-CPU batches by running a raw_tp program on each CPU
 * (BPF_PROG_TEST_RUN with BPF_F_TEST_RUN_ON_CPU). */
SEC("raw_tp")
int probe_test_run_on_cpu(void *ctx)
{
	return 7;
}
