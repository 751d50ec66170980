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
        "no-prealloc hash", "syscalls:sys_exit_mmap", "syscalls:sys_enter_munmap"}) {
    EXPECT_NE(r.out.find(item), std::string::npos) << "doctor does not mention " << item << "\n"
                                                   << r.out;
  }
  EXPECT_EQ(r.out.find("missing"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace kscope::testing
