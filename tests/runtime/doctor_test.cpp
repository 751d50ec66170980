#include <gtest/gtest.h>

#include "runtime_env.h"
#include "subprocess.h"

namespace kscope::testing {
namespace {

TEST(DoctorRuntime, ReportsEveryMechanismFaultsNeedsAsOk) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  auto r = run({KSCOPE_BINARY, "doctor"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  for (const char* item :
       {"BTF", "tp_btf/page_fault_user", "tp_btf/page_fault_kernel", "tp_btf/sched_process_exec",
        "perf_event minor-faults", "perf_event major-faults", "bpf_find_vma", "task storage",
        "ring buffer", "privileges", "native unwinder: bpf_task_pt_regs", "global functions",
        "no-prealloc hash", "syscalls:sys_exit_mmap", "syscalls:sys_enter_munmap", "tracefs"}) {
    EXPECT_NE(r.out.find(item), std::string::npos) << "doctor does not mention " << item << "\n"
                                                   << r.out;
  }
  EXPECT_EQ(r.out.find("missing"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("absent"), std::string::npos) << r.out;
}

// A machine that never mounted tracefs (no systemd): the syscalls tracepoints' ids are not
// readable until kscope mounts it. In a private mount namespace with tracefs (and debugfs, whose
// tracing/ is tracefs too) unmounted, so the host's mounts are untouched.
TEST(DoctorRuntime, MountsTracefsWhereNoneIsMountedAndSaysSo) {
  KSCOPE_REQUIRE_ROOT_OR_SKIP();
  std::string kscope = KSCOPE_BINARY;
  std::string script =
      "umount -l /sys/kernel/debug 2>/dev/null; umount -l /sys/kernel/tracing 2>/dev/null; "
      "test -e /sys/kernel/tracing/events && { echo 'tracefs still mounted' >&2; exit 3; }; " +
      kscope +
      " doctor || exit 4; test -e /sys/kernel/tracing/events || exit 5; "
      "umount /sys/kernel/tracing || exit 6; " +
      kscope + " top -p $$ --once --duration 0.3 -v > /dev/null";
  auto r = run({"unshare", "-m", "--propagation", "private", "sh", "-c", script});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("was not mounted: kscope mounted it"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("missing"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("absent"), std::string::npos) << r.out;
  // top mounted it again, said so once, and attached the syscalls tracepoints.
  EXPECT_NE(r.err.find("kscope top: tracefs was not mounted; mounted it at /sys/kernel/tracing"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("sys_exit_mmap"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace kscope::testing
