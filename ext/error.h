// runs::Error: a failure to report to SQLite as a function's result.
#pragma once

#include <stdexcept>
#include <string>

namespace runs {

// Carries a SQLite result code (primary or extended) and a message in
// SQLite's style: lowercase, saying what is wrong and what to do. The message
// does not name the SQL function; the adapter that catches it adds "name(): ".
class Error : public std::runtime_error {
 public:
  Error(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  int code() const noexcept { return code_; }

 private:
  int code_;
};

}  // namespace runs
