#include "bpf/map_batch.h"

#include <bpf/bpf.h>

#include <algorithm>
#include <cerrno>

namespace kscope::bpf {

namespace {

// The kernel has no batch command for this map (or none at all): not an error, a fallback.
bool batch_refused(int err) { return err == EINVAL || err == ENOTSUP || err == EOPNOTSUPP; }

// Entries per batch: up to 4,096, at most ~1 MiB of values per call.
size_t batch_entries(size_t value_size) {
  return std::clamp<size_t>((1u << 20) / std::max<size_t>(value_size, 1), 64, 4096);
}

Result<RawMapEntries> read_per_key(int fd, size_t key_size, size_t value_size) {
  RawMapEntries out;
  std::vector<uint8_t> key(key_size), next(key_size), value(value_size);
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, next.data()) == 0) {
    if (bpf_map_lookup_elem(fd, next.data(), value.data()) == 0) {
      out.keys.insert(out.keys.end(), next.begin(), next.end());
      out.values.insert(out.values.end(), value.begin(), value.end());
      ++out.count;
    }
    key.swap(next);
    prev = key.data();
  }
  if (errno != ENOENT) return make_error("reading a BPF map failed", errno);
  return out;
}

}  // namespace

Result<RawMapEntries> read_map_entries(int fd, size_t key_size, size_t value_size,
                                       MapBatchSupport& support) {
  if (!support.lookup) return read_per_key(fd, key_size, value_size);
  const size_t batch = batch_entries(value_size);
  RawMapEntries out;
  // The batch position is opaque (a bucket index for hash maps); a key-sized buffer, at least 8
  // bytes, holds it.
  std::vector<uint8_t> position(std::max<size_t>(key_size, 8));
  bool first = true;
  while (true) {
    out.keys.resize((out.count + batch) * key_size);
    out.values.resize((out.count + batch) * value_size);
    auto n = static_cast<uint32_t>(batch);
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    int err = bpf_map_lookup_batch(fd, first ? nullptr : position.data(), position.data(),
                                   out.keys.data() + out.count * key_size,
                                   out.values.data() + out.count * value_size, &n, &opts);
    int saved = errno;
    first = false;
    if (err != 0 && batch_refused(saved)) {
      // No batch lookup for this map on this kernel: per key from now on, from the start.
      support.lookup = false;
      return read_per_key(fd, key_size, value_size);
    }
    // ENOSPC: one hash bucket holds more entries than a batch (never seen with 4,096): per key.
    if (err != 0 && saved == ENOSPC) return read_per_key(fd, key_size, value_size);
    if (err != 0 && saved != ENOENT)
      return make_error("reading a BPF map in batches failed", saved);
    out.count += std::min<size_t>(n, batch);
    if (err != 0) break;  // ENOENT: the last batch
  }
  out.keys.resize(out.count * key_size);
  out.values.resize(out.count * value_size);
  return out;
}

Result<size_t> delete_map_keys(int fd, const void* keys, size_t key_size, size_t count,
                               MapBatchSupport& support) {
  const auto* bytes = static_cast<const uint8_t*>(keys);
  size_t deleted = 0;
  size_t at = 0;
  while (support.del && at < count) {
    auto n = static_cast<uint32_t>(std::min<size_t>(count - at, 1u << 16));
    const uint32_t asked = n;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    int err = bpf_map_delete_batch(fd, bytes + at * key_size, &n, &opts);
    int saved = errno;
    if (err == 0) {
      deleted += asked;
      at += asked;
      continue;
    }
    if (batch_refused(saved) && n == 0) {
      support.del = false;  // per key below, from `at`
      break;
    }
    // The kernel stops at the first key it could not delete (n keys before it were): a key
    // that is gone already is skipped.
    if (saved != ENOENT) return make_error("deleting BPF map entries in batches failed", saved);
    deleted += n;
    at += n + 1;
  }
  for (; at < count; ++at) {
    if (bpf_map_delete_elem(fd, bytes + at * key_size) == 0)
      ++deleted;
    else if (errno != ENOENT)
      return make_error("deleting a BPF map entry failed", errno);
  }
  return deleted;
}

}  // namespace kscope::bpf
