// kscope monitor: sample minor/major faults, CPU time and RSS of registered processes every
// period; register/unregister/status talk to a running monitor; read follows its shm ring.
#include "monitor/monitor.h"

#include <poll.h>
#include <signal.h>
#include <time.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "monitor/ring.h"
#include "trace/proc.h"

namespace kscope::cli {

namespace {

using namespace kscope::monitor;

struct MonitorCliOptions {
  std::vector<std::string> pids;
  std::string period_ms = "50";
  std::string output;
  std::string shm;
  bool no_shm = false;
  std::string socket;
  std::string listen;
  double duration_s = 0;
  uint32_t ring_slots = 65536;
  size_t max_procs = 1024;
  bool quiet = false;
  bool exact_rss = false;
  bool no_realtime = false;
  std::vector<std::string> command;
};

std::string default_shm_name() { return fmt::format("kscope-monitor-{}", Owner::current().uid); }

// The period as typed: a decimal number of milliseconds, 1 ms .. 60 s.
Result<uint64_t> parse_period_ms(const std::string& text) {
  double v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size() || !std::isfinite(v))
    return usage_error(
        fmt::format("invalid --period-ms '{}': expected a number of milliseconds", text));
  if (v < 1 || v > 60000)
    return usage_error(fmt::format("--period-ms {} is out of range: use 1 to 60000 ms", text));
  return static_cast<uint64_t>(v * 1e6 + 0.5);
}

Result<std::string> resolve_socket(const std::string& given, bool* is_default) {
  if (is_default) *is_default = given.empty() && !std::getenv("KSCOPE_MONITOR_SOCKET");
  if (!given.empty()) return given;
  return default_socket_path();
}

Result<int> run_monitor_main(const MonitorCliOptions& c) {
  MonitorOptions o;
  for (const auto& p : c.pids) {
    KSCOPE_ASSIGN_OR_RETURN(auto list, proc::parse_pid_list(p));
    o.pids.insert(o.pids.end(), list.begin(), list.end());
  }
  KSCOPE_ASSIGN_OR_RETURN(o.period_ns, parse_period_ms(c.period_ms));
  if (c.duration_s < 0) return usage_error("--duration must be positive");
  if (c.max_procs < 1 || c.max_procs > 65536) return usage_error("--max-procs must be 1..65536");
  o.duration_s = c.duration_s;
  o.max_processes = c.max_procs;
  o.csv_path = c.output;
  o.command = c.command;
  if (!c.command.empty() && c.output == "-")
    std::fprintf(stderr,
                 "kscope: -o - has stdout: %s's stdout goes to stderr (as with perf record -o -)\n",
                 c.command[0].c_str());
  o.quiet = c.quiet;
  o.exact_rss = c.exact_rss;
  o.realtime = !c.no_realtime;
  o.ring_slots = c.ring_slots;
  if (c.no_shm && !c.shm.empty()) return usage_error("--shm and --no-shm exclude each other");
  if (!c.no_shm) {
    o.shm_name = c.shm.empty() ? default_shm_name() : c.shm;
    KSCOPE_TRY(validate_shm_name(o.shm_name));
    if (o.ring_slots < 2 || (o.ring_slots & (o.ring_slots - 1)) || o.ring_slots > (1u << 24))
      return usage_error("--ring-slots must be a power of two between 2 and 16777216");
  }
  if (!c.listen.empty()) {
    KSCOPE_ASSIGN_OR_RETURN(auto addr, parse_listen_address(c.listen));
    o.listen = addr;
  }
  KSCOPE_ASSIGN_OR_RETURN(o.socket_path, resolve_socket(c.socket, &o.socket_default_dir));
  return run_monitor(o);
}

int run_client(const std::string& socket, const std::string& request) {
  auto path = resolve_socket(socket, nullptr);
  if (!path) return report_error(path.error());
  auto reply = call_monitor(*path, request);
  if (!reply) return report_error(reply.error());
  if (!reply->ok) {
    std::fprintf(stderr, "kscope: %s\n", reply->message.c_str());
    return static_cast<int>(ExitCode::kFailure);
  }
  if (request == "status") {
    std::fputs(reply->body.c_str(), stdout);
  } else {
    std::printf("%s\n", reply->message.c_str());
  }
  return 0;
}

volatile sig_atomic_t g_read_stop = 0;

bool writer_alive(uint32_t pid) {
  if (pid == 0) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}
void on_read_stop(int) { g_read_stop = 1; }

Result<int> run_read(const std::string& shm, bool follow) {
  std::string name = shm.empty() ? default_shm_name() : shm;
  KSCOPE_ASSIGN_OR_RETURN(auto mapping, open_shm_ring(name));
  RingReader reader(mapping.data(), 0);
  reader.start_at_oldest();
  struct sigaction sa = {};
  sa.sa_handler = on_read_stop;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // A consumer that closed its end (`read --follow | head`) ends this reader quietly, as it ends
  // `cat` (silently killed by SIGPIPE); with status 0 rather than 141, so a `set -o pipefail`
  // pipeline does not fail: the consumer got what it wanted. Other write errors are reported.
  auto write_failed = [](const char* what) -> Result<int> {
    if (errno == EPIPE) return 0;
    return errno_error(what);
  };
  if (std::printf("%s\n", kCsvHeader) < 0 || std::fflush(stdout) != 0)
    return write_failed("cannot write to stdout");
  uint64_t lost = 0, rows = 0;
  uint64_t poll_ns = reader.header().period_ns / 2;
  if (poll_ns < 1'000'000) poll_ns = 1'000'000;
  if (poll_ns > 200'000'000) poll_ns = 200'000'000;
  for (;;) {
    bool closed = reader.writer_closed();  // read before polling: rows before it are all there
    RingBatch batch = reader.poll();
    if (batch.lost) {
      lost += batch.lost;
      std::fprintf(stderr, "kscope: reader lapped by the monitor: %llu rows lost\n",
                   static_cast<unsigned long long>(batch.lost));
    }
    for (const auto& s : batch.rows) {
      SampleRow r;
      r.time_ns = s.time_ns;
      r.aggregate = s.kind == KSCOPE_RING_KIND_AGGREGATE;
      r.pid = s.pid;
      r.comm = s.comm;
      r.min_faults = s.min_faults;
      r.maj_faults = s.maj_faults;
      r.min_faults_total = s.min_faults_total;
      r.maj_faults_total = s.maj_faults_total;
      r.cpu_util = s.cpu_util_ppm / 1e6;
      r.rss_kb = s.rss_kb;
      std::string line = format_csv_row(r) + "\n";
      if (std::fwrite(line.data(), 1, line.size(), stdout) != line.size())
        return write_failed("cannot write to stdout");
      ++rows;
    }
    if (!batch.rows.empty() && std::fflush(stdout) != 0)
      return write_failed("cannot write to stdout");
    if (!follow || g_read_stop) break;
    if (batch.rows.empty() && closed) break;
    if (batch.rows.empty() && !writer_alive(reader.header().writer_pid)) {
      std::fprintf(stderr,
                   "kscope: the monitor (pid %u) is gone without closing the ring "
                   "(killed?); stopping\n",
                   reader.header().writer_pid);
      break;
    }
    if (batch.rows.empty()) {
      timespec ts{static_cast<time_t>(poll_ns / 1'000'000'000ull),
                  static_cast<long>(poll_ns % 1'000'000'000ull)};
      nanosleep(&ts, nullptr);
    }
  }
  if (std::fflush(stdout) != 0) return write_failed("cannot write to stdout");
  std::fprintf(stderr, "kscope: read %llu rows from /dev/shm/%s, %llu lost to lapping%s\n",
               static_cast<unsigned long long>(rows), name.c_str(),
               static_cast<unsigned long long>(lost),
               reader.writer_closed() ? "; the monitor has finished" : "");
  return 0;
}

}  // namespace

Subcommand setup_monitor(CLI::App& parent) {
  auto o = std::make_shared<MonitorCliOptions>();
  auto* app = parent.add_subcommand(
      "monitor",
      "Sample minor/major faults, CPU time and RSS of registered processes every period "
      "(default 50 ms); processes join and leave at run time through a Unix socket; samples go "
      "to CSV, a shared-memory ring and optionally Prometheus.\n"
      "  kscope monitor [-p PID...] [--period-ms 50] [-o samples.csv] [--shm NAME] "
      "[--listen ADDR:PORT] [-- COMMAND [ARGS...]]\n"
      "  kscope monitor register PID | unregister PID | status | read [--follow]");
  app->add_option("-p,--pid", o->pids, "Register these processes at start (PID or PID,PID...)");
  app->add_option("--period-ms", o->period_ms, "Sampling period in ms, 1..60000 (default 50)");
  app->add_option("-o,--output", o->output,
                  "Write the samples as CSV to FILE ('-' = stdout), flushed every period");
  app->add_option("--shm", o->shm,
                  "Name of the shared-memory ring /dev/shm/NAME (default kscope-monitor-UID)");
  app->add_flag("--no-shm", o->no_shm, "Do not write a shared-memory ring");
  app->add_option("--ring-slots", o->ring_slots,
                  "Rows the ring holds, a power of two (default 65536 = 8 MiB)");
  app->add_option("--socket", o->socket,
                  "Control socket path (default $XDG_RUNTIME_DIR/kscope/monitor.sock, as root "
                  "/run/kscope/UID/monitor.sock; env KSCOPE_MONITOR_SOCKET)");
  app->add_option("--listen", o->listen,
                  "Serve Prometheus metrics on http://ADDR:PORT/metrics (PORT alone = "
                  "127.0.0.1; wildcard addresses are refused)");
  add_duration_option(app, o->duration_s, "Stop after SECONDS (default: until Ctrl-C)");
  app->add_option("--max-procs", o->max_procs, "At most this many registered processes (1024)");
  app->add_flag("-q,--quiet", o->quiet, "No message per registration/exit on stderr");
  app->add_flag("--exact-rss", o->exact_rss,
                "RSS from VmRSS of /proc/PID/status (exact) instead of the rss field of "
                "/proc/PID/stat (the kernel's per-CPU counter read without summing: off by at "
                "most 32 pages per CPU); doubles the sampling cost");
  app->add_flag("--no-realtime", o->no_realtime,
                "As root, do not run the sampling loop SCHED_FIFO (default: it does, so the "
                "period holds on a saturated machine)");
  app->add_option("command", o->command,
                  "COMMAND [ARGS...] to start (as the invoking user) and monitor; the monitor "
                  "ends when it exits");
  app->footer(
      "CSV columns: time_ms,pid,comm,min_faults,maj_faults,min_faults_total,maj_faults_total,"
      "cpu_util,rss_kb (aggregate rows: pid 'all', comm '*'; their totals are sums since the "
      "monitor started). CPU time is the process CPU clock (ns, all threads); the final row of "
      "a process that exited repeats its last live RSS.\nThe ring file is kept after exit for "
      "readers and replaced at the next start. See docs/monitor.md.");

  auto socket_opt = std::make_shared<std::string>();
  auto reg_pid = std::make_shared<std::string>();
  auto* reg = app->add_subcommand("register", "Register PID with the running monitor");
  reg->add_option("pid", *reg_pid, "Process id")->required();
  reg->add_option("--socket", *socket_opt, "Control socket of the monitor");
  auto unreg_pid = std::make_shared<std::string>();
  auto* unreg = app->add_subcommand("unregister", "Unregister PID from the running monitor");
  unreg->add_option("pid", *unreg_pid, "Process id")->required();
  unreg->add_option("--socket", *socket_opt, "Control socket of the monitor");
  auto* status =
      app->add_subcommand("status", "List registered processes with their latest counters");
  status->add_option("--socket", *socket_opt, "Control socket of the monitor");
  auto read_shm = std::make_shared<std::string>();
  auto follow = std::make_shared<bool>(false);
  auto* read = app->add_subcommand("read", "Print the monitor's shared-memory ring as CSV");
  read->add_option("--shm", *read_shm, "Ring name (default kscope-monitor-UID)");
  read->add_flag("-f,--follow", *follow, "Keep reading live until the monitor exits or Ctrl-C");

  return {app, [=]() -> int {
            if (reg->parsed() || unreg->parsed()) {
              const std::string& text = reg->parsed() ? *reg_pid : *unreg_pid;
              auto pid = parse_pid(text);
              if (!pid) return report_error(pid.error());
              return run_client(
                  *socket_opt,
                  fmt::format("{} {}", reg->parsed() ? "register" : "unregister", *pid));
            }
            if (status->parsed()) return run_client(*socket_opt, "status");
            if (read->parsed()) {
              auto r = run_read(*read_shm, *follow);
              if (!r) return report_error(r.error());
              return *r;
            }
            auto r = run_monitor_main(*o);
            if (!r) return report_error(r.error());
            return *r;
          }};
}

}  // namespace kscope::cli
