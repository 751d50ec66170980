#include "trace/feature_probe.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <linux/perf_event.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>

#include "bpf/libbpf_util.h"
#include "bpf/tracefs.h"
#include "probes.skel.h"
#include "trace/mmap_watch.h"
#include "trace/privileges.h"

namespace kscope {

namespace {

struct ProbesDeleter {
  void operator()(probes_bpf* s) const { probes_bpf__destroy(s); }
};

// Loads (and, for tracepoints, attaches) only `wanted` from the probes object.
FeatureCheck try_program(const std::string& name, const std::string& used_by, const char* wanted,
                         bool attach) {
  FeatureCheck c{name, used_by};
  std::unique_ptr<probes_bpf, ProbesDeleter> skel(probes_bpf__open());
  if (!skel) {
    c.detail = fmt::format("cannot open BPF object: {}", std::strerror(errno));
    return c;
  }
  bpf_program* target = nullptr;
  bpf_program* prog;
  bpf_object__for_each_program(prog, skel->obj) {
    bool is_target = std::string(bpf_program__name(prog)) == wanted;
    bpf_program__set_autoload(prog, is_target);
    if (is_target) target = prog;
  }
  if (!target) {
    c.detail = "internal error: probe program not found";
    return c;
  }
  if (int err = probes_bpf__load(skel.get())) {
    c.detail = fmt::format("load failed: {}", std::strerror(-err));
    return c;
  }
  if (attach) {
    bpf_link* link = bpf_program__attach(target);
    if (!link) {
      c.detail = fmt::format("attach failed: {}", std::strerror(errno));
      return c;
    }
    bpf_link__destroy(link);
  }
  c.ok = true;
  return c;
}

FeatureCheck try_perf_event(const std::string& name, const std::string& used_by, uint64_t config) {
  FeatureCheck c{name, used_by};
  perf_event_attr attr = {};
  attr.size = sizeof(attr);
  attr.type = PERF_TYPE_SOFTWARE;
  attr.config = config;
  attr.sample_period = 1;
  attr.disabled = 1;
  long fd = syscall(SYS_perf_event_open, &attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC);
  if (fd < 0) {
    c.detail = std::strerror(errno);
    return c;
  }
  close(static_cast<int>(fd));
  c.ok = true;
  return c;
}

// Runs the raw_tp probe on CPU 0 the way kscope faults flushes its batches.
FeatureCheck try_test_run_on_cpu() {
  FeatureCheck c{"test-run a program on a given CPU", "faults"};
  std::unique_ptr<probes_bpf, ProbesDeleter> skel(probes_bpf__open());
  if (!skel) {
    c.detail = fmt::format("cannot open BPF object: {}", std::strerror(errno));
    return c;
  }
  bpf_program* prog;
  bpf_object__for_each_program(prog, skel->obj) {
    bpf_program__set_autoload(prog, prog == skel->progs.probe_test_run_on_cpu);
  }
  if (int err = probes_bpf__load(skel.get())) {
    c.detail = fmt::format("load failed: {}", std::strerror(-err));
    return c;
  }
  LIBBPF_OPTS(bpf_test_run_opts, opts, .flags = BPF_F_TEST_RUN_ON_CPU, .cpu = 0);
  if (bpf_prog_test_run_opts(bpf_program__fd(skel->progs.probe_test_run_on_cpu), &opts) != 0) {
    c.detail = fmt::format("test run failed: {}", std::strerror(errno));
    return c;
  }
  c.ok = opts.retval == 7;
  if (!c.ok) c.detail = "the program did not run";
  return c;
}

// A dummy software event reporting executable mmaps (how kscope faults learns the libraries of
// processes that exit quickly).
FeatureCheck try_mmap_records() {
  FeatureCheck c{"perf mmap records (dummy software event)", "faults"};
  auto w = MmapWatcher::open(1);
  if (!w) {
    c.detail = w.error().describe();
    return c;
  }
  c.ok = true;
  return c;
}

}  // namespace

FeatureReport probe_kernel_features(int verbosity) {
  bpf::install_libbpf_logger(verbosity);
  FeatureReport report;
  auto& checks = report.checks;
  FeatureCheck btf{"BTF (/sys/kernel/btf/vmlinux)", "all"};
  btf.ok = access("/sys/kernel/btf/vmlinux", R_OK) == 0;
  if (!btf.ok)
    btf.detail = "kernel built without CONFIG_DEBUG_INFO_BTF: CO-RE programs cannot load";
  checks.push_back(btf);

  auto privileges = check_bpf_privileges();
  FeatureCheck priv{"privileges: " + privileges.describe(), "all"};
  priv.ok = privileges.sufficient;
  if (!priv.ok) priv.detail = "run 'sudo kscope doctor'";
  checks.push_back(priv);

  if (btf.ok && priv.ok) {
    checks.push_back(
        try_program("tp_btf/page_fault_user", "faults", "probe_page_fault_user", true));
    checks.push_back(
        try_program("tp_btf/page_fault_kernel", "faults", "probe_page_fault_kernel", true));
    checks.push_back(
        try_program("tp_btf/sched_process_fork", "faults", "probe_sched_process_fork", true));
    checks.push_back(
        try_program("tp_btf/sched_process_exec", "faults", "probe_sched_process_exec", true));
    checks.push_back(
        try_program("tp_btf/sched_process_exit", "faults,top", "probe_sched_process_exit", true));
    checks.push_back(try_program("tp_btf/task_rename", "faults", "probe_task_rename", true));
    checks.push_back(try_program("tp_btf/sched_switch", "top", "probe_sched_switch", true));
    checks.push_back(try_program("tp_btf/sched_wakeup", "top", "probe_sched_wakeup", true));
    checks.push_back(try_program("tp_btf/sched_wakeup_new", "top", "probe_sched_wakeup_new", true));
    checks.push_back(try_program("perf_event program type", "faults", "probe_perf_event", false));
    checks.push_back(try_program("bpf_find_vma helper", "faults", "probe_find_vma", false));
    // Optional: without them the native walker finds a process's libraries only once kscope
    // has read its mappings (the first moments of a short-lived process stay incomplete).
    // Classic tracepoints: libbpf reads their ids from tracefs, mounted here when missing.
    const bpf::TracefsStatus& tracefs = bpf::ensure_tracefs();
    FeatureCheck tracing{"tracefs (" + tracefs.path + ")", "faults,top"};
    tracing.ok = tracefs.ready;
    tracing.optional = true;
    tracing.detail = tracefs.ready
                         ? (tracefs.mounted_now ? "was not mounted: kscope mounted it" : "")
                         : tracefs.error;
    checks.push_back(tracing);
    for (auto [name, program] :
         {std::pair{"tracepoint syscalls:sys_exit_mmap (early unwind mappings)",
                    "probe_sys_exit_mmap"},
          std::pair{"tracepoint syscalls:sys_enter_munmap (early unwind mappings)",
                    "probe_sys_enter_munmap"}}) {
      FeatureCheck c = try_program(name, "faults,top", program, true);
      c.optional = true;
      if (!c.ok)
        c.detail +=
            "; without it, libraries a process maps while traced are walked only once "
            "kscope has read its mappings";
      checks.push_back(c);
    }
    checks.push_back(
        try_program("task storage map", "faults,top", "probe_task_storage_prog", false));
    checks.push_back(try_program("ring buffer map", "faults,top", "probe_ringbuf", false));
    checks.push_back(
        try_program("bpf_get_stackid (kernel+user stacks)", "top", "probe_stackid", false));
    checks.push_back(
        try_program("native unwinder: bpf_task_pt_regs, bpf_probe_read_user, bpf_loop, global "
                    "functions, array/per-CPU array/no-prealloc hash maps",
                    "top", "probe_unwind_helpers", false));
    checks.push_back(try_perf_event("perf_event minor-faults (software)", "faults",
                                    PERF_COUNT_SW_PAGE_FAULTS_MIN));
    checks.push_back(try_perf_event("perf_event major-faults (software)", "faults",
                                    PERF_COUNT_SW_PAGE_FAULTS_MAJ));
    checks.push_back(try_mmap_records());
    checks.push_back(try_test_run_on_cpu());
  }

  report.programs_skipped = !priv.ok || !btf.ok;
  return report;
}

}  // namespace kscope
