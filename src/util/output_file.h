// An output file for reports and exports, opened before the work starts so an unwritable path
// fails early. Created with mode 0666 minus the umask (reports are meant to be shared, unlike
// recordings, which are 0600), and through sudo for the invoking user. "-" means stdout.
#pragma once

#include <cstdio>
#include <string>

#include "util/result.h"

namespace kscope {

class OutputFile {
 public:
  static Result<OutputFile> open(const std::string& path, bool allow_stdout = true);
  OutputFile(OutputFile&& o) noexcept;
  OutputFile& operator=(OutputFile&&) = delete;
  ~OutputFile();

  std::FILE* get() const { return file_; }
  const std::string& path() const { return path_; }
  bool is_stdout() const { return file_ == stdout; }
  Status write(std::string_view data);
  // Flushes and closes (not stdout); an error when anything failed to reach the file.
  Status close();

 private:
  OutputFile(std::FILE* f, std::string path) : file_(f), path_(std::move(path)) {}
  std::FILE* file_ = nullptr;
  std::string path_;
};

// The process umask, without changing it for longer than the call.
unsigned current_umask();

}  // namespace kscope
