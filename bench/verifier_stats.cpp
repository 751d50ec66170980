// What the kernel's verifier spends on each program of a BPF object (docs/PERFORMANCE.md, the
// native unwinder's loading): loads the object as it is (default settings, nothing attached)
// with BPF_LOG_STATS and prints, per program, the instructions the verifier processed and its
// verification time, from the kernel's own log. Root only.
//
//   verifier_stats OBJECT.bpf.o...
#include <bpf/libbpf.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

// The log line "processed N insns (limit ...) ..." and "verification time N usec".
std::string stats_of(const char* log) {
  std::string out;
  for (const char* key : {"processed ", "verification time "}) {
    const char* at = std::strstr(log, key);
    if (!at) continue;
    const char* end = std::strchr(at, '\n');
    if (!out.empty()) out += "; ";
    out.append(at, end ? static_cast<size_t>(end - at) : std::strlen(at));
  }
  return out.empty() ? "(no statistics in the log)" : out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: verifier_stats OBJECT.bpf.o...\n");
    return 2;
  }
  libbpf_set_print([](enum libbpf_print_level level, const char* fmt, va_list ap) {
    return level == LIBBPF_WARN ? std::vfprintf(stderr, fmt, ap) : 0;
  });
  int status = 0;
  for (int i = 1; i < argc; ++i) {
    bpf_object* obj = bpf_object__open_file(argv[i], nullptr);
    if (!obj) {
      std::fprintf(stderr, "verifier_stats: cannot open %s\n", argv[i]);
      status = 1;
      continue;
    }
    std::vector<std::vector<char>> logs;
    bpf_program* prog;
    bpf_object__for_each_program(prog, obj) {
      logs.emplace_back(1 << 20, '\0');
      bpf_program__set_log_level(prog, 4);  // BPF_LOG_STATS
      bpf_program__set_log_buf(prog, logs.back().data(), logs.back().size());
    }
    int err = bpf_object__load(obj);
    size_t n = 0;
    bpf_object__for_each_program(prog, obj) {
      const char* log = logs[n++].data();
      std::printf("%s %s: %s\n", argv[i], bpf_program__name(prog),
                  bpf_program__autoload(prog) ? stats_of(log).c_str() : "(not loaded)");
    }
    if (err) {
      std::fprintf(stderr, "verifier_stats: loading %s failed: %s\n", argv[i], std::strerror(-err));
      status = 1;
    }
    bpf_object__close(obj);
  }
  return status;
}
