#include "trace/command_launcher.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string_view>

#include "util/invoking_user.h"

namespace kscope {

namespace {

// The environment of a command run as `user`: HOME, USER and LOGNAME of that user (from the
// password database), everything else as kscope got it.
std::vector<std::string> environment_for(const InvokingUser& user) {
  std::vector<std::string> env;
  const passwd* pw = ::getpwuid(user.uid);
  for (char** e = environ; e && *e; ++e) {
    std::string_view v(*e);
    if (pw && (v.starts_with("HOME=") || v.starts_with("USER=") || v.starts_with("LOGNAME=")))
      continue;
    env.emplace_back(v);
  }
  if (pw) {
    env.push_back(std::string("HOME=") + (pw->pw_dir ? pw->pw_dir : "/"));
    env.push_back(std::string("USER=") + pw->pw_name);
    env.push_back(std::string("LOGNAME=") + pw->pw_name);
  }
  return env;
}

int status_to_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

Error exec_error(const std::string& argv0, int err) {
  if (err == ENOENT)
    return Error{fmt::format("{}: command not found", argv0), 0, ExitCode::kCommandNotFound, {}};
  return Error{fmt::format("cannot execute {}", argv0), err, ExitCode::kCannotExecute, {}};
}

}  // namespace

Result<std::string> find_executable(const std::string& argv0) {
  if (argv0.empty()) return exec_error(argv0, ENOENT);
  auto check = [&](const std::string& path) -> int {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return errno;
    if (S_ISDIR(st.st_mode)) return EACCES;
    if (::access(path.c_str(), X_OK) != 0) return errno;
    return 0;
  };
  if (argv0.find('/') != std::string::npos) {
    int err = check(argv0);
    if (err) return exec_error(argv0, err);
    return argv0;
  }
  const char* path_env = std::getenv("PATH");
  std::string path = path_env ? path_env : "/usr/local/bin:/usr/bin:/bin";
  int last_err = ENOENT;
  size_t start = 0;
  while (start <= path.size()) {
    size_t colon = path.find(':', start);
    if (colon == std::string::npos) colon = path.size();
    std::string dir = path.substr(start, colon - start);
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + argv0;
    int err = check(candidate);
    if (err == 0) return candidate;
    if (err != ENOENT && err != ENOTDIR) last_err = err;
    start = colon + 1;
  }
  return exec_error(argv0, last_err);
}

Result<LaunchedCommand> LaunchedCommand::start(const std::vector<std::string>& argv,
                                               const LaunchOptions& options) {
  if (argv.empty()) return usage_error("no command given after '--'");
  KSCOPE_ASSIGN_OR_RETURN(auto path, find_executable(argv[0]));

  int gate[2], status[2];
  if (::pipe2(gate, O_CLOEXEC) != 0) return errno_error("pipe");
  if (::pipe2(status, O_CLOEXEC) != 0) {
    ::close(gate[0]);
    ::close(gate[1]);
    return errno_error("pipe");
  }
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  std::optional<InvokingUser> user;
  if (!options.keep_privileges) user = sudo_invoking_user();
  bool drop = user.has_value();
  uid_t uid = drop ? user->uid : 0;
  gid_t gid = drop ? user->gid : 0;
  const char* sudo_user = std::getenv("SUDO_USER");
  // Built before fork: the child may only make async-signal-safe calls.
  std::vector<std::string> env_strings;
  std::vector<char*> cenv;
  if (drop) {
    env_strings = environment_for(*user);
    for (auto& e : env_strings) cenv.push_back(e.data());
    cenv.push_back(nullptr);
  }
  char** envp = drop ? cenv.data() : environ;

  pid_t pid = ::fork();
  if (pid < 0) return errno_error("fork");
  if (pid == 0) {
    // Child: only async-signal-safe calls from here to execve.
    ::close(gate[1]);
    ::close(status[0]);
    int err = 0;
    if (options.die_with_parent) ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (options.stdout_fd >= 0 && ::dup2(options.stdout_fd, 1) < 0) err = errno;
    if (options.stderr_fd >= 0 && ::dup2(options.stderr_fd, 2) < 0) err = errno;
    if (drop) {
      if (sudo_user ? ::initgroups(sudo_user, gid) != 0 : ::setgroups(0, nullptr) != 0) err = errno;
      if (!err && ::setgid(gid) != 0) err = errno;
      if (!err && ::setuid(uid) != 0) err = errno;
    }
    char byte;
    while (::read(gate[0], &byte, 1) < 0 && errno == EINTR) {
    }
    if (!err) {
      ::execve(path.c_str(), cargv.data(), envp);
      err = errno;
    }
    ssize_t ignored = ::write(status[1], &err, sizeof(err));
    (void)ignored;
    ::_exit(127);
  }
  ::close(gate[0]);
  ::close(status[1]);
  LaunchedCommand cmd;
  cmd.pid_ = pid;
  cmd.argv0_ = argv[0];
  cmd.gate_.reset(gate[1]);
  cmd.exec_status_.reset(status[0]);
  return cmd;
}

LaunchedCommand::~LaunchedCommand() {
  if (pid_ > 0 && !reaped_) {
    int status;
    if (gate_) {
      // Never released: the command must not run at all (tracing failed to start).
      ::kill(pid_, SIGKILL);
      gate_.reset();
    } else if (::waitpid(pid_, &status, WNOHANG) == 0) {
      ::kill(pid_, SIGTERM);
    }
    ::waitpid(pid_, &status, 0);
  }
}

Status LaunchedCommand::release() {
  gate_.reset();
  int err = 0;
  ssize_t n;
  do {
    n = ::read(exec_status_.get(), &err, sizeof(err));
  } while (n < 0 && errno == EINTR);
  exec_status_.reset();
  if (n == static_cast<ssize_t>(sizeof(err))) {
    int status;
    ::waitpid(pid_, &status, 0);
    reaped_ = true;
    return exec_error(argv0_, err);
  }
  return {};
}

bool LaunchedCommand::has_exited() {
  if (reaped_) return true;
  siginfo_t info = {};
  if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0)
    return true;
  return info.si_pid == pid_;
}

Result<int> LaunchedCommand::reap() {
  if (reaped_) return make_error("command already reaped");
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) return errno_error("waitpid");
  }
  reaped_ = true;
  return status_to_code(status);
}

void LaunchedCommand::terminate() {
  if (!reaped_ && pid_ > 0) ::kill(pid_, SIGTERM);
}

}  // namespace kscope
