// bpf::read_map / bpf::delete_keys (src/bpf/map_batch.h) against a real kernel hash map whose
// contents the test wrote: the batch path and the per-key fallback must both return exactly
// the entries in the map, and deletion must remove exactly the keys asked for, skipping keys
// that are not there.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <map>
#include <tuple>
#include <vector>

#include "bpf/map_batch.h"
#include "runtime_env.h"

namespace kscope::testing {
namespace {

struct Key {
  uint32_t pid, tid;
  int32_t a, b;
  auto operator<=>(const Key&) const = default;
};

class MapBatch : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (BPF maps)";
    fd_ = bpf_map_create(BPF_MAP_TYPE_HASH, "kscope_test", sizeof(Key), sizeof(uint64_t), 20000,
                         nullptr);
    ASSERT_GE(fd_, 0) << "bpf_map_create: " << errno;
    // 10,000 entries: more than two batches of 4,096.
    for (uint32_t i = 0; i < 10000; ++i) {
      Key k{i / 7, i, static_cast<int32_t>(i % 13) - 6, -static_cast<int32_t>(i)};
      uint64_t v = uint64_t{i} * 1000003u;
      ASSERT_EQ(bpf_map_update_elem(fd_, &k, &v, BPF_NOEXIST), 0);
      truth_[k] = v;
    }
  }
  void TearDown() override {
    if (fd_ >= 0) close(fd_);
  }
  std::map<Key, uint64_t> read(bool batch) {
    bpf::MapBatchSupport support;
    support.lookup = batch;
    auto entries = bpf::read_map<Key, uint64_t>(fd_, support);
    EXPECT_TRUE(entries.ok()) << entries.error().describe();
    std::map<Key, uint64_t> out;
    if (!entries) return out;
    for (const auto& [k, v] : *entries) EXPECT_TRUE(out.emplace(k, v).second) << "key read twice";
    EXPECT_EQ(support.lookup, batch) << "this kernel has batch lookups for hash maps";
    return out;
  }
  int fd_ = -1;
  std::map<Key, uint64_t> truth_;
};

TEST_F(MapBatch, BatchAndPerKeyReadsReturnExactlyTheMap) {
  EXPECT_EQ(read(true), truth_);
  EXPECT_EQ(read(false), truth_);
}

TEST_F(MapBatch, DeleteRemovesExactlyTheKeysAskedForSkippingMissingOnes) {
  for (bool batch : {true, false}) {
    SCOPED_TRACE(batch ? "batch" : "per key");
    std::vector<Key> doomed;
    size_t present = 0;
    for (auto it = truth_.begin(); it != truth_.end();) {
      if (it->first.tid % 3 == (batch ? 0u : 1u)) {
        doomed.push_back(it->first);
        it = truth_.erase(it);
        ++present;
      } else {
        ++it;
      }
      // Every 50th key asked for is not in the map: skipped, the rest still deleted.
      if (doomed.size() % 50 == 49) doomed.push_back(Key{999999, 999999, 0, 0});
    }
    bpf::MapBatchSupport support;
    support.del = batch;
    auto deleted = bpf::delete_keys(fd_, doomed, support);
    ASSERT_TRUE(deleted.ok()) << deleted.error().describe();
    EXPECT_EQ(*deleted, present);
    EXPECT_EQ(read(true), truth_);
  }
}

}  // namespace
}  // namespace kscope::testing
