/* The native (.eh_frame) user-stack unwinder: tables and records shared by bpf/unwind.bpf.h and
 * the C++ side that builds the tables (src/unwind/). Fixed-width fields only; C++ static_asserts
 * the sizes. Design: docs/unwinding.md. */
#ifndef KSCOPE_ABI_UNWIND_H
#define KSCOPE_ABI_UNWIND_H

#ifndef __KSCOPE_BPF__
#include <linux/types.h>
#endif

#define KSCOPE_UNWIND_MAX_FRAMES 127
/* Executable mappings per process the walker can search (more are counted and left out). */
#define KSCOPE_UNWIND_MAX_MAPPINGS 256
/* Steps of the binary search in a file's rows: 2^24 rows per file at most. */
#define KSCOPE_UNWIND_ROW_SEARCH_STEPS 24
#define KSCOPE_UNWIND_MAX_FILE_ROWS (1u << KSCOPE_UNWIND_ROW_SEARCH_STEPS)
#define KSCOPE_UNWIND_NO_FILE 0xffffffffu

/* How the canonical frame address (CFA, the caller's rsp) of a row is computed: low 4 bits of
 * kscope_unwind_row.kind. */
enum kscope_unwind_cfa_kind {
  KSCOPE_CFA_NONE = 0,   /* no FDE covers this PC (a gap between functions) */
  KSCOPE_CFA_RSP = 1,    /* CFA = rsp + cfa_off */
  KSCOPE_CFA_RBP = 2,    /* CFA = rbp + cfa_off */
  KSCOPE_CFA_PLT = 3,    /* the PLT's expression: rsp + cfa_off + ((rip & 15) >= aux ? 8 : 0) */
  KSCOPE_CFA_SIGNAL = 4, /* a signal trampoline (__restore_rt): registers in the ucontext at rsp */
  /* another register, another expression, or an offset that does not fit */
  KSCOPE_CFA_UNSUPPORTED = 5,
  /* CFA = rbx + cfa_off (ld.so's _dl_runtime_resolve_xsave*, which realigns rsp): followed
   * when rbx is known (the leaf's registers, or restored by a callee's rule), else unsupported */
  KSCOPE_CFA_RBX = 6,
};

/* Where the caller's rbp is: bits 4-5 of kscope_unwind_row.kind. */
enum kscope_unwind_rbp_kind {
  KSCOPE_RBP_UNCHANGED = 0, /* not saved by this frame: the caller's rbp is the current one */
  KSCOPE_RBP_OFFSET = 1,    /* saved at CFA - 8 * KSCOPE_UNWIND_RBP_SLOT(aux) */
  KSCOPE_RBP_UNKNOWN = 2,   /* saved another way (register, expression): unknown to the caller */
};

#define KSCOPE_UNWIND_CFA_MASK 0x0fu
#define KSCOPE_UNWIND_RBP_SHIFT 4
#define KSCOPE_UNWIND_RBP_MASK 0x30u
/* The return address is undefined: the outermost frame. */
#define KSCOPE_UNWIND_RA_UNDEFINED 0x40u
/* The return address is not at CFA-8. */
#define KSCOPE_UNWIND_RA_UNSUPPORTED 0x80u

/* aux of a row that is not KSCOPE_CFA_PLT: the saved rbp's slot in its low nibble (rbp at CFA -
 * 8 * slot, slot 1-15) and the saved rbx's in its high nibble: 0 unchanged, 1-14 saved at
 * CFA - 8 * slot, 15 saved another way (unknown to the caller). All rbp and rbx save slots of
 * Debian's libc, python3, cc1plus and libstdc++ lie between CFA-16 and CFA-56; a slot outside
 * the nibble makes the register unknown, never wrong. rbx matters only to a frame whose CFA is
 * rbx-based (KSCOPE_CFA_RBX). */
#define KSCOPE_UNWIND_RBP_SLOT(aux) ((aux)&0x0fu)
#define KSCOPE_UNWIND_RBX_SLOT(aux) (((aux) >> 4) & 0x0fu)
#define KSCOPE_UNWIND_RBX_UNCHANGED 0u
#define KSCOPE_UNWIND_RBX_UNKNOWN 15u

/* One row of a file's unwind table: valid from `pc` (the file's link-time address) to the next
 * row's pc. Rows of one file are sorted by pc, consecutive rows differ. */
struct kscope_unwind_row {
  __u32 pc;
  __u16 cfa_off; /* bytes */
  __u8 kind;     /* cfa kind | rbp kind << 4 | KSCOPE_UNWIND_RA_* */
  __u8 aux;      /* KSCOPE_CFA_PLT: the rip & 15 threshold; else the rbp and rbx save slots */
};

/* The row index of a file: its text from the first row's pc on, cut into buckets of
 * 2^index_shift bytes; bucket k holds the rows a pc in it can be in force at: the last row
 * whose pc <= fpc lies in [lo - 1, hi) of the file's rows, lo = the rows before the bucket,
 * hi = the rows before the next bucket (the last bucket: row_count). Stored in the rows map
 * (8 bytes, like a row), just before the file's rows: one lookup narrows the binary search of
 * a file's rows to its bucket (design in docs/unwinding.md, "Row index"). */
struct kscope_unwind_index_entry {
  __u32 lo;
  __u32 hi;
};

/* The rows of one file: [first_row, first_row + row_count) of the rows map, and its row index:
 * [index_first, index_first + index_count) of the same map (index_count 0: none, the search
 * covers all rows). */
struct kscope_unwind_file {
  __u32 first_row;
  __u32 row_count;
  __u32 index_first;
  __u32 index_count;
  __u32 index_base;  /* file pc where bucket 0 starts (the first row's pc) */
  __u32 index_shift; /* bucket of fpc = (fpc - index_base) >> index_shift */
};

/* One executable mapping of a process. */
struct kscope_unwind_mapping {
  __u64 start;
  __u64 end;
  __u64 bias; /* file pc = address - bias */
  __u32
      file_id; /* index in the files map, or KSCOPE_UNWIND_NO_FILE (no table: JIT, no .eh_frame) */
  __u32 pad;
};

/* A process's executable mappings, sorted by start (hash map keyed by tgid). */
struct kscope_unwind_process {
  __u32 count;
  __u32 pad;
  struct kscope_unwind_mapping mappings[KSCOPE_UNWIND_MAX_MAPPINGS];
};

/* A file's identity as the kernel sees it (vma->vm_file's inode), the key of the unwind_inodes
 * map: device (kernel encoding, MAJOR << 20 | MINOR, as /proc/PID/maps prints it), inode number,
 * size and modification time (an inode number reused by another file after the first was
 * deleted has another size or mtime). The vDSO: all zero but `size`, the image's size. */
struct kscope_unwind_file_key {
  __u64 ino;
  __u64 size;
  __s64 mtime_sec;
  __u32 mtime_nsec;
  __u32 dev;
};

/* An executable PT_LOAD of a file: load bias = vm_start - (vaddr - (offset - vm_pgoff * 4096)). */
struct kscope_unwind_file_segment {
  __u64 offset; /* p_offset */
  __u64 vaddr;  /* p_vaddr */
  __u64 filesz; /* p_filesz */
};

#define KSCOPE_UNWIND_FILE_SEGMENTS 4

/* Value of unwind_inodes: where a loaded file's table is, for mappings the walker finds before
 * user space wrote the process's entry. */
struct kscope_unwind_file_info {
  __u32 file_id;
  __u32 segment_count;
  struct kscope_unwind_file_segment segments[KSCOPE_UNWIND_FILE_SEGMENTS];
};

/* Executable mappings of a process noted in BPF as they are made (at execve: the executable,
 * the dynamic loader, the vDSO; at each mmap() returning an executable file mapping), so a walk
 * finds them before user space has read the process's mappings. */
#define KSCOPE_UNWIND_EARLY_MAPPINGS 32

struct kscope_unwind_early_mapping {
  __u64 ready; /* set last: the other fields are written */
  __u64 start;
  __u64 end;
  __u64 offset; /* vm_pgoff * 4096 */
  struct kscope_unwind_file_key key;
};

struct kscope_unwind_early {
  __u64 mm;         /* the address space these mappings belong to (task->mm at execve) */
  __u64 start_time; /* of the process (group leader), with mm: not a previous owner of the tgid */
  __u64 reserved;   /* slots taken (may exceed KSCOPE_UNWIND_EARLY_MAPPINGS: counted) */
  struct kscope_unwind_early_mapping mappings[KSCOPE_UNWIND_EARLY_MAPPINGS];
};

/* Why a walk stopped before the outermost frame (0: it reached it). */
enum kscope_unwind_reason {
  KSCOPE_UNWIND_COMPLETE = 0,
  KSCOPE_UNWIND_NO_PROCESS,  /* no mappings of this process loaded (yet) */
  KSCOPE_UNWIND_NO_MAPPING,  /* a PC outside every executable mapping */
  KSCOPE_UNWIND_NO_TABLE,    /* a mapping without table and no plausible frame pointer */
  KSCOPE_UNWIND_NO_ROW,      /* a PC no FDE covers */
  KSCOPE_UNWIND_UNSUPPORTED, /* a rule the walker cannot follow */
  KSCOPE_UNWIND_READ_FAILED, /* stack memory unreadable (e.g. not resident) */
  KSCOPE_UNWIND_BAD_FRAME,   /* a CFA or return address that cannot be right (stack not growing) */
  KSCOPE_UNWIND_DEPTH,       /* more than KSCOPE_UNWIND_MAX_FRAMES frames */
  KSCOPE_UNWIND_BUDGET,      /* the walk loop could not run to its end */
  KSCOPE_UNWIND_REASON_MAX,
};

/* A walked user stack: value of the ustacks hash map (key: a 31-bit id from `hash`). */
struct kscope_unwind_stack {
  __u64 hash; /* of the frames and the outcome; a different hash under the same id is a collision */
  __u32 len;  /* frames used in `ips` */
  __u8 reason; /* enum kscope_unwind_reason */
  __u8 pad[3];
  __u64 ips[KSCOPE_UNWIND_MAX_FRAMES]; /* ips[0] = where the thread was, then return addresses */
};

/* Walk timing (bench/unwind_cost.sh, KSCOPE_UNWIND_TIMING=1): per-CPU histogram of the time of
 * whole walks, bucket i = [i * 25 ns, (i + 1) * 25 ns), the last one (from 25.6 us) everything
 * longer. */
#define KSCOPE_UNWIND_TIMING_BUCKETS 1024
#define KSCOPE_UNWIND_TIMING_NS 25

/* Per-CPU counters of the walker (array map unwind_counters). */
enum kscope_unwind_counter {
  KSCOPE_UNWIND_WALKS = 0,
  /* KSCOPE_UNWIND_WALKS + 1 + reason: walks that ended with that reason (1 + COMPLETE = complete)
   */
  KSCOPE_UNWIND_ENDED = 1,
  KSCOPE_UNWIND_FP_FRAMES =
      KSCOPE_UNWIND_ENDED + KSCOPE_UNWIND_REASON_MAX, /* frames from the frame pointer */
  KSCOPE_UNWIND_STACK_COLLISION,                      /* another stack held the id: not stored */
  KSCOPE_UNWIND_STACK_FULL,                           /* the ustacks map was full: not stored */
  KSCOPE_UNWIND_EARLY_FRAMES,  /* frames whose mapping came from the early (BPF-noted) mappings */
  KSCOPE_UNWIND_EARLY_NOTED,   /* executable mappings noted at execve/mmap */
  KSCOPE_UNWIND_EARLY_DROPPED, /* not noted: no slot left, or the VMA lookup was refused */
  /* noted mappings dropped because munmap() or a later mmap() covered (part of) their range */
  KSCOPE_UNWIND_EARLY_REMOVED,
  KSCOPE_UNWIND_EARLY_MISSES, /* PCs in no mapping user space wrote, looked up in the noted ones
                                 in vain (KSCOPE_UNWIND_EARLY_FRAMES: found) */
  KSCOPE_UNWIND_COUNTER_MAX,
};

#endif
