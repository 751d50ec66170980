// Whole-map reads and deletes of BPF hash maps in batches (BPF_MAP_LOOKUP_BATCH /
// BPF_MAP_DELETE_BATCH: one syscall per batch of entries), with the per-key fallback
// (BPF_MAP_GET_NEXT_KEY + BPF_MAP_LOOKUP_ELEM: two syscalls per entry) for kernels or maps
// without batch operations. kscope top reads maps of up to millions of entries at every refresh:
// per key, 17,582 sample counts took seconds and made up 29% of its CPU (docs/PERFORMANCE.md).
#pragma once

#include <bpf/bpf.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "util/result.h"

namespace kscope::bpf {

// Whether the kernel took the batch commands for a map: the first refusal (EINVAL, ENOTSUP)
// switches that map to the per-key fallback for the rest of the run.
struct MapBatchSupport {
  bool lookup = true;
  bool del = true;
};

// Every entry of the map as raw bytes: keys (key_size each) and values (value_size each), `count`
// entries. Entries added or deleted while it runs may or may not be seen (never twice in batch
// mode; the per-key walk restarts from the first key when the key it stood on was deleted, so a
// key can then be seen twice: the caller decides).
struct RawMapEntries {
  std::vector<uint8_t> keys;
  std::vector<uint8_t> values;
  size_t count = 0;
};
Result<RawMapEntries> read_map_entries(int fd, size_t key_size, size_t value_size,
                                       MapBatchSupport& support);

// Deletes `count` keys (key_size bytes each, contiguous) from the map; keys that are not there
// are skipped. Returns how many were deleted.
Result<size_t> delete_map_keys(int fd, const void* keys, size_t key_size, size_t count,
                               MapBatchSupport& support);

// Typed forms. K and V must be trivially copyable and match the map's key and value sizes.
template <typename K, typename V>
Result<std::vector<std::pair<K, V>>> read_map(int fd, MapBatchSupport& support) {
  KSCOPE_ASSIGN_OR_RETURN(RawMapEntries raw, read_map_entries(fd, sizeof(K), sizeof(V), support));
  std::vector<std::pair<K, V>> out(raw.count);
  for (size_t i = 0; i < raw.count; ++i) {
    std::memcpy(&out[i].first, raw.keys.data() + i * sizeof(K), sizeof(K));
    std::memcpy(&out[i].second, raw.values.data() + i * sizeof(V), sizeof(V));
  }
  return out;
}
// Every key of the map, walked with BPF_MAP_GET_NEXT_KEY: for maps without batch lookups (stack
// traces) and for callers that need only the keys or their number.
template <typename K>
std::vector<K> map_keys(int fd) {
  std::vector<K> keys;
  K key{}, next{};
  K* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    keys.push_back(next);
    key = next;
    prev = &key;
  }
  return keys;
}

template <typename K>
Result<size_t> delete_keys(int fd, const std::vector<K>& keys, MapBatchSupport& support) {
  return delete_map_keys(fd, keys.data(), sizeof(K), keys.size(), support);
}

}  // namespace kscope::bpf
