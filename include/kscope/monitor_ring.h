/* kscope monitor's shared-memory sample ring: public, stable binary layout.
 *
 * `kscope monitor --shm NAME` creates /dev/shm/NAME (POSIX shm_open(3) name "/NAME") and writes
 * every sample row into it while it runs. Any program may mmap it read-only and follow the
 * series live. The file is: one struct kscope_ring_header (header_size bytes), then slot_count
 * slots of slot_size bytes each, each slot starting with a struct kscope_ring_slot. All integers
 * are little-endian fixed-width (the layout is only meant for the machine that wrote it).
 *
 * Writing protocol (single writer). Row number s (0, 1, 2, ...) goes to slot s % slot_count:
 *   1. slot.seq = 2*s + 1            (odd: being written)
 *   2. the payload fields are written
 *   3. slot.seq = 2*s + 2            (release store: complete)
 *   4. header.write_seq = s + 1      (release store)
 * Reading row r: load header.write_seq (acquire) = w. If r >= w nothing new yet. If
 * w - r > slot_count the reader was lapped: rows r .. w-slot_count-1 are lost, continue from
 * w - slot_count. Otherwise load slot.seq (acquire); it must equal 2*r + 2; copy the slot;
 * acquire fence; load slot.seq again; if it changed, the writer lapped the reader during the
 * copy and the row is lost. See docs/monitor.md and src/monitor/ring.cpp for a reader.
 *
 * A reader must check magic, version == KSCOPE_RING_VERSION, and slot_size >=
 * sizeof(struct kscope_ring_slot); a different version is a different layout.
 */
#ifndef KSCOPE_MONITOR_RING_H
#define KSCOPE_MONITOR_RING_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KSCOPE_RING_MAGIC 0x474e4952504f434bULL /* "KCOPRING" as little-endian bytes */
#define KSCOPE_RING_VERSION 1u

/* header.flags */
#define KSCOPE_RING_F_WRITER_CLOSED 0x1u /* the monitor exited cleanly; no more rows will come */

/* slot.kind */
#define KSCOPE_RING_KIND_PROCESS 1u   /* one registered process in one period */
#define KSCOPE_RING_KIND_AGGREGATE 2u /* the sums over all registered processes in one period */

struct kscope_ring_header {
  uint64_t magic;             /* KSCOPE_RING_MAGIC */
  uint32_t version;           /* KSCOPE_RING_VERSION */
  uint32_t header_size;       /* bytes; slot 0 starts here */
  uint32_t slot_size;         /* bytes per slot */
  uint32_t slot_count;        /* number of slots, a power of two */
  uint64_t period_ns;         /* sampling period */
  uint64_t start_realtime_ns; /* CLOCK_REALTIME when the monitor started (time_ns is relative) */
  uint32_t writer_pid;        /* the monitor's pid */
  uint32_t flags;             /* KSCOPE_RING_F_* */
  uint64_t write_seq;         /* rows written so far (atomic, release) */
  uint64_t periods;           /* sampling periods completed so far (atomic) */
  uint64_t missed_periods;    /* periods skipped because the monitor woke too late (atomic) */
  uint8_t reserved[56];
};

struct kscope_ring_slot {
  uint64_t seq;               /* 2*row+2 when complete, odd while being written */
  uint64_t time_ns;           /* CLOCK_MONOTONIC time of the sample, since the monitor started */
  uint64_t period_index;      /* which sampling period this row belongs to */
  int32_t pid;                /* the process; 0 for an aggregate row */
  uint32_t kind;              /* KSCOPE_RING_KIND_* */
  char comm[16];              /* NUL-terminated process name; "*" for aggregate rows */
  uint64_t min_faults;        /* minor faults since the previous sample of this process */
  uint64_t maj_faults;        /* major faults since the previous sample */
  uint64_t min_faults_total;  /* kernel minflt of the process (aggregate: sum of deltas) */
  uint64_t maj_faults_total;  /* kernel majflt of the process (aggregate: sum of deltas) */
  uint64_t cpu_time_ns_total; /* CPU time of the process in ns: its process CPU clock */
  uint64_t rss_kb;            /* resident set size in KiB (exited: the last live value) */
  uint32_t cpu_util_ppm;      /* CPU time / wall time over the period, ppm, rounded */
  uint32_t reserved0;
  uint8_t reserved[24];
};

#ifdef __cplusplus
}
#endif

#ifdef __cplusplus
static_assert(sizeof(struct kscope_ring_header) == 128, "kscope_ring_header layout");
static_assert(sizeof(struct kscope_ring_slot) == 128, "kscope_ring_slot layout");
#else
_Static_assert(sizeof(struct kscope_ring_header) == 128, "kscope_ring_header layout");
_Static_assert(sizeof(struct kscope_ring_slot) == 128, "kscope_ring_slot layout");
#endif

#endif /* KSCOPE_MONITOR_RING_H */
