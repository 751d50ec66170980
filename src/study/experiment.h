// One experiment of a study: a `kscope monitor` and N `kscope-work` processes started together,
// sampled until they all exit. The building blocks the locality and thrashing studies share.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "monitor/samples_csv.h"
#include "render/svg_chart.h"
#include "util/result.h"

namespace kscope::study {

struct WorkerSpec {
  std::string label;              // e.g. "A: random 1024 MB x 50000"
  std::vector<std::string> args;  // kscope-work arguments
};

struct WorkerResult {
  std::string label;
  pid_t pid = 0;
  int exit_status = -1;
  double elapsed_ms = -1;  // as kscope-work reports it
  uint64_t min_faults = 0, maj_faults = 0;
  double cpu_ms = 0;
  double user_ms = 0;
  double wall_s = 0;  // from release to exit, as the study saw it
};

struct RunResult {
  std::vector<WorkerResult> workers;
  std::vector<monitor::CsvSample> rows;
  double wall_s = 0;  // release to last exit
  std::string csv_path;
};

// Where the study finds its programs: `kscope` itself (for `kscope monitor`) and kscope-work.
struct StudyPrograms {
  std::string kscope;  // this executable
  std::string work;    // kscope-work
};
// kscope-work: `given` when set, else next to this executable, else in PATH.
Result<StudyPrograms> find_study_programs(const std::string& given_work);

// Starts the workers one after another: each is created stopped at its exec gate, moved into
// `cgroup_procs` when given, registered with a fresh monitor, then released. Released workers
// wait on a start pipe (kscope-work --start-fd) that is closed once all are ready, so they
// begin their work at the same moment. Waits for all to exit; a stop signal (*stop) stops the
// workers and fails. The monitor's CSV is written to OUT_DIR/NAME.csv and read back.
Result<RunResult> run_experiment(const std::string& out_dir, const std::string& name,
                                 const StudyPrograms& programs,
                                 const std::vector<WorkerSpec>& specs, int period_ms,
                                 const std::string& cgroup_procs,
                                 const volatile sig_atomic_t* stop);

// Cumulative minor (or major) faults of one pid over time, from the monitor's rows.
ChartSeries cumulative(const std::vector<monitor::CsvSample>& rows, const std::string& pid,
                       const std::string& name, bool major);

// Creates DIR and its parents (0755).
Status ensure_out_dir(const std::string& dir);
// Writes a study output file (created 0666 minus the umask, like reports).
Status write_output(const std::string& path, const std::string& text);
// Writes `value` to a sysfs/cgroupfs file.
Status write_sysfs(const std::string& path, const std::string& value);
// Runs a program to completion with stdout/stderr to /dev/null; returns its exit status.
int run_quiet(const std::vector<std::string>& argv);
void sleep_ms(int ms);

}  // namespace kscope::study
