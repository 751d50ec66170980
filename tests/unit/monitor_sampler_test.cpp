// The monitor's arithmetic and parsers, fed with fixtures: deltas, utilization, aggregate sums,
// jitter quantiles, the socket protocol, CSV rows, the Prometheus exposition, --listen.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <deque>
#include <map>
#include <sstream>

#include "monitor/jitter.h"
#include "monitor/monitor.h"
#include "monitor/prometheus.h"
#include "monitor/protocol.h"
#include "monitor/sampler.h"

namespace kscope::monitor {
namespace {

ClockUnits units100hz() {
  ClockUnits u;
  u.tick_ns = 10'000'000;
  u.page_kb = 4;
  return u;
}

TEST(MonitorSampler, DeltasTotalsAndUtilization) {
  ProcReading a{"w", 'R', 100, 3, 10, 1000, 0};
  ProcReading b{"w", 'R', 350, 5, 15, 1200, 0};
  SampleRow r = compute_row(a, b, 50'000'000, units100hz());
  EXPECT_EQ(r.min_faults, 250u);
  EXPECT_EQ(r.maj_faults, 2u);
  EXPECT_EQ(r.min_faults_total, 350u);
  EXPECT_EQ(r.maj_faults_total, 5u);
  EXPECT_EQ(r.cpu_time_ns, 50'000'000u);         // 5 ticks of 10 ms
  EXPECT_EQ(r.cpu_time_ns_total, 150'000'000u);  // 15 ticks
  EXPECT_DOUBLE_EQ(r.cpu_util, 1.0);             // 50 ms of CPU in 50 ms of wall time
  EXPECT_EQ(r.rss_kb, 4800u);
}

TEST(MonitorSampler, VmRssFromStatusIsPreferred) {
  EXPECT_EQ(parse_vm_rss_kb("Name:\tx\nVmRSS:\t   69108 kB\nRssAnon: 1 kB\n"), 69108u);
  EXPECT_FALSE(parse_vm_rss_kb("Name:\tx\nState:\tZ\n").has_value());
  EXPECT_FALSE(parse_vm_rss_kb("Name:\tx\nVmRSS:\t   12 MB\n").has_value());
  EXPECT_FALSE(parse_vm_rss_kb("Name:\tx\nVmRSS:\t   \n").has_value());
  ProcReading a{"w", 'R', 0, 0, 0, 1000, 0};
  ProcReading b = a;
  b.vm_rss_kb = 3996;
  EXPECT_EQ(compute_row(a, b, 1, units100hz()).rss_kb, 3996u);
}

TEST(MonitorSampler, CountersGoingBackwardsGiveZeroNotAWrap) {
  ProcReading a{"w", 'R', 500, 9, 20, 10, 0};
  ProcReading b{"w", 'R', 400, 2, 10, -1, 0};
  SampleRow r = compute_row(a, b, 50'000'000, units100hz());
  EXPECT_EQ(r.min_faults, 0u);
  EXPECT_EQ(r.maj_faults, 0u);
  EXPECT_EQ(r.cpu_util, 0.0);
  EXPECT_EQ(r.rss_kb, 0u);
}

TEST(MonitorSampler, ZeroWallTimeIsNotADivisionByZero) {
  ProcReading a{"w", 'R', 1, 0, 0, 1, 0};
  ProcReading b{"w", 'R', 2, 0, 3, 1, 0};
  EXPECT_EQ(compute_row(a, b, 0, units100hz()).cpu_util, 0.0);
}

TEST(MonitorSampler, AggregateSumsRows) {
  SampleRow agg;
  SampleRow x, y;
  x.min_faults = 10;
  x.maj_faults = 1;
  x.cpu_util = 0.75;
  x.rss_kb = 100;
  x.cpu_time_ns = 5;
  y.min_faults = 5;
  y.maj_faults = 2;
  y.cpu_util = 0.5;
  y.rss_kb = 50;
  y.cpu_time_ns = 7;
  accumulate(agg, x);
  accumulate(agg, y);
  EXPECT_EQ(agg.min_faults, 15u);
  EXPECT_EQ(agg.maj_faults, 3u);
  EXPECT_DOUBLE_EQ(agg.cpu_util, 1.25);
  EXPECT_EQ(agg.rss_kb, 150u);
  EXPECT_EQ(agg.cpu_time_ns, 12u);
}

TEST(MonitorSampler, ParsesStatWithHostileComm) {
  std::string stat =
      "4242 (a) b (c)) S 1 4242 4242 0 -1 4194304 777 0 12 0 30 20 0 0 20 0 1 0 5555 1000000 "
      "321 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";
  auto r = parse_reading(stat);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->comm, "a) b (c)");
  EXPECT_EQ(r->minflt, 777u);
  EXPECT_EQ(r->majflt, 12u);
  EXPECT_EQ(r->cpu_ticks, 50u);
  EXPECT_EQ(r->rss_pages, 321);
  EXPECT_EQ(r->state, 'S');
}

TEST(MonitorSampler, RejectsMalformedStat) {
  EXPECT_FALSE(parse_reading("").ok());
  EXPECT_FALSE(parse_reading("12 (x) S 1 2 3").ok());
  EXPECT_FALSE(
      parse_reading("12 x S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22").ok());
  EXPECT_FALSE(parse_reading("12 (x) S 1 1 1 0 -1 0 abc 0 0 0 0 0 0 0 20 0 1 0 1 1 1").ok());
}

TEST(MonitorSampler, RegistryRejectsBadAndDuplicatePids) {
  Registry reg(2);
  EXPECT_FALSE(reg.add(0, 0).ok());
  EXPECT_FALSE(reg.add(-5, 0).ok());
  auto self = reg.add(::getpid(), 0);
  ASSERT_TRUE(self.ok()) << self.error().describe();
  auto again = reg.add(::getpid(), 0);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().message.find("already registered"), std::string::npos);
  EXPECT_FALSE(reg.remove(4194304).ok());
  EXPECT_TRUE(reg.remove(::getpid()).ok());
  EXPECT_FALSE(reg.remove(::getpid()).ok());
}

TEST(MonitorSampler, RegistrySamplesItselfAgainstProc) {
  Registry reg(4);
  ASSERT_TRUE(reg.add(::getpid(), 0).ok());
  auto res = reg.sample_all(50'000'000, 1, ClockUnits::system());
  ASSERT_EQ(res.rows.size(), 2u);  // this process + the aggregate
  EXPECT_EQ(res.rows[0].pid, ::getpid());
  EXPECT_TRUE(res.rows[1].aggregate);
  EXPECT_EQ(res.rows[1].min_faults, res.rows[0].min_faults);
  EXPECT_GT(res.rows[0].min_faults_total, 0u);
}

TEST(MonitorSampler, CpuTimeInNanosecondsFromTheProcessClock) {
  ProcReading a{"w", 'R', 0, 0, 10, 1, 0};
  ProcReading b{"w", 'R', 0, 0, 11, 1, 0};
  a.cpu_ns = 1'000'000'123;
  b.cpu_ns = 1'010'234'567;
  SampleRow r = compute_row(a, b, 50'000'000, units100hz());
  EXPECT_EQ(r.cpu_time_ns, 10'234'444u);  // not the 10 ms of the one tick that elapsed
  EXPECT_EQ(r.cpu_time_ns_total, 1'010'234'567u);
  EXPECT_DOUBLE_EQ(r.cpu_util, 10'234'444 / 50e6);
  // A clock reading going backwards (it cannot) is 0, not a wrap.
  EXPECT_EQ(compute_row(b, a, 50'000'000, units100hz()).cpu_time_ns, 0u);
}

TEST(MonitorSampler, TicksOnlyWhenAReadingHasNoClock) {
  ProcReading a{"w", 'R', 0, 0, 10, 1, 0};
  ProcReading b{"w", 'R', 0, 0, 12, 1, 0};
  b.cpu_ns = 125'000'001;
  SampleRow r = compute_row(a, b, 50'000'000, units100hz());
  EXPECT_EQ(r.cpu_time_ns, 20'000'000u);  // the two ticks: no mixing of the two clocks
  EXPECT_EQ(r.cpu_time_ns_total, 125'000'001u);
}

TEST(MonitorSampler, ExitingAndZombieReadingsAreMarked) {
  auto stat = [](char state, unsigned flags, int rss) {
    return fmt::format("7 (x) {} 1 1 1 0 -1 {} 5 0 1 0 30 20 0 0 20 0 1 0 5555 1000000 {} 0 0 0\n",
                       state, flags, rss);
  };
  auto live = parse_reading(stat('S', 4194304, 321));
  ASSERT_TRUE(live.ok()) << live.error().message;
  EXPECT_FALSE(live->exiting);
  auto exiting = parse_reading(stat('R', 4194304 | 4, 0));  // PF_EXITING
  ASSERT_TRUE(exiting.ok());
  EXPECT_TRUE(exiting->exiting);
  auto zombie = parse_reading(stat('Z', 4194308, 0));
  ASSERT_TRUE(zombie.ok());
  EXPECT_TRUE(zombie->exiting);
}

// Readings from a script instead of /proc: what the registry does with each.
class ScriptedSource : public ProcessSource {
 public:
  struct Step {
    ReadOutcome outcome;
    ProcReading reading;
  };
  std::map<pid_t, std::deque<Step>> steps;

  Result<ReadOutcome> open(TrackedProcess& p, bool, ProcReading& first) override {
    return read(p, first);
  }
  Result<ReadOutcome> read(TrackedProcess& p, ProcReading& out) override {
    auto& q = steps[p.pid];
    if (q.empty()) return make_error("script exhausted");
    out = q.front().reading;
    ReadOutcome o = q.front().outcome;
    q.pop_front();
    return o;
  }
};

ProcReading reading(const char* comm, char state, uint64_t minflt, uint64_t cpu_ns,
                    int64_t rss_pages, bool exiting = false) {
  ProcReading r{comm, state, minflt, 0, cpu_ns / 10'000'000, rss_pages, 0};
  r.cpu_ns = cpu_ns;
  r.exiting = exiting;
  return r;
}

TEST(MonitorSampler, FinalRowOfAnExitedProcessKeepsItsLastLiveRss) {
  auto source = std::make_unique<ScriptedSource>();
  auto* script = source.get();
  script->steps[42] = {
      {ReadOutcome::kOk, reading("w", 'R', 10, 1'000'000, 100)},
      {ReadOutcome::kOk, reading("w", 'R', 20, 31'000'007, 250)},
      // do_exit() has dropped the mm: the process is still 'R', PF_EXITING, rss 0.
      {ReadOutcome::kOk, reading("w", 'R', 25, 40'000'000, 0, true)},
      // The zombie: final counters, no memory.
      {ReadOutcome::kExited, reading("w", 'Z', 26, 40'500'000, 0, true)},
  };
  Registry reg(4, false, std::move(source));
  ASSERT_TRUE(reg.add(42, 0).ok());
  auto units = units100hz();
  auto p1 = reg.sample_all(50'000'000, 1, units);
  ASSERT_EQ(p1.rows.size(), 2u);
  EXPECT_EQ(p1.rows[0].rss_kb, 1000u);
  EXPECT_EQ(p1.rows[0].cpu_time_ns, 30'000'007u);
  auto p2 = reg.sample_all(100'000'000, 2, units);
  EXPECT_EQ(p2.rows[0].rss_kb, 1000u) << "exiting: the RSS of the last live reading, not 0";
  EXPECT_EQ(p2.rows[0].min_faults, 5u) << "the counters are still the kernel's";
  auto p3 = reg.sample_all(150'000'000, 3, units);
  ASSERT_EQ(p3.rows.size(), 2u);
  EXPECT_EQ(p3.rows[0].rss_kb, 1000u);
  EXPECT_EQ(p3.rows[0].min_faults_total, 26u);
  EXPECT_EQ(p3.rows[0].cpu_time_ns_total, 40'500'000u);
  ASSERT_EQ(p3.exited.size(), 1u);
  EXPECT_EQ(p3.exited[0].first, 42);
  EXPECT_TRUE(reg.empty());
  // A process that exits before its first sample carries the RSS read at registration.
  auto source2 = std::make_unique<ScriptedSource>();
  source2->steps[7] = {{ReadOutcome::kOk, reading("v", 'S', 1, 5, 30)},
                       {ReadOutcome::kExited, reading("v", 'Z', 2, 9, 0, true)}};
  Registry reg2(4, false, std::move(source2));
  ASSERT_TRUE(reg2.add(7, 0).ok());
  EXPECT_EQ(reg2.sample_all(50'000'000, 1, units).rows[0].rss_kb, 120u);
}

// A process unregistered between periods (kscope-work --register does so as it finishes) ends
// its series with its counters at that moment, not those of the period before its last work.
TEST(MonitorSampler, FinalRowAtUnregistrationCarriesTheWorkSinceTheLastPeriod) {
  auto source = std::make_unique<ScriptedSource>();
  source->steps[42] = {
      {ReadOutcome::kOk, reading("w", 'R', 10, 1'000'000, 100)},
      {ReadOutcome::kOk, reading("w", 'R', 20, 31'000'000, 250)},
      {ReadOutcome::kOk, reading("w", 'R', 8363, 90'000'000, 260)},
  };
  Registry reg(4, false, std::move(source));
  ASSERT_TRUE(reg.add(42, 0).ok());
  auto units = units100hz();
  ASSERT_EQ(reg.sample_all(50'000'000, 1, units).rows.size(), 2u);
  auto row = reg.final_row(42, 70'000'000, 1, units);
  ASSERT_TRUE(row.has_value());
  EXPECT_EQ(row->pid, 42);
  EXPECT_EQ(row->min_faults, 8343u);
  EXPECT_EQ(row->min_faults_total, 8363u);
  EXPECT_EQ(row->cpu_time_ns, 59'000'000u);
  EXPECT_EQ(row->time_ns, 70'000'000u);
  EXPECT_EQ(reg.aggregate_totals().min_faults_total, 8353u) << "the sums include the final row";
  EXPECT_FALSE(reg.final_row(43, 70'000'000, 1, units).has_value());
  ASSERT_TRUE(reg.remove(42).ok());
  EXPECT_TRUE(reg.empty());
}

TEST(MonitorSampler, RegistrationRefusesExitingProcesses) {
  auto source = std::make_unique<ScriptedSource>();
  source->steps[9] = {{ReadOutcome::kOk, reading("w", 'R', 1, 1, 0, true)}};
  source->steps[10] = {{ReadOutcome::kExited, reading("w", 'Z', 1, 1, 0, true)}};
  Registry reg(4, false, std::move(source));
  EXPECT_FALSE(reg.add(9, 0).ok());
  EXPECT_FALSE(reg.add(10, 0).ok());
  EXPECT_TRUE(reg.empty());
}

TEST(MonitorSampler, RefreshAfterExecTakesTheNewNameAndRssKeepsTheBaseline) {
  auto source = std::make_unique<ScriptedSource>();
  auto* script = source.get();
  script->steps[5] = {
      {ReadOutcome::kOk, reading("kscope", 'S', 100, 2'000'000, 5000)},  // at the gate
      {ReadOutcome::kOk, reading("gzip", 'R', 180, 3'000'000, 300)},     // after execve
      {ReadOutcome::kOk, reading("gzip", 'R', 400, 53'000'000, 320)},
  };
  Registry reg(4, false, std::move(source));
  ASSERT_TRUE(reg.add(5, 0).ok());
  auto comm = reg.refresh_identity(5);
  ASSERT_TRUE(comm.ok());
  EXPECT_EQ(*comm, "gzip");
  EXPECT_EQ(reg.processes().at(5).last.comm, "gzip");
  auto rows = reg.sample_all(50'000'000, 1, units100hz()).rows;
  // The exec's own faults and CPU time are in the first row: the baseline is the gate's.
  EXPECT_EQ(rows[0].min_faults, 300u);
  EXPECT_EQ(rows[0].cpu_time_ns, 51'000'000u);
  EXPECT_EQ(rows[0].comm, "gzip");
  EXPECT_FALSE(reg.refresh_identity(6).ok());
}

TEST(MonitorJitter, QuantilesAreBucketUpperBounds) {
  JitterStats j;
  EXPECT_EQ(j.quantile_ns(0.99), 0u);
  for (int i = 0; i < 98; ++i) j.add(100'000);  // 100 us
  j.add(3'000'000);                             // 3 ms
  j.add(250'000'000);                           // 250 ms: overflow bucket
  EXPECT_EQ(j.count(), 100u);
  EXPECT_EQ(j.quantile_ns(0.5), 101'000u);
  EXPECT_EQ(j.quantile_ns(0.99), 3'100'000u);
  EXPECT_EQ(j.quantile_ns(1.0), 250'000'000u);
  EXPECT_EQ(j.max_ns(), 250'000'000u);
  EXPECT_NE(j.describe().find("n=100"), std::string::npos);
}

TEST(MonitorProtocol, ParsesRequests) {
  auto r = parse_request("register 123");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->kind, RequestKind::kRegister);
  EXPECT_EQ(r->pid, 123);
  r = parse_request("U 77\r");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->kind, RequestKind::kUnregister);
  EXPECT_EQ(r->pid, 77);
  EXPECT_TRUE(parse_request("status").ok());
}

TEST(MonitorProtocol, RejectsBadRequests) {
  for (const char* bad :
       {"", "register", "register -1", "register 0", "register 12x", "register 99999999999",
        "register 4194305", "bogus 1", "status 1", "register 1\x01", "unregister abc"}) {
    auto r = parse_request(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.error().exit_code, ExitCode::kUsage) << bad;
    }
  }
}

TEST(MonitorProtocol, ParsesReplies) {
  auto r = parse_reply("ok registered pid 5 (x)\n");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok);
  EXPECT_EQ(r->message, "registered pid 5 (x)");
  r = parse_reply("ok status\nline1\nline2\n");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->body, "line1\nline2\n");
  r = parse_reply("error pid 5 is not registered\n");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->ok);
  EXPECT_FALSE(parse_reply("garbage\n").ok());
  EXPECT_FALSE(parse_reply("ok no newline").ok());
}

TEST(MonitorCsv, RowFormat) {
  SampleRow r;
  r.time_ns = 1'234'567'891;
  r.pid = 42;
  r.comm = "a,b\"c";
  r.min_faults = 1;
  r.maj_faults = 2;
  r.min_faults_total = 3;
  r.maj_faults_total = 4;
  r.cpu_util = 0.5;
  r.rss_kb = 6;
  EXPECT_EQ(format_csv_row(r), "1234.568,42,\"a,b\"\"c\",1,2,3,4,0.5000,6");
  r.aggregate = true;
  EXPECT_EQ(format_csv_row(r), "1234.568,all,*,1,2,3,4,0.5000,6");
  EXPECT_STREQ(kCsvHeader,
               "time_ms,pid,comm,min_faults,maj_faults,min_faults_total,maj_faults_total,"
               "cpu_util,rss_kb");
}

// `kscope monitor read` rebuilds cpu_util from the ring's parts per million: its CSV line must
// be the monitor's own, for every value (nanosecond CPU time makes every decimal occur).
TEST(MonitorCsv, RingReaderPrintsTheSameCpuUtil) {
  size_t differ = 0;
  for (int i = 0; i < 200000; ++i) {
    SampleRow r;
    r.pid = 1;
    r.comm = "x";
    r.cpu_util = i * 1.000003e-7 + 3.3e-11 * (i % 7);
    kscope_ring_slot slot = to_ring_slot(r);
    SampleRow back = r;
    back.cpu_util = slot.cpu_util_ppm / 1e6;
    if (format_csv_row(r) != format_csv_row(back)) ++differ;
    EXPECT_LE(std::abs(back.cpu_util - r.cpu_util), 0.5e-6 + 1e-12);
  }
  EXPECT_EQ(differ, 0u);
}

TEST(MonitorPrometheus, ExpositionHasHelpTypeAndEscapedLabels) {
  MetricsSnapshot s;
  SampleRow p;
  p.pid = 7;
  p.comm = "we\"ird\\na\nme";
  p.min_faults_total = 11;
  p.maj_faults_total = 2;
  p.cpu_time_ns_total = 1'500'000'000;
  p.cpu_util = 0.25;
  p.rss_kb = 10;
  s.processes.push_back(p);
  s.aggregate.aggregate = true;
  s.aggregate.min_faults_total = 11;
  JitterStats j;
  j.add(1000);
  s.jitter = &j;
  std::string text = render_metrics(s);
  EXPECT_NE(text.find("# TYPE kscope_monitor_minor_faults_total counter"), std::string::npos);
  EXPECT_NE(text.find("# HELP kscope_monitor_minor_faults_total "), std::string::npos);
  EXPECT_NE(text.find("# TYPE kscope_monitor_resident_memory_bytes gauge"), std::string::npos);
  EXPECT_NE(text.find("# TYPE kscope_monitor_cpu_utilization_ratio gauge"), std::string::npos);
  EXPECT_NE(
      text.find("kscope_monitor_minor_faults_total{pid=\"7\",comm=\"we\\\"ird\\\\na\\nme\"} 11\n"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("kscope_monitor_cpu_seconds_total{pid=\"7\""), std::string::npos);
  EXPECT_NE(text.find("} 1.500000000\n"), std::string::npos);
  EXPECT_NE(text.find("kscope_monitor_resident_memory_bytes{pid=\"7\",comm="), std::string::npos);
  // The monitor-wide totals are not a series of the per-process family (sum() over it would
  // count them twice) but families of their own.
  EXPECT_EQ(text.find("pid=\"all\""), std::string::npos) << text;
  EXPECT_NE(text.find("\nkscope_monitor_observed_minor_faults_total 11\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE kscope_monitor_observed_minor_faults_total counter"),
            std::string::npos);
  // Every sample line belongs to a family declared before it.
  std::istringstream in(text);
  std::string line, family;
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) == 0) {
      family = line.substr(7, line.find(' ', 7) - 7);
    } else if (line[0] != '#') {
      EXPECT_EQ(line.rfind(family, 0), 0u) << line;
    }
  }
}

TEST(MonitorPrometheus, ListenAddresses) {
  auto a = parse_listen_address("9464");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->text, "127.0.0.1:9464");
  EXPECT_TRUE(a->loopback);
  a = parse_listen_address(":9100");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->text, "127.0.0.1:9100");
  a = parse_listen_address("[::1]:9100");
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->loopback);
  a = parse_listen_address("localhost:80");
  ASSERT_TRUE(a.ok());
  a = parse_listen_address("10.1.2.3:9100");
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a->loopback);
  for (const char* bad : {"0.0.0.0:9100", "[::]:9100", "9100x", "0", "70000", "host.example:1",
                          "1.2.3.4:", "", "::1:80"})
    EXPECT_FALSE(parse_listen_address(bad).ok()) << bad;
}

TEST(MonitorPrometheus, HttpRequests) {
  EXPECT_FALSE(parse_http_request("GET /metrics HTTP/1.1\r\nHost: x\r\n").complete);
  auto p = parse_http_request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(p.complete);
  EXPECT_TRUE(p.answer.wants_metrics);
  p = parse_http_request("GET /metrics?x=1 HTTP/1.0\r\n\r\n");
  EXPECT_TRUE(p.answer.wants_metrics);
  EXPECT_EQ(parse_http_request("GET /nope HTTP/1.1\r\n\r\n").answer.status, 404);
  EXPECT_EQ(parse_http_request("POST /metrics HTTP/1.1\r\n\r\n").answer.status, 405);
  EXPECT_EQ(parse_http_request("garbage\r\n\r\n").answer.status, 400);
  std::string resp = format_http_response({200, "text/plain", false, "abc"});
  EXPECT_NE(resp.find("Content-Length: 3\r\n"), std::string::npos);
}

}  // namespace
}  // namespace kscope::monitor
