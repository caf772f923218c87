// runs::SqlText and runs::sql_join: SQL text put together at compile time, so
// that a fragment several statements share is written once and costs nothing
// when the statements run.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string_view>

namespace runs {

// A string literal as a value that can be a template argument. N counts the
// terminating NUL.
template <std::size_t N>
struct SqlText {
  char chars[N] = {};

  constexpr SqlText() = default;
  // Implicit, so that a literal can be given where a SqlText is expected.
  constexpr SqlText(const char (&text)[N]) { std::copy_n(text, N, chars); }  // NOLINT

  constexpr std::string_view view() const { return {chars, N - 1}; }
};

// `parts` (literals or SqlText constants) one after the other, as a SqlText:
// itself a part of others.
template <SqlText... parts>
inline constexpr auto sql_join = [] {
  SqlText<(sizeof(parts.chars) + ...) - sizeof...(parts) + 1> joined;
  char* end = joined.chars;
  ((end = std::copy_n(parts.chars, sizeof(parts.chars) - 1, end)), ...);
  return joined;
}();

// The same, as the text of a statement.
template <SqlText... parts>
inline constexpr std::string_view sql = sql_join<parts...>.view();

}  // namespace runs
