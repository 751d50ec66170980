/* Helpers shared by kscope's BPF programs. */
#ifndef KSCOPE_COMMON_BPF_H
#define KSCOPE_COMMON_BPF_H

#define __KSCOPE_BPF__ 1
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#ifndef ENOENT
#define ENOENT 2
#endif
#ifndef EBUSY
#define EBUSY 16
#endif

/* Ring-buffer wake-ups, not records, are what tracing costs (see shared/kernel-facts.md): submit
 * without waking the consumer, which polls on a timer, and force a wake-up only when a lot of data
 * is pending so the buffer cannot fill between polls. */
static __always_inline long kscope_rb_flags(void *ringbuf, __u64 wakeup_bytes)
{
	__u64 pending = bpf_ringbuf_query(ringbuf, BPF_RB_AVAIL_DATA);
	return pending >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

#endif
