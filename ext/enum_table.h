// runs::enum_table(): one value per enumerator, each listed next to the
// enumerator it belongs to and checked at compile time, so that a list of
// values (statement texts, result texts) and the enum that names them cannot
// get out of step.
#pragma once

#include <array>
#include <cstddef>

namespace runs {

template <class Enum, class Value>
struct EnumEntry {
  Enum key;
  Value value;
};

// Values indexed by an enumerator: made by enum_table() only.
template <class Enum, class Value, std::size_t N>
struct EnumTable {
  std::array<Value, N> values;

  constexpr const Value& operator[](Enum key) const noexcept {
    return values[static_cast<std::size_t>(key)];
  }
  static constexpr std::size_t size() noexcept { return N; }
};

// The values of `entries` indexed by enumerator. Enum's enumerators are 0, 1,
// 2, ... and end with kCount; entry i must be for enumerator i, and there must
// be one for each: else the program does not compile.
template <class Enum, class Value, std::size_t N>
consteval EnumTable<Enum, Value, N> enum_table(const EnumEntry<Enum, Value> (&entries)[N]) {
  if (N != static_cast<std::size_t>(Enum::kCount)) throw "enum_table: not one entry per enumerator";
  EnumTable<Enum, Value, N> table{};
  for (std::size_t i = 0; i < N; ++i) {
    if (static_cast<std::size_t>(entries[i].key) != i) throw "enum_table: entry i is not for enumerator i";
    table.values[i] = entries[i].value;
  }
  return table;
}

}  // namespace runs
