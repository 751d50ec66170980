// One error type for all of kscope. Functions that can fail return Result<T>; the CLI turns an
// Error into a message on stderr and an exit code in one place (report_error in
// src/cli/common.cpp). No exceptions cross module boundaries, no exit() deep in the code.
#pragma once

#include <fmt/format.h>

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

namespace kscope {

// Process exit codes. Usage errors are 2 like getopt tools; a command that cannot be found is
// 127 and one that cannot be executed 126, like the shell.
enum class ExitCode : int {
  kOk = 0,
  kFailure = 1,
  kUsage = 2,
  kCannotExecute = 126,
  kCommandNotFound = 127,
};

struct Error {
  std::string message;  // what failed and why, in words a user understands
  int sys_errno = 0;    // errno behind it, 0 when none
  ExitCode exit_code = ExitCode::kFailure;
  std::string hint;  // what to do about it (may be empty)

  // "message: strerror(errno)" when errno is set.
  std::string describe() const;
};

inline Error make_error(std::string message, int sys_errno = 0, std::string hint = {}) {
  return Error{std::move(message), sys_errno, ExitCode::kFailure, std::move(hint)};
}
inline Error usage_error(std::string message) {
  return Error{std::move(message), 0, ExitCode::kUsage, {}};
}
// Error from the current errno; call right after the failing system call.
inline Error errno_error(std::string message) { return make_error(std::move(message), errno); }

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const& { return error_; }
  Error&& error() && { return std::move(error_); }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Result<void>;

}  // namespace kscope

// Propagate an error from an expression returning Result<...>.
#define KSCOPE_TRY(expr)                                                   \
  do {                                                                     \
    auto kscope_try_result_ = (expr);                                      \
    if (!kscope_try_result_) return std::move(kscope_try_result_).error(); \
  } while (0)

#define KSCOPE_CONCAT_INNER_(a, b) a##b
#define KSCOPE_CONCAT_(a, b) KSCOPE_CONCAT_INNER_(a, b)
// KSCOPE_ASSIGN_OR_RETURN(auto x, f()); declares x from the value or returns the error.
#define KSCOPE_ASSIGN_OR_RETURN(decl, expr)                          \
  auto KSCOPE_CONCAT_(kscope_res_, __LINE__) = (expr);               \
  if (!KSCOPE_CONCAT_(kscope_res_, __LINE__))                        \
    return std::move(KSCOPE_CONCAT_(kscope_res_, __LINE__)).error(); \
  decl = std::move(KSCOPE_CONCAT_(kscope_res_, __LINE__)).value()
