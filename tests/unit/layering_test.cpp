// The layers of src/ (README "Source map") as the build enforces them, checked on the sources:
// each folder includes only itself and the layers below it, libbpf and the BPF skeletons are
// used only in src/bpf and src/trace, and no src/cli/ file grows past about 400 lines. The CMake
// include roots catch a wrong-way "layer/header.h" at compile time; system headers (libbpf,
// ncurses, sqlite, CLI11) are on every include path, so only this test can catch those.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

// Each layer and the layers it may use directly (CMakeLists.txt kscope_layer DEPS). Includes
// may go to these and, transitively, to what they may use.
const std::map<std::string, std::vector<std::string>>& layer_deps() {
  static const std::map<std::string, std::vector<std::string>> deps = {
      {"util", {}},
      {"model", {"util"}},
      {"symbols", {"model"}},
      {"bpf", {"util"}},
      {"unwind", {"symbols"}},  // the native unwinder's tables
      {"trace", {"bpf", "unwind", "symbols", "model"}},
      {"render", {"symbols", "model"}},
      {"export", {"model"}},
      {"monitor", {"trace"}},
      {"study", {"monitor", "render"}},
      {"cli", {"study", "monitor", "export", "render", "trace"}},
      {"work", {"monitor"}},  // the kscope-work binary
  };
  return deps;
}

std::set<std::string> allowed(const std::string& layer) {
  std::set<std::string> out{layer};
  std::vector<std::string> todo{layer};
  while (!todo.empty()) {
    std::string l = todo.back();
    todo.pop_back();
    for (const auto& d : layer_deps().at(l))
      if (out.insert(d).second) todo.push_back(d);
  }
  return out;
}

struct Include {
  std::string file;
  int line;
  std::string target;
  bool system;
};

std::vector<Include> includes_of(const fs::path& file) {
  static const std::regex re(R"(^\s*#\s*include\s*([<"])([^>"]+)[>"])");
  std::vector<Include> out;
  std::ifstream in(file);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    std::smatch m;
    if (std::regex_search(line, m, re)) out.push_back({file.string(), n, m[2], m[1] == "<"});
  }
  return out;
}

std::vector<fs::path> sources_of(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    auto ext = e.path().extension();
    if (e.is_regular_file() && (ext == ".cpp" || ext == ".h")) out.push_back(e.path());
  }
  return out;
}

const fs::path kSrc = fs::path(KSCOPE_SOURCE_DIR) / "src";

TEST(Layering, EveryFolderOfSrcIsAKnownLayer) {
  for (const auto& e : fs::directory_iterator(kSrc)) {
    if (!e.is_directory()) continue;
    EXPECT_TRUE(layer_deps().count(e.path().filename().string()))
        << e.path() << " is not a layer: add it to CMakeLists.txt (kscope_layer), README's source "
        << "map and this test's table";
  }
}

TEST(Layering, IncludesGoOnlyDownTheFlow) {
  for (const auto& [layer, deps] : layer_deps()) {
    if (!fs::exists(kSrc / layer)) continue;
    const auto ok = allowed(layer);
    for (const auto& file : sources_of(kSrc / layer)) {
      for (const auto& inc : includes_of(file)) {
        if (inc.system) continue;
        auto slash = inc.target.find('/');
        if (slash == std::string::npos) continue;  // generated headers (skeletons)
        std::string target_layer = inc.target.substr(0, slash);
        if (target_layer == "kscope") continue;  // include/kscope: the public headers
        if (!layer_deps().count(target_layer)) continue;
        EXPECT_TRUE(ok.count(target_layer))
            << inc.file << ":" << inc.line << ": the " << layer << " layer includes " << inc.target
            << " from the " << target_layer << " layer above it";
      }
    }
  }
}

TEST(Layering, LibbpfAndSkeletonsOnlyInBpfAndTrace) {
  for (const auto& file : sources_of(kSrc)) {
    std::string layer = fs::relative(file, kSrc).begin()->string();
    if (layer == "bpf" || layer == "trace") continue;
    for (const auto& inc : includes_of(file)) {
      bool libbpf = inc.system && inc.target.rfind("bpf/", 0) == 0;
      bool skeleton = inc.target.ends_with(".skel.h");
      EXPECT_FALSE(libbpf || skeleton)
          << inc.file << ":" << inc.line << ": " << inc.target
          << " (libbpf and the BPF skeletons belong to src/bpf and src/trace)";
      // Plain layer headers that wrap libbpf count too.
      EXPECT_NE(inc.target, "bpf/libbpf_util.h") << inc.file << ":" << inc.line;
    }
  }
}

TEST(Layering, LibrariesStayInTheirLayer) {
  // header prefix -> the layers that may include it
  const std::vector<std::pair<std::string, std::set<std::string>>> rules = {
      {"curses.h", {"render"}},          {"ncurses", {"render"}},
      {"sqlite3.h", {"export"}},         {"CLI/", {"cli", "work"}},
      {"gelf.h", {"symbols", "unwind"}}, {"libelf.h", {"symbols", "unwind"}},
      {"elfutils/", {"symbols"}}};
  for (const auto& file : sources_of(kSrc)) {
    std::string layer = fs::relative(file, kSrc).begin()->string();
    for (const auto& inc : includes_of(file)) {
      if (!inc.system) continue;
      for (const auto& [prefix, layers] : rules)
        if (inc.target.rfind(prefix, 0) == 0) {
          EXPECT_TRUE(layers.count(layer))
              << inc.file << ":" << inc.line << ": " << inc.target << " outside its layer";
        }
    }
  }
}

TEST(Layering, CliFilesStayShort) {
  for (const auto& file : sources_of(kSrc / "cli")) {
    std::ifstream in(file);
    size_t lines = 0;
    std::string line;
    while (std::getline(in, line)) ++lines;
    EXPECT_LE(lines, 420u) << file << ": the cli layer parses options and dispatches; move the "
                           << "work into the layer it belongs to";
  }
}

}  // namespace
