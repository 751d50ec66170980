// SPDX-License-Identifier: GPL-2.0
/* kscope top: exact on-CPU time, schedule-ins, voluntary/involuntary switches and run-queue wait
 * per thread, off-CPU time per switch-out stack (measured at every context switch), and a
 * cpu-clock sampler that counts where tracked threads are when they run.
 *
 * sched_switch (tp_btf, runs on the CPU doing the switch, in the context of `prev`):
 *  - prev (switched out): what prev did since it was last observed is added to the account
 *    (tgid, tid, kernel stack, user stack) of prev's stacks at this moment: the growth of its
 *    own kernel counters (on-CPU time, schedule-ins, run-queue wait, voluntary and involuntary
 *    switches), so the account equals schedstat and status even if an event was missed.
 *    The CPU time of a slice goes to the stack it ended at (slice_ns: not where the CPU went);
 *    the run-queue wait that followed the previous switch-out goes to that switch-out's account.
 *  - next (switched in): the slice start (for in-progress time and slice records), and the
 *    off-CPU interval since its switch-out, added to that switch-out's account (offcpu_ns).
 * perf_event (cpu-clock, one per online CPU): the kernel and user stack of the tracked task
 * running there, counted per (tgid, tid, kstack, ustack) in `oncpu_samples`. User space scales
 * each thread's samples to its exact on-CPU total.
 * sched_wakeup / sched_wakeup_new give a task's counters a starting point before it runs.
 * Slice and wakeup state lives in task storage, so migrations cannot corrupt it. A per-CPU copy
 * of the running slice lets user space add the time of slices still in progress.
 */
#include "kscope_common.bpf.h"
#include "kscope/abi/top.h"
#include "unwind.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define PF_KTHREAD 0x00200000 /* include/linux/sched.h */
#ifndef EEXIST
#define EEXIST 17
#endif

/* Set by user space between open and load. */
const volatile bool filter_pids = false;  /* only tgids in `filter_tgids` */
const volatile bool filter_tids = false;  /* only threads in `filter_tid_set` (-t) */
const volatile bool filter_comm = false;  /* only threads named `comm_filter` */
const volatile char comm_filter[16] = {};
const volatile bool include_idle = false; /* the idle tasks (pid 0) */
const volatile bool collect_kstack = true;
const volatile bool collect_ustack = true;
const volatile bool ustack_dwarf = true; /* native .eh_frame walk (--call-graph dwarf), else fp */
const volatile bool record_slices = false;
/* kscope's own process when it hides itself (machine-wide without --show-self): never traced, so
 * its threads add no accounts, samples or stacks (its own stacks change all the time: symbolizing
 * and building tables made it the largest source of new keys in the soak). */
const volatile __u32 exclude_tgid = 0;
const volatile __u64 wakeup_bytes = 1 << 20;

/* Set by user space after load, before attach: the time tracing starts (bpf_ktime_get_ns). */
__u64 start_ns = 0;
/* What one cpu-clock sample counts in `oncpu_samples`: the requested period's multiple the timer
 * runs at now. 1 unless user space lowered the rate because the sampler took too much CPU
 * (TopTracer's governor: the period is doubled, and each sample then stands for two of the
 * requested rate). */
__u64 sample_weight = 1;

struct task_state {
	__u64 since_ns;     /* switch-in time of the running slice, 0 when not running/unknown */
	__u64 wake_ts;      /* became runnable at, 0 when not waiting (without sched_info only) */
	__u64 pending_wait; /* run-queue wait before the running slice (without sched_info only) */
	__u64 out_ns;       /* switch-out time while off-CPU (0: running, or not seen) */
	/* The task's own kernel counters when it was last observed: each switch-out adds their
	 * growth since then to the account of its stacks at that moment. */
	__u64 last_sum;       /* se.sum_exec_runtime */
	__u64 last_pcount;    /* sched_info.pcount: schedule-ins (schedstat field 3) */
	__u64 last_run_delay; /* sched_info.run_delay: run-queue wait (schedstat field 2) */
	__u64 last_nvcsw;     /* voluntary switches (status voluntary_ctxt_switches) */
	__u64 last_nivcsw;    /* involuntary switches */
	__s32 last_kstack;
	__s32 last_ustack;
	__u8 switched_in;   /* the running slice began with a switch-in we saw */
	__u8 have_last;     /* last_kstack/last_ustack are set */
	__u8 announced;     /* a process event was sent for this thread */
	__u8 have_base;     /* the last_* counters are set */
	__u32 pad2;
};

/* The kernel's own per-task counters. sched_info exists with CONFIG_SCHED_INFO (schedstat,
 * delay accounting: every distribution kernel); without it, switch-ins and run-queue wait come
 * from the events this program sees. */
struct kcounters {
	__u64 sum, pcount, run_delay, nvcsw, nivcsw;
};

static __always_inline bool have_sched_info(void)
{
	return bpf_core_field_exists(struct task_struct, sched_info.pcount) &&
	       bpf_core_field_exists(struct task_struct, sched_info.run_delay);
}

static __always_inline void read_kcounters(struct task_struct *t, struct kcounters *c)
{
	c->sum = t->se.sum_exec_runtime;
	c->nvcsw = t->nvcsw;
	c->nivcsw = t->nivcsw;
	c->pcount = 0;
	c->run_delay = 0;
	/* Direct loads through the BTF pointer (no probe-read helper call); without the fields the
	 * branch is dead and libbpf's relocation of it never runs. */
	if (have_sched_info()) {
		c->pcount = t->sched_info.pcount;
		c->run_delay = t->sched_info.run_delay;
	}
}

static __always_inline void set_base(struct task_state *st, const struct kcounters *c)
{
	st->last_sum = c->sum;
	st->last_pcount = c->pcount;
	st->last_run_delay = c->run_delay;
	st->last_nvcsw = c->nvcsw;
	st->last_nivcsw = c->nivcsw;
	st->have_base = 1;
}

static __always_inline __u64 growth(__u64 now, __u64 then)
{
	return now >= then ? now - then : 0;
}

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_state);
} task_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536); /* resized by user space */
	__type(key, struct kscope_top_key);
	__type(value, struct kscope_top_value);
} accounts SEC(".maps");

/* cpu-clock samples per account key (only with the sampler). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536); /* resized by user space */
	__type(key, struct kscope_top_key);
	__type(value, __u64);
} oncpu_samples SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 16384); /* resized by user space */
	__uint(key_size, sizeof(__u32));
	__uint(value_size, 127 * sizeof(__u64));
} stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} filter_tgids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} filter_tid_set SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kscope_top_cpu);
} cpu_state SEC(".maps");

/* Time of the last context switch on each CPU: the start of whatever runs there now. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} last_switch SEC(".maps");

/* Time of the sampler's last run on each CPU that interrupted a task (top_sample). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sampler_last SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KSCOPE_TOP_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22); /* resized by user space */
} events SEC(".maps");

static __always_inline void count(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);
	if (v)
		*v += n;
}

static __always_inline bool tracked(struct task_struct *t)
{
	if (t->pid == 0)
		return include_idle;
	if (exclude_tgid && t->tgid == exclude_tgid)
		return false;
	if (filter_pids) {
		__u32 tgid = t->tgid;
		if (!bpf_map_lookup_elem(&filter_tgids, &tgid))
			return false;
	}
	if (filter_tids) {
		__u32 tid = t->pid;
		if (!bpf_map_lookup_elem(&filter_tid_set, &tid))
			return false;
	}
	if (filter_comm) {
		for (int i = 0; i < 16; i++) {
			char c = t->comm[i];
			if (c != comm_filter[i])
				return false;
			if (c == 0)
				break;
		}
	}
	return true;
}

static __always_inline void announce(struct task_struct *t, struct task_state *st, __u16 exec,
				     __u64 now)
{
	struct kscope_top_process_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(KSCOPE_TOP_EVENTS_LOST, 1);
		return;
	}
	e->type = KSCOPE_TOP_REC_PROCESS;
	e->exec = exec;
	e->pid = t->tgid;
	e->tid = t->pid;
	e->pad = 0;
	e->time_ns = now;
	__builtin_memcpy(e->comm, t->comm, sizeof(e->comm));
	/* Rare (once per thread and per exec), and user space must read the mappings while the
	 * process lives: wake it now. */
	bpf_ringbuf_submit(e, 0);
	if (st)
		st->announced = 1;
}

static __always_inline __s32 stack_id(void *ctx, __u64 flags, __u32 collision_idx, __u32 error_idx)
{
	long id = bpf_get_stackid(ctx, &stacks, flags);
	if (id >= 0)
		return (__s32)id;
	if (id == -EEXIST) {
		count(collision_idx, 1);
		return KSCOPE_STACK_COLLISION;
	}
	count(error_idx, 1);
	return KSCOPE_STACK_ERROR;
}

/* The user stack of `t`, which is the current task (switched out, or interrupted by a sample):
 * its user registers from kernel entry, its stack readable. The walk --call-graph selects. */
static __always_inline __s32 user_stack_id(void *ctx, struct task_struct *t)
{
	__s32 id;

	if (!collect_ustack || !t->mm || (t->flags & PF_KTHREAD))
		return KSCOPE_STACK_NONE;
	if (!ustack_dwarf)
		return stack_id(ctx, BPF_F_USER_STACK, KSCOPE_TOP_USTACK_COLLISION,
				KSCOPE_TOP_USTACK_ERROR);
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(t);
	id = kscope_unwind_user(t->tgid, BPF_CORE_READ(regs, ip), BPF_CORE_READ(regs, sp),
				BPF_CORE_READ(regs, bp));
	if (id == KSCOPE_STACK_COLLISION) {
		count(KSCOPE_TOP_USTACK_COLLISION, 1);
	} else if (id == KSCOPE_STACK_ERROR) {
		/* The walk's only error besides a full `ustacks` is a failed lookup of its one-entry
		 * per-CPU scratch array, which cannot fail: the stack was walked and is lost for want
		 * of room. User space reclaims the entries no account refers to (top_session.cpp's
		 * reclaim_user_stacks), so a full map means more live stacks than it holds. */
		count(KSCOPE_TOP_USTACK_FULL, 1);
		id = KSCOPE_STACK_FULL;
	}
	return id;
}

static __always_inline struct kscope_top_value *account(struct kscope_top_key *key)
{
	struct kscope_top_value *val = bpf_map_lookup_elem(&accounts, key);
	if (!val) {
		struct kscope_top_value zero = {};
		bpf_map_update_elem(&accounts, key, &zero, BPF_NOEXIST);
		val = bpf_map_lookup_elem(&accounts, key);
	}
	return val;
}

static __always_inline void switch_out(void *ctx, struct task_struct *prev, bool preempt,
				       unsigned int prev_state, __u64 now, __u64 cpu_start)
{
	struct task_state *st = bpf_task_storage_get(&task_state, prev, 0,
						     BPF_LOCAL_STORAGE_GET_F_CREATE);
	struct kcounters kc;
	__u64 slice, wait = 0, ins = 0, vol = 0, invol = 0, seen_in = 0, late_off = 0;
	__u64 start = cpu_start;

	read_kcounters(prev, &kc);
	if (st && st->since_ns) {
		start = st->since_ns;
		seen_in = st->switched_in;
	}
	if (start > now)
		start = now;

	if (st && st->have_base && prev->pid != 0) {
		/* The kernel's own counters: on-CPU time is the growth of se.sum_exec_runtime
		 * (what schedstat and CLOCK_THREAD_CPUTIME_ID report; the kernel charges part of a
		 * switch after this tracepoint, and that tail is counted with the next slice), and
		 * switch-ins, run-queue wait and voluntary/involuntary switches are the growth of
		 * schedstat's and status's counters. They are right even when a sched_switch event
		 * is missing: some kernels do not trace switches out of certain tasks (seen on
		 * Firecracker guests for the init's threads), which hides the switch-in that
		 * follows. */
		slice = growth(kc.sum, st->last_sum);
		vol = growth(kc.nvcsw, st->last_nvcsw);
		invol = growth(kc.nivcsw, st->last_nivcsw);
		if (have_sched_info()) {
			ins = growth(kc.pcount, st->last_pcount);
			wait = growth(kc.run_delay, st->last_run_delay);
			if (ins > seen_in)
				count(KSCOPE_TOP_DIAG_NO_SWITCHIN, ins - seen_in);
		} else {
			ins = seen_in;
			wait = st->pending_wait;
		}
		/* A slice whose switch-in was not seen ran for (at least) its on-CPU time. */
		if (!st->since_ns && slice <= now - start)
			start = now - slice;
		/* Its off-CPU interval, open since the previous switch-out, ended at that unseen
		 * switch-in: dated by this slice's own CPU time (a kernel may not trace switches out
		 * of some tasks: on Firecracker guests, those of the init's threads, so the switch-in
		 * that follows shows no event). */
		if (!st->since_ns && st->out_ns && st->have_last && st->out_ns + slice <= now)
			late_off = now - slice - st->out_ns;
	} else {
		/* First sight of a task that was running when tracing started (or of the idle task,
		 * which keeps no counters): measured from the clock, its switch-in not counted. */
		slice = now - start;
		ins = seen_in;
		if (st)
			wait = st->pending_wait;
		if (!preempt && prev_state != 0)
			vol = 1;
		else
			invol = 1;
	}
	bool voluntary = vol > 0 && invol == 0;

	struct kscope_top_key key = {
		.pid = prev->tgid,
		.tid = prev->pid,
		.kstack = KSCOPE_STACK_NONE,
		.ustack = KSCOPE_STACK_NONE,
	};
	if (collect_kstack)
		key.kstack = stack_id(ctx, 0, KSCOPE_TOP_KSTACK_COLLISION, KSCOPE_TOP_KSTACK_ERROR);
	key.ustack = user_stack_id(ctx, prev);

	/* The run-queue wait since the previous switch-out (the kernel adds it to run_delay at
	 * the switch-in) belongs to the off-CPU interval that began there: to its account, with
	 * that interval itself when its switch-in showed no event. */
	bool wait_to_prev = false;
	if ((wait || late_off) && st && st->have_last && prev->pid != 0) {
		struct kscope_top_key pkey = {
			.pid = prev->tgid,
			.tid = prev->pid,
			.kstack = st->last_kstack,
			.ustack = st->last_ustack,
		};
		struct kscope_top_value *pval = account(&pkey);
		if (pval) {
			pval->runq_wait_ns += wait;
			wait_to_prev = true;
			if (late_off) {
				pval->offcpu_ns += late_off;
				count(KSCOPE_TOP_DIAG_OFFCPU_DATED, 1);
			}
		} else if (late_off) {
			count(KSCOPE_TOP_ACCOUNTS_FULL, 1);
		}
	}

	struct kscope_top_value *val = account(&key);
	if (val && prev->pid == 0) {
		/* The idle tasks of all CPUs share pid 0 and so this account. */
		__sync_fetch_and_add(&val->slice_ns, slice);
		__sync_fetch_and_add(&val->runq_wait_ns, wait);
		__sync_fetch_and_add(&val->switches, ins);
		__sync_fetch_and_add(&val->voluntary, vol);
		__sync_fetch_and_add(&val->involuntary, invol);
	} else if (val) {
		/* An account belongs to one thread, which switches out on one CPU at a time (the
		 * scheduler orders its switch-outs): plain adds, no locked instructions. */
		val->slice_ns += slice;
		if (!wait_to_prev)
			val->runq_wait_ns += wait;
		val->switches += ins;
		val->voluntary += vol;
		val->involuntary += invol;
		val->last_out_ns = now;
	} else {
		count(KSCOPE_TOP_ACCOUNTS_FULL, 1);
		count(KSCOPE_TOP_ACCOUNTS_FULL_NS, slice);
	}
	count(KSCOPE_TOP_TRACKED_SWITCHES, 1);

	if (st) {
		if (!st->announced)
			announce(prev, st, 0, now);
		st->since_ns = 0;
		if (prev->pid != 0)
			set_base(st, &kc);
		st->pending_wait = 0;
		st->switched_in = 0;
		st->last_kstack = key.kstack;
		st->last_ustack = key.ustack;
		st->have_last = 1;
		st->out_ns = prev->pid != 0 ? now : 0;
		/* Without sched_info: preempted, the task waits on the run queue from now; blocked,
		 * a wakeup will start the wait (and a wakeup that came while it ran is void). */
		st->wake_ts = voluntary ? 0 : now;
	} else {
		count(KSCOPE_TOP_STORAGE_FAIL, 1);
	}

	if (record_slices) {
		struct kscope_top_slice_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
		if (!e) {
			count(KSCOPE_TOP_SLICES_LOST, 1);
			return;
		}
		e->type = KSCOPE_TOP_REC_SLICE;
		e->cpu = (__u16)bpf_get_smp_processor_id();
		e->pid = prev->tgid;
		e->tid = prev->pid;
		e->flags = voluntary ? KSCOPE_TOP_SLICE_VOLUNTARY : 0;
		e->start_ns = start;
		e->end_ns = now;
		__builtin_memcpy(e->comm, prev->comm, sizeof(e->comm));
		bpf_ringbuf_submit(e, kscope_rb_flags(&events, wakeup_bytes));
	}
}

static __always_inline void switch_in(struct task_struct *next, __u64 now,
				      struct kscope_top_cpu *cpu)
{
	struct task_state *st = bpf_task_storage_get(&task_state, next, 0,
						     BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!st) {
		count(KSCOPE_TOP_STORAGE_FAIL, 1);
		return;
	}
	if (st->since_ns)
		count(KSCOPE_TOP_DIAG_DOUBLE_SWITCHIN, 1);
	st->since_ns = now;
	st->switched_in = 1;
	/* The off-CPU interval that began at the last switch-out ends here: exact, by that
	 * switch-out's stack. The thread is off every CPU, so nothing else adds to its accounts. */
	if (st->out_ns && st->have_last && st->out_ns <= now && next->pid != 0) {
		struct kscope_top_key key = {
			.pid = next->tgid,
			.tid = next->pid,
			.kstack = st->last_kstack,
			.ustack = st->last_ustack,
		};
		struct kscope_top_value *val = account(&key);
		if (val)
			val->offcpu_ns += now - st->out_ns;
		else
			count(KSCOPE_TOP_ACCOUNTS_FULL, 1);
	}
	st->out_ns = 0;
	/* The kernel updates schedstat for this switch-in after the tracepoint: counters read
	 * now do not include it yet, so the next switch-out counts it. */
	if (!st->have_base && next->pid != 0) {
		struct kcounters kc;
		read_kcounters(next, &kc);
		set_base(st, &kc);
	}
	if (!have_sched_info()) {
		if (st->wake_ts && st->wake_ts <= now)
			st->pending_wait += now - st->wake_ts;
		st->wake_ts = 0;
	}
	cpu->since_ns = now;
	cpu->pending_wait_ns = st->pending_wait;
	cpu->pid = next->tgid;
	cpu->tid = next->pid;
	cpu->kstack = st->have_last ? st->last_kstack : KSCOPE_STACK_UNKNOWN;
	cpu->ustack = st->have_last ? st->last_ustack : KSCOPE_STACK_UNKNOWN;
	cpu->switched_in = 1;
	cpu->tracked = 1;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(top_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	__u64 now = bpf_ktime_get_ns();
	__u32 zero = 0;
	/* Not started: user space sets start_ns once this program is attached (top_tracer.cpp). */
	if (!start_ns)
		return 0;
	struct kscope_top_cpu *cpu = bpf_map_lookup_elem(&cpu_state, &zero);
	__u64 *last = bpf_map_lookup_elem(&last_switch, &zero);
	if (!cpu || !last)
		return 0;
	/* Whatever ran here started at the previous switch on this CPU, or before tracing. */
	__u64 cpu_start = *last ? *last : start_ns;
	*last = now;
	count(KSCOPE_TOP_SWITCHES, 1);

	if (tracked(prev))
		switch_out(ctx, prev, preempt, prev_state, now, cpu_start);
	cpu->tracked = 0;
	if (tracked(next))
		switch_in(next, now, cpu);
	return 0;
}

static __always_inline void on_wakeup(struct task_struct *p)
{
	if (!tracked(p))
		return;
	struct task_state *st = bpf_task_storage_get(&task_state, p, 0,
						     BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!st)
		return;
	/* A waking task's counters are a clean starting point: its next switch-in (even one no
	 * event shows) is counted at its next switch-out. Not so for a task woken while it is on a
	 * CPU (between setting its sleeping state and calling schedule()) that no switch has shown
	 * since tracing started: it has been running since before then, and counters read now
	 * would leave its time from then to this wakeup out of every account. It is left without a
	 * base, so top_adopt shows its running slice and its switch-out counts the slice from its
	 * start (switch_out's first-sight rule). */
	if (!st->have_base && p->pid != 0) {
		if (!st->since_ns && p->on_cpu) {
			count(KSCOPE_TOP_DIAG_WOKEN_RUNNING, 1);
			return;
		}
		struct kcounters kc;
		read_kcounters(p, &kc);
		set_base(st, &kc);
	}
	if (!have_sched_info() && !st->wake_ts)
		st->wake_ts = bpf_ktime_get_ns();
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(top_sched_wakeup, struct task_struct *p)
{
	on_wakeup(p);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(top_sched_wakeup_new, struct task_struct *p)
{
	on_wakeup(p);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(top_sched_process_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	if (!tracked(p))
		return 0;
	kscope_unwind_note_exec(p); /* walks before user space reads the new image's mappings */
	struct task_state *st = bpf_task_storage_get(&task_state, p, 0,
						     BPF_LOCAL_STORAGE_GET_F_CREATE);
	announce(p, st, 1, bpf_ktime_get_ns());
	return 0;
}

/* A tracked task that has been on this CPU since before tracing started (no context switch here
 * since the switch program was attached) has no running slice in cpu_state: its switch-in was
 * never seen, and it may not switch out for a long time (a spinner alone on a CPU). A low-rate
 * timer on every CPU (top_adopt) makes it the CPU's running slice, begun at start_ns: exactly
 * what its first switch-out will account (switch_out's first-sight rule, slice = now - start_ns
 * on a CPU without a switch), so user space adds its time so far at each sample, never nothing
 * and never twice (the switch-out clears cpu_state as it adds the slice to the account). A
 * wakeup while it runs sets no base (on_wakeup), so that case is adopted too. */
SEC("perf_event")
int top_adopt(struct bpf_perf_event_data *ctx)
{
	struct task_struct *t = bpf_get_current_task_btf();
	__u32 zero = 0;

	if (t->pid == 0 || !start_ns)
		return 0;
	struct kscope_top_cpu *cpu = bpf_map_lookup_elem(&cpu_state, &zero);
	__u64 *last = bpf_map_lookup_elem(&last_switch, &zero);
	if (!cpu || !last || *last || cpu->tracked || !tracked(t))
		return 0;
	struct task_state *st = bpf_task_storage_get(&task_state, t, 0, 0);
	if (st && (st->have_base || st->since_ns))
		return 0;
	cpu->since_ns = start_ns;
	cpu->pending_wait_ns = 0;
	cpu->pid = t->tgid;
	cpu->tid = t->pid;
	cpu->kstack = KSCOPE_STACK_UNKNOWN;
	cpu->ustack = KSCOPE_STACK_UNKNOWN;
	cpu->switched_in = 0;
	cpu->tracked = 1;
	return 0;
}

/* cpu-clock sample on one CPU: where the tracked task running there is now. The idle tasks are
 * never sampled (their time is not any thread's CPU time). */
static __always_inline void sample(struct bpf_perf_event_data *ctx)
{
	struct task_struct *t = bpf_get_current_task_btf();

	if (t->pid == 0 || !tracked(t))
		return;
	struct kscope_top_key key = {
		.pid = t->tgid,
		.tid = t->pid,
		.kstack = KSCOPE_STACK_NONE,
		.ustack = KSCOPE_STACK_NONE,
	};
	/* Interrupted in user mode (CPL 3), the task has no kernel stack now. The context allows
	 * only full-width loads of the registers: volatile keeps the compiler from narrowing it. */
	__u64 cs = *(volatile __u64 *)&ctx->regs.cs;
	if (collect_kstack && !(cs & 3))
		key.kstack = stack_id(ctx, 0, KSCOPE_TOP_KSTACK_COLLISION, KSCOPE_TOP_KSTACK_ERROR);
	key.ustack = user_stack_id(ctx, t);
	__u64 weight = sample_weight;
	count(KSCOPE_TOP_SAMPLES, weight);
	__u64 *n = bpf_map_lookup_elem(&oncpu_samples, &key);
	if (!n) {
		__u64 zero = 0;
		bpf_map_update_elem(&oncpu_samples, &key, &zero, BPF_NOEXIST);
		n = bpf_map_lookup_elem(&oncpu_samples, &key);
	}
	if (n)
		*n += weight; /* a thread runs on one CPU at a time */
	else
		count(KSCOPE_TOP_SAMPLES_FULL, weight);
}

/* The sampler's own time per CPU (KSCOPE_TOP_SAMPLER_NS) and how often its timer ran while a
 * task ran there (KSCOPE_TOP_SAMPLER_BUSY_RUNS, _BUSY_NS: runs with no context switch since the
 * run before, and the time between them) are what user space's governor holds under the
 * kernel's perf_cpu_time_max_percent: the kernel throttles a PMU's NMI handler by it, but not a
 * cpu-clock (hrtimer) event, which at -F max took whole CPUs. Idle time is left out: an idle
 * CPU's timer fires far less than asked, at no cost. */
SEC("perf_event")
int top_sample(struct bpf_perf_event_data *ctx)
{
	__u64 begin = bpf_ktime_get_ns();
	struct task_struct *t = bpf_get_current_task_btf();
	__u32 zero = 0;

	if (t->pid != 0) {
		__u64 *prev = bpf_map_lookup_elem(&sampler_last, &zero);
		__u64 *sw = bpf_map_lookup_elem(&last_switch, &zero);
		if (prev && sw) {
			if (*prev > *sw && begin > *prev) {
				count(KSCOPE_TOP_SAMPLER_BUSY_RUNS, 1);
				count(KSCOPE_TOP_SAMPLER_BUSY_NS, begin - *prev);
			}
			*prev = begin;
		}
	}
	sample(ctx);
	count(KSCOPE_TOP_SAMPLER_NS, bpf_ktime_get_ns() - begin);
	return 0;
}
