// kscope top's batch output (render/top_text.h) from a fixed table and a fake stack source:
// no BPF, no root. The values are chosen so every column can be checked exactly.
#include "render/top_text.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

namespace kscope {
namespace {

TopRow row(uint32_t pid, uint32_t tid, const char* comm, uint64_t oncpu, uint64_t vol,
           uint64_t invol, uint64_t runq) {
  TopRow r;
  r.pid = pid;
  r.tid = tid;
  r.comm = comm;
  r.values.oncpu_ns = oncpu;
  r.values.slice_ns = oncpu;  // a thread row: its slices add up to its on-CPU time
  r.values.offcpu_ns = 7'000'000;
  r.values.oncpu_samples = 499;
  r.values.voluntary = vol;
  r.values.involuntary = invol;
  r.values.switches = vol + invol;
  r.values.runq_wait_ns = runq;
  r.kstack = 1;
  r.ustack = 2;
  r.stack_pid = pid;
  return r;
}

TopTable table() {
  TopTable t;
  t.interval_ns = 1'000'000'000;
  t.group_by = TopGroupBy::kStack;
  t.ncpus = 2;
  t.cpu_busy = 0.25;
  t.switches_all = 1234;
  t.rows = {row(100, 101, "spinner", 500'000'000, 1, 49, 3'000'000),
            row(200, 200, "sleeper", 2'000'000, 100, 0, 50'000)};
  t.counters.kstack_collisions = 2;
  t.counters.slices_lost = 1;
  return t;
}

// The fake session: a fixed kernel and user stack per row, with a note for the second.
struct FakeStacks {
  int calls = 0;
  TopStackView operator()(const TopRow& r) {
    ++calls;
    TopStackView v;
    TopFrameView k;
    k.addr = 0xffffffff81000010;
    k.symbol = "__schedule";
    k.offset = 0x10;
    k.module = "kernel";
    k.kernel = true;
    k.resolved = true;
    v.kernel.push_back(k);
    TopFrameView u;
    u.addr = 0x401234;
    u.symbol = r.tid == 101 ? "spin_loop" : "nap";
    u.offset = 4;
    u.module = "prog";
    u.resolved = true;
    v.user.push_back(u);
    if (r.pid == 200) v.note = "[user stack lost: stack-map collision (counted in lost)]";
    return v;
  }
};

TEST(TopText, TableRowsCarryEveryValueAndTheirStacks) {
  FakeStacks fake;
  StackProvider stacks = [&](const TopRow& r) { return fake(r); };
  std::string text = render_top_text(table(), 20, stacks);
  EXPECT_NE(text.find("interval 1.00s, 1234 context switches on 2 CPUs, CPU busy 25.0%"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("lost 3"), std::string::npos) << text;
  std::istringstream in(text);
  std::string line;
  std::vector<std::string> lines;
  while (std::getline(in, line)) lines.push_back(line);
  // header, what the stacks' numbers are, lost breakdown, column titles, then row 1 and its two
  // frames.
  ASSERT_GE(lines.size(), 11u) << text;
  EXPECT_EQ(lines[1].rfind("kscope top: no stacks sampled", 0), 0u) << lines[1];
  EXPECT_EQ(lines[2], "kscope top: lost: kernel stack collisions 2, slice records lost 1");
  EXPECT_NE(lines[3].find("RUNQ WAIT"), std::string::npos);
  EXPECT_NE(lines[3].find("OFF-CPU"), std::string::npos);
  std::istringstream r1(lines[4]);
  std::string rank, pid, tid, comm, sw, vol, invol, oncpu, pct, samples, offcpu, runq, slice;
  r1 >> rank >> pid >> tid >> comm >> oncpu >> pct >> samples >> offcpu >> runq >> sw >> vol >>
      invol >> slice;
  std::string avg = format_duration_ns(table().rows[0].avg_slice_ns());
  EXPECT_EQ(rank, "1");
  EXPECT_EQ(pid, "100");
  EXPECT_EQ(tid, "101");
  EXPECT_EQ(comm, "spinner");
  EXPECT_EQ(sw, "50");
  EXPECT_EQ(vol, "1");
  EXPECT_EQ(invol, "49");
  EXPECT_EQ(oncpu, "500.0ms");
  EXPECT_EQ(pct, "50.0");
  EXPECT_EQ(avg, "10.0ms");  // 500 ms over 50 switch-outs
  EXPECT_EQ(runq, "3.0ms");
  EXPECT_EQ(samples, "499");
  EXPECT_EQ(offcpu, "7.0ms");
  EXPECT_EQ(slice, "500.0ms");
  EXPECT_NE(lines[5].find("kernel:"), std::string::npos);
  EXPECT_NE(lines[5].find("__schedule+0x10"), std::string::npos) << lines[5];
  EXPECT_NE(lines[6].find("user:"), std::string::npos);
  EXPECT_NE(lines[6].find("spin_loop+0x4 [prog]"), std::string::npos) << lines[6];
  EXPECT_NE(text.find("[user stack lost: stack-map collision"), std::string::npos);
  EXPECT_EQ(fake.calls, 2);
}

TEST(TopText, RowsBeyondTheLimitAreCountedNotShown) {
  FakeStacks fake;
  StackProvider stacks = [&](const TopRow& r) { return fake(r); };
  std::string text = render_top_text(table(), 1, stacks);
  EXPECT_EQ(text.find("sleeper"), std::string::npos);
  EXPECT_NE(text.find("(1 more rows; -n to show more)"), std::string::npos) << text;
  EXPECT_EQ(fake.calls, 1) << "stacks are resolved only for the rows shown";
}

TEST(TopText, JsonHasTheDocumentedFields) {
  FakeStacks fake;
  StackProvider stacks = [&](const TopRow& r) { return fake(r); };
  auto j = nlohmann::json::parse(render_top_json(table(), 20, stacks));
  EXPECT_EQ(j["interval_ns"], 1'000'000'000u);
  EXPECT_EQ(j["group_by"], "stack");
  EXPECT_EQ(j["lost"], 3u);
  EXPECT_EQ(j["drops"]["kernel_stack_collisions"], 2u);
  EXPECT_EQ(j["drops"]["slice_records_lost"], 1u);
  EXPECT_EQ(j["switches_all_cpus"], 1234u);
  EXPECT_EQ(j["ncpus"], 2);
  EXPECT_DOUBLE_EQ(j["cpu_busy"].get<double>(), 0.25);
  ASSERT_EQ(j["tasks"].size(), 2u);
  const auto& t = j["tasks"][0];
  EXPECT_EQ(t["rank"], 1u);
  EXPECT_EQ(t["pid"], 100u);
  EXPECT_EQ(t["tid"], 101u);
  EXPECT_EQ(t["comm"], "spinner");
  EXPECT_EQ(t["switches"], 50u);
  EXPECT_EQ(t["voluntary"], 1u);
  EXPECT_EQ(t["involuntary"], 49u);
  EXPECT_EQ(t["oncpu_ns"], 500'000'000u);
  EXPECT_EQ(t["runq_wait_ns"], 3'000'000u);
  ASSERT_EQ(t["kernel_stack"].size(), 1u);
  EXPECT_EQ(t["kernel_stack"][0]["symbol"], "__schedule");
  EXPECT_EQ(t["kernel_stack"][0]["addr"], "0xffffffff81000010");
  EXPECT_EQ(t["user_stack"][0]["symbol"], "spin_loop");
  EXPECT_EQ(t["user_stack"][0]["module"], "prog");
  EXPECT_TRUE(t["user_stack"][0]["resolved"].get<bool>());
  EXPECT_FALSE(t.contains("stack_note"));
  EXPECT_EQ(j["tasks"][1]["stack_note"],
            "[user stack lost: stack-map collision (counted in lost)]");
}

}  // namespace
}  // namespace kscope
