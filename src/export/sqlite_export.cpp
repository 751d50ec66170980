#include "export/sqlite_export.h"

#include <fmt/format.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <map>

#include "model/fault_profile.h"
#include "util/invoking_user.h"
#include "util/output_file.h"

namespace kscope {

const char* const kSqliteSchema = R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE processes(pid INTEGER PRIMARY KEY, comm TEXT, faults INTEGER, major_faults INTEGER,
  kernel_minflt INTEGER, kernel_majflt INTEGER, exited_threads INTEGER);
CREATE TABLE threads(pid INTEGER, tid INTEGER, comm TEXT, PRIMARY KEY(tid, comm));
CREATE TABLE mappings(pid INTEGER, snapshot_ns INTEGER, start INTEGER, "end" INTEGER,
  offset INTEGER, inode INTEGER, dev_major INTEGER, dev_minor INTEGER, perms TEXT, path TEXT);
CREATE TABLE frames(id INTEGER PRIMARY KEY, addr INTEGER, function TEXT, offset INTEGER,
  module TEXT, module_path TEXT, build_id TEXT, kernel INTEGER, resolved INTEGER, label TEXT);
CREATE TABLE faults(id INTEGER PRIMARY KEY, time_ns INTEGER, pid INTEGER, tid INTEGER, comm TEXT,
  addr INTEGER, page INTEGER, ip INTEGER, access TEXT, mode TEXT, kind TEXT, segment TEXT,
  latency_ns INTEGER, cpu INTEGER, frame_id INTEGER REFERENCES frames(id), stack_id INTEGER);
CREATE TABLE stacks(stack_id INTEGER, depth INTEGER, frame_id INTEGER REFERENCES frames(id),
  PRIMARY KEY(stack_id, depth));
CREATE TABLE accounts(stack_id INTEGER, pid INTEGER, tid INTEGER, comm TEXT, type TEXT, unit TEXT,
  value INTEGER);
)sql";

namespace {

const char* const kSqliteIndexes = R"sql(
CREATE INDEX faults_pid ON faults(pid, time_ns);
CREATE INDEX faults_time ON faults(time_ns);
CREATE INDEX faults_segment ON faults(segment);
CREATE INDEX faults_page ON faults(page);
CREATE INDEX faults_frame ON faults(frame_id);
CREATE INDEX mappings_pid ON mappings(pid, snapshot_ns);
CREATE INDEX stacks_frame ON stacks(frame_id);
CREATE INDEX accounts_stack ON accounts(stack_id);
CREATE INDEX accounts_pid ON accounts(pid);
)sql";

class Db {
 public:
  ~Db() {
    if (db_) sqlite3_close(db_);
  }
  Status open(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
        SQLITE_OK)
      return fail("cannot create database " + path);
    return {};
  }
  Status exec(const char* sql) {
    char* msg = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
      std::string m = msg ? msg : "?";
      sqlite3_free(msg);
      return make_error("sqlite: " + m);
    }
    return {};
  }
  Status fail(const std::string& what) {
    return make_error(
        fmt::format("sqlite: {}: {}", what, db_ ? sqlite3_errmsg(db_) : "out of memory"));
  }
  sqlite3* get() { return db_; }

 private:
  sqlite3* db_ = nullptr;
};

// A prepared INSERT; bind values left to right, then step().
class Insert {
 public:
  Insert(Db& db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db.get(), sql, -1, &stmt_, nullptr) != SQLITE_OK) stmt_ = nullptr;
  }
  ~Insert() { sqlite3_finalize(stmt_); }
  bool ok() const { return stmt_ != nullptr; }
  Insert& i(int64_t v) {
    sqlite3_bind_int64(stmt_, ++col_, v);
    return *this;
  }
  // Addresses are unsigned 64-bit; SQLite integers are signed. Values >= 2^63 (kernel addresses)
  // are stored as their two's-complement negative; docs say so.
  Insert& u(uint64_t v) { return i(static_cast<int64_t>(v)); }
  Insert& null() {
    sqlite3_bind_null(stmt_, ++col_);
    return *this;
  }
  Insert& t(std::string_view s) {
    sqlite3_bind_text(stmt_, ++col_, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Status step() {
    int rc = sqlite3_step(stmt_);
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    col_ = 0;
    if (rc != SQLITE_DONE) return db_.fail("insert");
    return {};
  }

 private:
  Db& db_;
  sqlite3_stmt* stmt_ = nullptr;
  int col_ = 0;
};

Status fill(Db& db, const SqliteExportInput& in) {
  KSCOPE_TRY(db.exec("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; BEGIN;"));
  KSCOPE_TRY(db.exec(kSqliteSchema));
  const Recording* rec = in.recording;

  Insert meta(db, "INSERT INTO meta VALUES(?,?)");
  if (!meta.ok()) return db.fail("prepare");
  auto put_meta = [&](const std::string& k, const std::string& v) { return meta.t(k).t(v).step(); };
  if (rec) {
    std::string argv;
    for (const auto& a : rec->meta.command_line) argv += (argv.empty() ? "" : " ") + a;
    KSCOPE_TRY(put_meta("kind", "faults"));
    KSCOPE_TRY(put_meta("kscope_version", rec->meta.kscope_version));
    KSCOPE_TRY(put_meta("command_line", argv));
    KSCOPE_TRY(put_meta("hostname", rec->meta.hostname));
    KSCOPE_TRY(put_meta("kernel_release", rec->meta.kernel_release));
    KSCOPE_TRY(put_meta("start_wall_ns", std::to_string(rec->meta.start_wall_ns)));
    KSCOPE_TRY(put_meta("complete", rec->summary.complete ? "1" : "0"));
    KSCOPE_TRY(put_meta("truncated", rec->summary.truncated ? "1" : "0"));
    if (rec->trailer) {
      KSCOPE_TRY(put_meta("kernel_minflt", std::to_string(rec->trailer->kernel_minflt)));
      KSCOPE_TRY(put_meta("kernel_majflt", std::to_string(rec->trailer->kernel_majflt)));
      KSCOPE_TRY(put_meta("faults_seen", std::to_string(rec->trailer->faults_seen)));
      uint64_t lost = 0;
      for (auto l : rec->trailer->lost_per_cpu) lost += l;
      KSCOPE_TRY(put_meta("lost_records", std::to_string(lost)));
      for (const auto& [name, v] : rec->trailer->drop_counters)
        KSCOPE_TRY(put_meta("drop." + name, std::to_string(v)));
    }
  }
  if (in.profile) {
    KSCOPE_TRY(put_meta("profile_duration_ns", std::to_string(in.profile->duration_ns)));
  }

  if (rec) {
    Insert threads(db, "INSERT OR IGNORE INTO threads VALUES(?,?,?)");
    for (const auto& t : rec->threads) KSCOPE_TRY(threads.i(t.pid).i(t.tid).t(t.comm).step());

    std::map<uint32_t, std::pair<int64_t, int64_t>> per_pid;
    for (const auto& f : rec->faults) {
      auto& c = per_pid[f.pid];
      ++c.first;
      if (f.kind == FaultKind::kMajor) ++c.second;
    }
    const auto names = process_names(*rec);
    const auto kernel = kernel_counts_by_process(*rec);
    std::map<uint32_t, bool> pids;
    for (const auto& [pid, n] : names) pids[pid] = true;
    for (const auto& [pid, c] : per_pid) pids[pid] = true;
    for (uint32_t pid : rec->meta.target_pids) pids[pid] = true;
    Insert procs(db, "INSERT INTO processes VALUES(?,?,?,?,?,?,?)");
    for (const auto& [pid, unused] : pids) {
      procs.i(pid);
      if (auto it = names.find(pid); it != names.end())
        procs.t(it->second);
      else
        procs.null();
      auto c = per_pid[pid];
      procs.i(c.first).i(c.second);
      if (auto it = kernel.find(pid); it != kernel.end())
        procs.u(it->second.minflt).u(it->second.majflt).u(it->second.threads);
      else
        procs.null().null().i(0);
      KSCOPE_TRY(procs.step());
    }

    Insert maps(db, "INSERT INTO mappings VALUES(?,?,?,?,?,?,?,?,?,?)");
    for (const auto& snap : rec->mappings)
      for (const auto& m : snap.mappings)
        KSCOPE_TRY(maps.i(snap.pid)
                       .u(snap.time_ns)
                       .u(m.start)
                       .u(m.end)
                       .u(m.offset)
                       .u(m.inode)
                       .i(m.dev_major)
                       .i(m.dev_minor)
                       .t(m.perms)
                       .t(m.path)
                       .step());
  }

  // Identical frame lists share one stack id.
  std::map<std::vector<uint32_t>, int64_t> stack_ids;
  if (in.profile) {
    Insert frames(db, "INSERT INTO frames VALUES(?,?,?,?,?,?,?,?,?,?)");
    for (size_t i = 0; i < in.profile->frames.size(); ++i) {
      const ProfileFrame& f = in.profile->frames[i];
      frames.i(static_cast<int64_t>(i)).u(f.addr);
      if (f.resolved)
        frames.t(f.function);
      else
        frames.null();
      KSCOPE_TRY(frames.u(f.offset)
                     .t(f.module)
                     .t(f.module_path)
                     .t(f.build_id)
                     .i(f.kernel)
                     .i(f.resolved)
                     .t(f.display())
                     .step());
    }
    Insert stacks(db, "INSERT INTO stacks VALUES(?,?,?)");
    Insert accounts(db, "INSERT INTO accounts VALUES(?,?,?,?,?,?,?)");
    for (const auto& s : in.profile->samples) {
      auto [it, inserted] = stack_ids.emplace(s.frames, static_cast<int64_t>(stack_ids.size()));
      if (inserted) {
        for (size_t d = 0; d < s.frames.size(); ++d)
          KSCOPE_TRY(stacks.i(it->second).i(static_cast<int64_t>(d)).i(s.frames[d]).step());
      }
      for (size_t v = 0; v < s.values.size() && v < in.profile->value_types.size(); ++v) {
        const auto& vt = in.profile->value_types[v];
        KSCOPE_TRY(accounts.i(it->second)
                       .i(s.pid)
                       .i(s.tid)
                       .t(s.comm)
                       .t(vt.type)
                       .t(vt.unit)
                       .i(s.values[v])
                       .step());
      }
    }
  }

  if (rec) {
    // comm per fault: the thread's name as known from the recording (its last one).
    const auto tnames = thread_names(*rec);
    Insert faults(db, "INSERT INTO faults VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    for (size_t i = 0; i < rec->faults.size(); ++i) {
      const FaultRecord& f = rec->faults[i];
      faults.i(static_cast<int64_t>(i)).u(f.time_ns).i(f.pid).i(f.tid);
      if (auto it = tnames.find(f.tid); it != tnames.end())
        faults.t(it->second);
      else
        faults.null();
      faults.u(f.addr)
          .u(f.addr >> 12)
          .u(f.ip)
          .t(to_string(f.access))
          .t(to_string(f.mode))
          .t(to_string(f.kind))
          .t(to_string(f.segment));
      if (f.latency_ns)
        faults.u(*f.latency_ns);
      else
        faults.null();
      faults.i(f.cpu);
      if (i < in.frame_of_fault.size())
        faults.i(in.frame_of_fault[i]);
      else
        faults.null();
      // With stacks (kscope faults --stacks): the fault's call stack in the stacks table.
      auto sid = i < in.chain_of_fault.size() && in.chain_of_fault[i] < in.chains.size()
                     ? stack_ids.find(in.chains[in.chain_of_fault[i]])
                     : stack_ids.end();
      if (sid != stack_ids.end())
        faults.i(sid->second);
      else
        faults.null();
      KSCOPE_TRY(faults.step());
    }
  }
  KSCOPE_TRY(db.exec(kSqliteIndexes));
  KSCOPE_TRY(db.exec("COMMIT;"));
  return {};
}

}  // namespace

Status write_sqlite(const SqliteExportInput& in, const std::string& path) {
  std::string tmp = path + ".tmp-XXXXXX";
  int fd = ::mkstemp(tmp.data());
  if (fd < 0) return errno_error(fmt::format("cannot write {}", path));
  ::fchmod(fd, 0666 & ~current_umask());  // like any other output file, not mkstemp's 0600
  // Through sudo, the export belongs to the invoking user (it replaces PATH by rename).
  if (auto user = sudo_invoking_user(); user && ::fchown(fd, user->uid, user->gid) != 0) {
    Status st = errno_error(fmt::format("cannot give {} to uid {} (SUDO_UID)", path, user->uid));
    ::close(fd);
    ::unlink(tmp.c_str());
    return st;
  }
  ::close(fd);
  Status st;
  {
    Db db;
    st = db.open(tmp);
    if (st) st = fill(db, in);
  }
  if (st && std::rename(tmp.c_str(), path.c_str()) != 0)
    st = errno_error(fmt::format("cannot write {}", path));
  if (!st) ::unlink(tmp.c_str());
  return st;
}

}  // namespace kscope
