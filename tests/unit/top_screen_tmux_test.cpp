// The interactive top screen as a person sees it: build/top_screen_demo (synthetic tables, see
// tests/tools/top_screen_demo.cpp) runs in a detached tmux session; keys go in with
// `tmux send-keys`, and `tmux capture-pane -p` gives the characters on the screen. No root, no
// BPF; only tmux (scripts/deps.sh installs it in the check profile).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "subprocess.h"

namespace kscope {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> w;
  for (std::string s; in >> s;) w.push_back(s);
  return w;
}

int line_with(const std::vector<std::string>& lines, const std::string& needle) {
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find(needle) != std::string::npos) return static_cast<int>(i);
  }
  return -1;
}

int selected_line(const std::vector<std::string>& lines) {
  for (size_t i = 0; i < lines.size(); ++i) {
    if (!lines[i].empty() && lines[i][0] == '>') return static_cast<int>(i);
  }
  return -1;
}

// A tmux server of our own (its own socket, no user config), killed at the end.
class Tmux {
 public:
  explicit Tmux(std::string name) : socket_(name + "-" + std::to_string(getpid())) {}
  ~Tmux() {
    run({"kill-server"});
    // The server leaves its socket file behind; -L puts it in $TMUX_TMPDIR/tmux-UID (tmux(1)).
    const char* tmpdir = std::getenv("TMUX_TMPDIR");
    std::filesystem::path dir = tmpdir != nullptr && *tmpdir ? tmpdir : "/tmp";
    std::error_code ignored;
    std::filesystem::remove(dir / ("tmux-" + std::to_string(getuid())) / socket_, ignored);
  }

  testing::RunResult run(std::vector<std::string> args) {
    std::vector<std::string> argv = {"tmux", "-L", socket_, "-f", "/dev/null"};
    argv.insert(argv.end(), args.begin(), args.end());
    return testing::run(argv, 10);
  }
  std::vector<std::string> screen() {
    return split_lines(run({"capture-pane", "-p", "-t", "demo"}).out);
  }
  void keys(std::vector<std::string> keys) {
    std::vector<std::string> args = {"send-keys", "-t", "demo"};
    args.insert(args.end(), keys.begin(), keys.end());
    ASSERT_EQ(run(args).exit_code, 0);
  }
  // Polls the screen until `ok` holds; returns the last screen seen.
  std::vector<std::string> wait_for(const std::function<bool(const std::vector<std::string>&)>& ok,
                                    const std::string& what) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    std::vector<std::string> s;
    while (std::chrono::steady_clock::now() < deadline) {
      s = screen();
      if (ok(s)) return s;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::string dump;
    for (const auto& l : s) dump += l + "\n";
    ADD_FAILURE() << "timed out waiting for " << what << "; the screen:\n" << dump;
    return s;
  }

 private:
  std::string socket_;
};

#define KSCOPE_REQUIRE_TMUX()                                                                    \
  do {                                                                                           \
    if (testing::run({"tmux", "-V"}, 10).exit_code != 0) {                                       \
      const char* require = std::getenv("KSCOPE_REQUIRE_BPF");                                   \
      if (require != nullptr && std::string(require) == "1") {                                   \
        FAIL() << "tmux is not installed (KSCOPE_REQUIRE_BPF=1 requires this test to run)";      \
      }                                                                                          \
      GTEST_SKIP() << "tmux is not installed; scripts/deps.sh installs it in the check profile"; \
    }                                                                                            \
  } while (0)

// Without a terminal the screen is refused with a message, and nothing is written to stdout.
TEST(TopScreenTmux, RefusedWithoutATerminal) {
  auto r = testing::run({KSCOPE_TOP_SCREEN_DEMO}, 10);  // stdin /dev/null, stdout a pipe
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("needs a terminal on stdin and stdout"));
}

// A terminal whose type terminfo does not know: an error and exit 1, not ncurses' own exit.
TEST(TopScreenTmux, RefusedWithAnUnknownTerm) {
  KSCOPE_REQUIRE_TMUX();
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("kscope-topui-term-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const fs::path status_file = dir / "status";
  const fs::path err_file = dir / "stderr";
  Tmux tmux("kscope-topui-term");
  const std::string command = "TERM=kscope-no-such-terminal '" KSCOPE_TOP_SCREEN_DEMO "' 2>'" +
                              err_file.string() + "'; echo $? > '" + status_file.string() + "'";
  ASSERT_EQ(
      tmux.run({"new-session", "-d", "-s", "demo", "-x", "80", "-y", "24", command}).exit_code, 0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!fs::exists(status_file) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(fs::exists(status_file));
  EXPECT_EQ(testing::read_file(status_file.string()), "1\n");
  EXPECT_THAT(testing::read_file(err_file.string()),
              HasSubstr("terminal type 'kscope-no-such-terminal' is not in the terminfo database"));
  fs::remove_all(dir);
}

TEST(TopScreenTmux, WhatAPersonSees) {
  KSCOPE_REQUIRE_TMUX();
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("kscope-topui-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const fs::path status_file = dir / "status";
  const fs::path err_file = dir / "stderr";
  fs::remove(status_file);

  Tmux tmux("kscope-topui");
  const std::string command = "'" KSCOPE_TOP_SCREEN_DEMO "' 2>'" + err_file.string() +
                              "'; echo $? > '" + status_file.string() + "'";
  ASSERT_EQ(
      tmux.run({"new-session", "-d", "-s", "demo", "-x", "120", "-y", "40", command}).exit_code, 0);

  // First screen: header, drop counters, column titles, the ranking, the selection on row 1.
  // (Waits for the footer too: a capture can land while curses is still drawing.)
  auto s = tmux.wait_for(
      [](const auto& s) {
        return line_with(s, "RANK") >= 0 && selected_line(s) >= 0 && !s.empty() &&
               s.back().rfind("by stack", 0) == 0;
      },
      "the first table");
  ASSERT_FALSE(s.empty());
  EXPECT_THAT(s[0], StartsWith("LOST 3  kscope top  interval 200.0ms  switches "));
  EXPECT_THAT(s[0], HasSubstr("CPU busy "));
  EXPECT_THAT(s[1], StartsWith("LOST 3: kernel stack collisions 2, accounts map full 1"));
  int titles = line_with(s, "RANK");
  ASSERT_GE(titles, 0);
  EXPECT_EQ(words(s[titles]), (std::vector<std::string>{"RANK", "PID", "TID", "COMM", "SWITCHES",
                                                        "VOL", "INVOL", "ON-CPU*", "%CPU", "AVG",
                                                        "SLICE", "RUNQ", "WAIT", "OFF-CPU"}));
  {
    auto first = words(s[titles + 1]);
    ASSERT_GE(first.size(), 5u);
    EXPECT_EQ(std::vector<std::string>(first.begin(), first.begin() + 5),
              (std::vector<std::string>{">", "1", "2001", "2001", "postgres"}));
  }
  EXPECT_THAT(s.back(), StartsWith("by stack  sort ON-CPU"));
  // The bottom pane shows the selected row's stack.
  EXPECT_GE(line_with(s, "-- stack of #1 postgres pid 2001 tid 2001"), 0);

  // Down selects rank 2; Enter expands its stack right below it, kernel frames then user.
  tmux.keys({"Down"});
  s = tmux.wait_for(
      [](const auto& s) {
        int sel = selected_line(s);
        return sel >= 0 && words(s[sel]).size() > 4 && words(s[sel])[1] == "2";
      },
      "rank 2 selected");
  tmux.keys({"Enter"});
  s = tmux.wait_for(
      [](const auto& s) {
        int sel = selected_line(s);
        return sel >= 0 && sel + 1 < static_cast<int>(s.size()) &&
               s[sel + 1].find("k __schedule") != std::string::npos;
      },
      "the selected row's stack below it");
  {
    int sel = selected_line(s);
    ASSERT_GE(sel, 0);
    EXPECT_THAT(s[sel], HasSubstr("nginx"));
    std::vector<std::string> stack;
    for (int i = sel + 1; i < static_cast<int>(s.size()) && s[i].rfind("      ", 0) == 0; ++i) {
      stack.push_back(s[i].substr(6));
    }
    EXPECT_EQ(stack,
              (std::vector<std::string>{
                  "k __schedule+0x2c4 [kernel]", "k schedule+0x5e [kernel]",
                  "k schedule_hrtimeout_range+0xb1 [kernel]", "k do_epoll_wait+0x4b6 [kernel]",
                  "k do_syscall_64+0x5c [kernel]", "u epoll_wait+0x5e [libc.so.6]",
                  "u ngx_process_events+0x1b2 [/usr/sbin/nginx]"}));
    EXPECT_EQ(words(s[sel + 1 + static_cast<int>(stack.size())]).at(0), "3");  // next row
  }

  // s: the sort mark moves to SWITCHES.
  tmux.keys({"s"});
  s = tmux.wait_for([](const auto& s) { return line_with(s, "SWITCHES*") >= 0; },
                    "the sort mark on SWITCHES");
  EXPECT_EQ(line_with(s, "ON-CPU*"), -1);
  EXPECT_THAT(s.back(), HasSubstr("sort SWITCHES"));

  // g twice: stack -> tid -> pid; with pid grouping TID is '-'.
  tmux.keys({"g"});
  s = tmux.wait_for([](const auto& s) { return !s.empty() && s.back().find("by tid") == 0; },
                    "grouping by tid");
  tmux.keys({"g"});
  s = tmux.wait_for([](const auto& s) { return !s.empty() && s.back().find("by pid") == 0; },
                    "grouping by pid");
  titles = line_with(s, "RANK");
  ASSERT_GE(titles, 0);
  {
    auto w = words(s[titles + 1]);
    if (!w.empty() && w[0] == ">") w.erase(w.begin());
    ASSERT_GE(w.size(), 4u);
    EXPECT_EQ(w[2], "-") << s[titles + 1];
  }

  // '/' filter: only postgres rows remain, and the status line says so.
  tmux.keys({"/"});
  tmux.wait_for([](const auto& s) { return !s.empty() && s.back().find("Filter comm") == 0; },
                "the filter input line");
  tmux.keys({"-l", "postgres"});
  tmux.keys({"Enter"});
  s = tmux.wait_for(
      [](const auto& s) { return !s.empty() && s.back().find("filter \"postgres\"") == 0; },
      "the filter applied");
  {
    int rows = 0;
    titles = line_with(s, "RANK");
    for (int i = titles + 1; i < static_cast<int>(s.size()) && !words(s[i]).empty(); ++i) {
      if (s[i].rfind("      ", 0) == 0) continue;  // a stack frame
      ++rows;
      EXPECT_THAT(s[i], HasSubstr("postgres"));
    }
    EXPECT_EQ(rows, 1);  // one postgres process
  }

  // Resize to 30x8: degraded, not crashed; below the minimum: "terminal too small".
  ASSERT_EQ(tmux.run({"resize-window", "-t", "demo", "-x", "30", "-y", "8"}).exit_code, 0);
  s = tmux.wait_for(
      [](const auto& s) {
        return s.size() == 8 && line_with(s, "COMM") >= 0 && line_with(s, "postgres") >= 0;
      },
      "the 30x8 screen");
  for (const auto& l : s) EXPECT_LE(l.size(), 30u) << l;
  EXPECT_THAT(s[0], StartsWith("LOST 3 interval 200.0ms"));
  EXPECT_THAT(s[line_with(s, "COMM")], HasSubstr("SWITCHES*"));
  EXPECT_THAT(s.back(), StartsWith("filter \"postgres\""));
  ASSERT_EQ(tmux.run({"resize-window", "-t", "demo", "-x", "12", "-y", "4"}).exit_code, 0);
  tmux.wait_for([](const auto& s) { return !s.empty() && s[0] == "terminal too"; },
                "terminal too small");
  ASSERT_EQ(tmux.run({"resize-window", "-t", "demo", "-x", "120", "-y", "40"}).exit_code, 0);
  tmux.wait_for([](const auto& s) { return line_with(s, "RANK") >= 0; }, "the full screen again");
  EXPECT_FALSE(fs::exists(status_file)) << "the demo exited during the test";

  // q quits with status 0.
  tmux.keys({"q"});
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!fs::exists(status_file) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let echo finish writing
  ASSERT_TRUE(fs::exists(status_file)) << "q did not end the demo";
  EXPECT_EQ(testing::read_file(status_file.string()), "0\n")
      << "stderr: " << testing::read_file(err_file.string());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kscope
