// What kscope top keeps of exited processes for the whole-run profile (TopRetired): values,
// names and symbolized user stacks round-trip exactly, and what is held grows with the distinct
// frames and stacks of the run, not with the number of processes that ran the same code.
#include "model/top_retired.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "model/top_recording.h"

namespace kscope {
namespace {

std::vector<TopFrameView> stack_of(uint64_t base, const std::string& binary) {
  std::vector<TopFrameView> frames;
  const char* names[] = {"leaf", "middle", "outer", "main", "__libc_start_call_main"};
  for (int i = 0; i < 5; ++i) {
    TopFrameView f;
    f.addr = base + 0x100 * static_cast<uint64_t>(i) + 7;
    f.symbol = names[i];
    f.offset = 7;
    f.module = binary.substr(binary.rfind('/') + 1);
    f.module_path = binary;
    f.resolved = true;
    frames.push_back(f);
  }
  TopFrameView inl;  // an inlined frame shares the next frame's address
  inl.addr = base + 7;
  inl.symbol = "inlined_helper";
  inl.module = "prog";
  inl.module_path = binary;
  inl.resolved = true;
  inl.inlined = true;
  frames.insert(frames.begin(), inl);
  TopFrameView marker;
  marker.symbol = "[incomplete: depth limit]";
  marker.marker = true;
  frames.push_back(marker);
  return frames;
}

void expect_same(const std::vector<TopFrameView>& a, const std::vector<TopFrameView>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].addr, b[i].addr) << i;
    EXPECT_EQ(a[i].symbol, b[i].symbol) << i;
    EXPECT_EQ(a[i].offset, b[i].offset) << i;
    EXPECT_EQ(a[i].module, b[i].module) << i;
    EXPECT_EQ(a[i].module_path, b[i].module_path) << i;
    EXPECT_EQ(a[i].kernel, b[i].kernel) << i;
    EXPECT_EQ(a[i].resolved, b[i].resolved) << i;
    EXPECT_EQ(a[i].inlined, b[i].inlined) << i;
    EXPECT_EQ(a[i].marker, b[i].marker) << i;
  }
}

TEST(TopRetired, KeepsValuesNamesAndStacksOfExitedThreads) {
  TopRetired r;
  TopAccountKey a{100, 101, 3, 7};
  r.add_values(a, TopValues{1000, 10, 2, 1, 1});
  r.add_values(a, TopValues{500, 5, 1, 1, 0});  // the same key again: summed
  r.set_comm(100, 101, "worker");
  auto frames = stack_of(0x555500000000, "/usr/bin/prog");
  r.keep_user_stack(100, 7, frames);
  r.keep_user_stack(100, 7, stack_of(0x1000, "/other"));  // the first one kept stays

  ASSERT_EQ(r.values().size(), 1u);
  EXPECT_EQ(r.values().at(a), (TopValues{1500, 15, 3, 2, 1}));
  EXPECT_EQ(r.comm(100, 101), "worker");
  EXPECT_FALSE(r.comm(100, 102).has_value());
  EXPECT_TRUE(r.has_user_stack(100, 7));
  EXPECT_FALSE(r.has_user_stack(100, 8));
  EXPECT_FALSE(r.has_user_stack(200, 7));
  auto kept = r.user_stack(100, 7);
  ASSERT_TRUE(kept.has_value());
  expect_same(*kept, frames);
  EXPECT_FALSE(r.user_stack(101, 7).has_value());
}

TEST(TopRetired, HoldsDistinctFramesOnceWhateverTheProcessChurn) {
  TopRetired r;
  // 2000 short processes of one non-PIE binary (the same addresses in each), each with one
  // thread and one stack; then 2000 of a PIE binary, each loaded at its own address.
  const size_t n = 2000;
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t pid = 10000 + i;
    r.add_values(TopAccountKey{pid, pid, 1, 42}, TopValues{1000 + i, 0, 1, 1, 0});
    r.set_comm(pid, pid, "short");
    r.keep_user_stack(pid, 42, stack_of(0x400000, "/usr/bin/nonpie"));
  }
  auto s = r.sizes();
  EXPECT_EQ(s.accounts, n);
  EXPECT_EQ(s.threads, n);
  EXPECT_EQ(s.stacks, n);
  EXPECT_EQ(s.frames, 7u);  // one process's frames: the other 1999 share them
  // 6 function names, "nonpie", "prog", the path, the marker, "" and the comm: nothing per
  // process.
  EXPECT_EQ(s.strings, 12u);

  for (uint32_t i = 0; i < n; ++i) {
    uint32_t pid = 20000 + i;
    r.set_comm(pid, pid, "short");
    r.keep_user_stack(pid, 42, stack_of(0x550000000000 + (uint64_t{i} << 24), "/usr/bin/pie"));
  }
  s = r.sizes();
  EXPECT_EQ(s.stacks, 2 * n);
  // Each PIE process has its own addresses, so its 6 real frames are its own (the marker, with
  // no address, is shared); the strings are not.
  EXPECT_EQ(s.frames, 7u + 6 * n);
  EXPECT_EQ(s.strings, 14u);  // + "pie" and its path
  expect_same(*r.user_stack(20000 + 1234, 42),
              stack_of(0x550000000000 + (uint64_t{1234} << 24), "/usr/bin/pie"));
  expect_same(*r.user_stack(10000 + 1999, 42), stack_of(0x400000, "/usr/bin/nonpie"));
}

}  // namespace
}  // namespace kscope

namespace kscope {
namespace {

// An exited thread's kernel stack moves to an id of the retired store (the kernel's id is
// reclaimed and may become another stack's): the same frames get the same id, other frames
// another, every id is above the kernel's ids and the KSCOPE_STACK_* values, and the frames
// round-trip exactly.
TEST(TopRetired, KernelStacksGetIdsOfTheirOwnByContent) {
  TopRetired r;
  auto kernel = [](uint64_t base) {
    std::vector<TopFrameView> frames = stack_of(base, "[kernel]");
    for (auto& f : frames) f.kernel = true;
    return frames;
  };
  int32_t a = r.keep_kernel_stack(kernel(0xffffffff81000000));
  int32_t b = r.keep_kernel_stack(kernel(0xffffffff82000000));
  EXPECT_NE(a, b);
  EXPECT_EQ(r.keep_kernel_stack(kernel(0xffffffff81000000)), a);
  for (int32_t id : {a, b}) {
    EXPECT_TRUE(TopRetired::is_kernel_stack_id(id));
    EXPECT_GE(id, int32_t{1} << 22);  // above every id of a --max-stacks map
  }
  EXPECT_FALSE(TopRetired::is_kernel_stack_id(kStackNone));
  EXPECT_FALSE(TopRetired::is_kernel_stack_id((1 << 22) - 1));
  auto got = r.kernel_stack(b);
  ASSERT_TRUE(got);
  expect_same(*got, kernel(0xffffffff82000000));
  EXPECT_FALSE(r.kernel_stack(b + 1));
  EXPECT_FALSE(r.kernel_stack(5));
  EXPECT_EQ(r.sizes().kernel_stacks, 2u);
}

// The session renames an account when its thread retires (kernel stack id -> retired id): what
// was written of it counts for the new key, so the next increment writes only what it grew by
// since, and the increments still add up to the totals.
TEST(ProfileIncrementsRename, MovesWhatWasWrittenWithTheKey) {
  ProfileIncrements inc;
  ProfileIncrements::Totals totals;
  TopAccountKey live{10, 11, 5, 7}, retired{10, 11, TopRetired::kRetiredKernelStackBase, 7};
  totals[live] = TopValues{1000, 10, 2, 1, 1};
  auto first = inc.next(totals);
  ASSERT_EQ(first.size(), 1u);
  // The thread exits after growing a little more; its final values go under the retired key.
  TopValues final_values{1500, 12, 3, 2, 1};
  totals.erase(live);
  totals[retired] = final_values;
  inc.rename(live, retired);
  auto second = inc.next(totals);
  ASSERT_EQ(second.size(), 1u) << "the old key must not be written back to zero";
  EXPECT_EQ(second[0].first, retired);
  TopProfileValues sum = first[0].second;
  for (size_t i = 0; i < sum.size(); ++i) sum[i] += second[0].second[i];
  EXPECT_EQ(sum, profile_values(final_values));
  EXPECT_TRUE(inc.next(totals).empty());
  inc.rename(TopAccountKey{1, 2, 3, 4}, retired);  // never written: nothing moves
  EXPECT_TRUE(inc.next(totals).empty());
}

}  // namespace
}  // namespace kscope
