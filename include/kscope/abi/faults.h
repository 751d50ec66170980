/* Records that cross the kernel boundary for `kscope faults`.
 * Shared by bpf/faults.bpf.c and the C++ decoder (src/trace/fault_tracer.cpp). Fixed-width
 * fields only, a record type first; C++ static_asserts the sizes. */
#ifndef KSCOPE_ABI_FAULTS_H
#define KSCOPE_ABI_FAULTS_H

#ifndef __KSCOPE_BPF__
#include <linux/types.h>
#endif

#define KSCOPE_COMM_LEN 16
#define KSCOPE_PATH_LEN 256

enum kscope_fault_record_type {
  KSCOPE_REC_FAULT = 1, /* struct kscope_fault_event */
  KSCOPE_REC_TASK = 2,  /* struct kscope_task_event: a thread first seen, or renamed by exec */
  KSCOPE_REC_FORK = 3,  /* struct kscope_fork_event: a traced process forked a new process */
  KSCOPE_REC_EXIT = 4,  /* struct kscope_exit_event: a traced thread exited */
  KSCOPE_REC_EXEC = 5,  /* struct kscope_exec_event: a traced process called execve */
  KSCOPE_REC_FAULT_BATCH = 6, /* struct kscope_fault_batch: up to KSCOPE_FAULT_BATCH faults */
};

/* kscope_fault_event.flags */
#define KSCOPE_FAULT_ACCESS_MASK 0x3u /* 0 read, 1 write, 2 exec */
#define KSCOPE_FAULT_KERNEL_MODE 0x4u /* taken while the kernel touched user memory */
#define KSCOPE_FAULT_MAJOR 0x8u       /* reported by PERF_COUNT_SW_PAGE_FAULTS_MAJ */
#define KSCOPE_FAULT_SEGMENT_SHIFT 8  /* enum kscope_segment in bits 8..11 */
#define KSCOPE_FAULT_SEGMENT_MASK 0xf00u

enum kscope_segment {
  KSCOPE_SEG_CODE = 0,
  KSCOPE_SEG_DATA = 1,
  KSCOPE_SEG_HEAP = 2,
  KSCOPE_SEG_STACK = 3,
  KSCOPE_SEG_FILE = 4,
  KSCOPE_SEG_ANON = 5,
  KSCOPE_SEG_OTHER = 6,
  KSCOPE_SEG_UNKNOWN = 7, /* not classified: mmap_lock was contended (bpf_find_vma trylocks) */
};

struct kscope_fault_event {
  __u16 type; /* KSCOPE_REC_FAULT */
  __u16 flags;
  __u32 cpu;   /* CPU on which the fault was taken (at entry) */
  __u64 ts_ns; /* bpf_ktime_get_ns() at fault entry */
  __u64 addr;  /* faulting address */
  __u64 ip;    /* instruction pointer at the fault */
  __u32 pid;   /* thread group id */
  __u32 tid;
  __u64 latency_ns; /* entry to resolution */
  /* kscope faults --stacks: the user stack (an id in `ustacks` with the native walker, in
   * `fault_stacks` with frame pointers) and, for a fault taken in kernel mode, the kernel stack
   * (an id in `fault_stacks`); KSCOPE_FAULT_STACK_* when there is none. */
  __s32 ustack;
  __s32 kstack;
};

/* kscope_fault_event.ustack / kstack when no id: */
#define KSCOPE_FAULT_STACK_NONE (-1) /* not collected (no --stacks, user-mode fault's kstack) */
#define KSCOPE_FAULT_STACK_COLLISION (-2) /* another stack held the map slot: not stored */
#define KSCOPE_FAULT_STACK_ERROR (-3)     /* the map was full, or the helper failed */

/* Which user-stack walker `kscope faults --stacks` uses (rodata stack_mode). */
enum kscope_fault_stack_mode {
  KSCOPE_FAULT_STACKS_OFF = 0,
  KSCOPE_FAULT_STACKS_DWARF = 1, /* the native .eh_frame unwinder (bpf/unwind.bpf.h) */
  KSCOPE_FAULT_STACKS_FP = 2,    /* the kernel's frame-pointer walk (bpf_get_stackid) */
};

/* Fault records are gathered per CPU and written to the ring buffer in batches: one ring-buffer
 * reservation (a lock and an atomic commit, the costly part) per batch instead of per fault. A
 * batch is written when full, before any other record from the same CPU, and when user space
 * asks (KSCOPE_FLUSH program, run on each CPU every poll interval and at the end). */
#define KSCOPE_FAULT_BATCH 64

struct kscope_fault_batch_header {
  __u16 type; /* KSCOPE_REC_FAULT_BATCH */
  __u16 pad;
  __u32 count; /* records that follow */
};

struct kscope_task_event {
  __u16 type; /* KSCOPE_REC_TASK */
  __u16 pad;
  __u32 pid;
  __u32 tid;
  __u32 pad2;
  __u64 ts_ns;
  char comm[KSCOPE_COMM_LEN];
};

struct kscope_fork_event {
  __u16 type; /* KSCOPE_REC_FORK */
  __u16 pad;
  __u32 parent_pid;
  __u32 child_pid;
  __u32 pad2;
  __u64 ts_ns;
};

struct kscope_exit_event {
  __u16 type;       /* KSCOPE_REC_EXIT */
  __u16 group_dead; /* 1 when this was the last live thread of the process */
  __u32 pid;
  __u32 tid;
  __u32 pad;
  __u64 ts_ns;
  __u64 min_flt; /* the thread's final task->min_flt */
  __u64 maj_flt; /* the thread's final task->maj_flt */
};

struct kscope_exec_event {
  __u16 type; /* KSCOPE_REC_EXEC */
  __u16 pad;
  __u32 pid;
  __u32 tid;
  __u32 pad2;
  __u64 ts_ns;
  __u64 min_flt; /* the thread's task->min_flt when exec completed */
  __u64 maj_flt;
  __u32 armed_now; /* 1 when this exec started tracing of the process (kscope faults -- CMD) */
  __u32 pad3;
  char comm[KSCOPE_COMM_LEN];
  char filename[KSCOPE_PATH_LEN];
};

/* traced_tgids values */
#define KSCOPE_TGID_TRACED 1u
#define KSCOPE_TGID_ARMED_FOR_EXEC 2u /* start tracing at this process's next execve */
#define KSCOPE_TGID_THREADS 3u        /* only the threads in traced_tids (kscope faults -t) */

/* tracing_enabled values */
#define KSCOPE_TRACING_OFF 0u
#define KSCOPE_TRACING_ON 1u
/* Stopping: no new fault is started; faults already entered still complete and are recorded,
 * and each thread's counters at its first fault entry from now on are its end bounds. */
#define KSCOPE_TRACING_STOPPING 2u

/* thread_bounds values (hash map keyed by tid): the thread's own fault counters
 * (task->min_flt/maj_flt) at its first fault entry once tracing was on (base) and at its first
 * fault entry once it was stopping (end). Every fault between the two that fired a per-fault
 * event was traced, so the kernel's count over the traced interval agrees with what was seen
 * whatever the timing of the attach and of user space's /proc reads. */
#define KSCOPE_BOUNDS_BASE 1u
#define KSCOPE_BOUNDS_END 2u
struct kscope_thread_bounds {
  __u64 base_min_flt;
  __u64 base_maj_flt;
  __u64 end_min_flt;
  __u64 end_maj_flt;
  __u32 flags; /* KSCOPE_BOUNDS_* */
  __u32 pad;
};

/* Per-CPU counters (array map `fault_counters`), indexed by this enum. */
enum kscope_fault_counter {
  KSCOPE_CNT_FAULT_EMITTED = 0, /* fault records written to the ring buffer */
  KSCOPE_CNT_FAULT_DROPPED = 1, /* fault records lost: ring buffer full */
  KSCOPE_CNT_CTRL_DROPPED = 2,  /* task/fork/exit/exec records lost: ring buffer full */
  KSCOPE_CNT_NO_ENTRY = 3,      /* completion without a matching entry (not recorded) */
  KSCOPE_CNT_FAILED_ENTRY = 4,  /* entry never completed: invalid access, spurious fault */
  KSCOPE_CNT_NO_STORAGE = 5,    /* task storage could not be allocated */
  KSCOPE_CNT_VMA_BUSY = 6,      /* bpf_find_vma could not take mmap_lock: segment "other" */
  KSCOPE_CNT_BOUNDS_FULL = 7,   /* thread_bounds full: that thread's counters come from /proc */
  KSCOPE_CNT_OWN_READ = 8,      /* faults taken by kscope's own read of the stack it walks */
  KSCOPE_CNT_MAX = 9,
};

#endif /* KSCOPE_ABI_FAULTS_H */
