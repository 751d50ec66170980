/* Maps and records shared by bpf/top.bpf.c and the C++ side of `kscope top`
 * (src/trace/top_tracer.cpp). Fixed-width fields only; C++ static_asserts the sizes. */
#ifndef KSCOPE_ABI_TOP_H
#define KSCOPE_ABI_TOP_H

#ifndef __KSCOPE_BPF__
#include <linux/types.h>
#endif

/* Stack ids in an account key that are not ids of the stack map. */
#define KSCOPE_STACK_NONE (-1)      /* not collected (--kernel-only/--user-only, kernel thread) */
#define KSCOPE_STACK_COLLISION (-2) /* the stack map bucket held another stack (counted) */
#define KSCOPE_STACK_ERROR (-3)     /* bpf_get_stackid failed otherwise (counted) */
#define KSCOPE_STACK_UNKNOWN (-4)   /* slice running since before tracing, not switched out yet */
/* (-5 is user space's "not sampled") */
#define KSCOPE_STACK_FULL                                                \
  (-6) /* native user stack walked but not stored: `ustacks` full (lost) \
        */

/* Key of the `accounts` hash map: one account per thread and kernel+user stack at switch-out. */
struct kscope_top_key {
  __u32 pid; /* thread group id */
  __u32 tid;
  __s32 kstack; /* id in the `stacks` map, or KSCOPE_STACK_* */
  __s32 ustack;
};

/* Cumulative values of an account since tracing started. Not on-CPU time by stack: that comes
 * from the sampler (`oncpu_samples`), scaled in user space to the threads' exact totals. */
struct kscope_top_value {
  __u64 slice_ns;     /* CPU time of the slices that ended with this switch-out stack */
  __u64 runq_wait_ns; /* run-queue wait of the off-CPU intervals that began at this stack */
  __u64 switches;     /* schedule-ins of those slices (a slice running at attach has none) */
  __u64 voluntary;    /* switch-outs because the task blocked (kernel's nvcsw) */
  __u64 involuntary;  /* switch-outs while runnable: preempted (kernel's nivcsw) */
  __u64 offcpu_ns;    /* switch-out at this stack to the next switch-in (ended intervals) */
  /* When the thread last switched out here (bpf_ktime_get_ns): its newest account is where its
   * next off-CPU interval will be counted, so user space never folds it (top_session.cpp). */
  __u64 last_out_ns;
};

/* The slice running on a CPU now, for user space to add in-progress time (per-CPU array). */
struct kscope_top_cpu {
  __u64 since_ns; /* switch-in time (bpf_ktime_get_ns, CLOCK_MONOTONIC) */
  __u64 pending_wait_ns;
  __u32 pid;
  __u32 tid;
  __s32 kstack; /* stacks of the task's previous switch-out, KSCOPE_STACK_UNKNOWN if none */
  __s32 ustack;
  __u32 tracked;     /* 1: a tracked task is on this CPU */
  __u32 switched_in; /* 1: its switch-in was seen (counts as a schedule-in) */
};

/* Per-CPU counters (array map `counters`, one __u64 per CPU per index). */
enum kscope_top_counter {
  KSCOPE_TOP_SWITCHES = 0,     /* every context switch on the CPU, tracked or not */
  KSCOPE_TOP_TRACKED_SWITCHES, /* switch-outs of tracked tasks */
  KSCOPE_TOP_KSTACK_COLLISION, /* kernel stack lost to a stack-map collision */
  KSCOPE_TOP_USTACK_COLLISION,
  KSCOPE_TOP_KSTACK_ERROR, /* other bpf_get_stackid failures */
  KSCOPE_TOP_USTACK_ERROR,
  KSCOPE_TOP_ACCOUNTS_FULL,    /* slices not accounted: the accounts map was full */
  KSCOPE_TOP_ACCOUNTS_FULL_NS, /* their on-CPU ns */
  KSCOPE_TOP_STORAGE_FAIL,     /* task storage could not be created */
  KSCOPE_TOP_SLICES_LOST,      /* slice records lost: ring buffer full */
  KSCOPE_TOP_EVENTS_LOST,      /* process events lost: ring buffer full */
  KSCOPE_TOP_DIAG_NO_SWITCHIN, /* diagnostics: schedule-ins (from sched_info.pcount) no sched_switch
                                  event showed */
  KSCOPE_TOP_DIAG_DOUBLE_SWITCHIN, /* diagnostics: switch-in while a slice was open (a switch-out no
                                      event showed) */
  KSCOPE_TOP_SAMPLES,      /* cpu-clock samples of tracked tasks (counted in `oncpu_samples`),
                              in periods of the requested rate (`sample_weight` each) */
  KSCOPE_TOP_SAMPLES_FULL, /* samples not counted: the `oncpu_samples` map was full (weighted) */
  KSCOPE_TOP_USTACK_FULL,  /* native user stacks lost: the `ustacks` map was full */
  KSCOPE_TOP_DIAG_OFFCPU_DATED,  /* diagnostics: off-CPU intervals whose switch-in showed no
                                    event, ended at the next switch-out less the slice's CPU time */
  KSCOPE_TOP_SAMPLER_NS,         /* ns spent in the cpu-clock sampler's program (its own time) */
  KSCOPE_TOP_DIAG_WOKEN_RUNNING, /* diagnostics: wakeups of a task on a CPU since before tracing
                                    (no base set: its slice so far is counted from the clock) */
  KSCOPE_TOP_SAMPLER_BUSY_RUNS,  /* sampler runs that interrupted a task with no context switch on
                                    the CPU since the sampler's run before */
  KSCOPE_TOP_SAMPLER_BUSY_NS,    /* the time from that run before to each of them (the governor:
                                    whether the timer keeps up while tasks run) */
  KSCOPE_TOP_COUNTER_MAX,
};

enum kscope_top_record_type {
  KSCOPE_TOP_REC_PROCESS = 1, /* struct kscope_top_process_event */
  KSCOPE_TOP_REC_SLICE = 2,   /* struct kscope_top_slice_event (only when recording slices) */
};

/* A process was seen for the first time or called exec: user space snapshots its mappings
 * while it lives, so its stacks still resolve after it exits. */
struct kscope_top_process_event {
  __u16 type;
  __u16 exec; /* 1: after execve */
  __u32 pid;  /* thread group id */
  __u32 tid;
  __u32 pad;
  __u64 time_ns;
  char comm[16];
};

/* One on-CPU slice of a tracked thread. */
struct kscope_top_slice_event {
  __u16 type;
  __u16 cpu;
  __u32 pid;
  __u32 tid;
  __u32 flags; /* bit 0: voluntary switch-out */
  __u64 start_ns;
  __u64 end_ns;
  char comm[16];
};

#define KSCOPE_TOP_SLICE_VOLUNTARY 0x1u

#endif
