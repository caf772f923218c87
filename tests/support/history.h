// Replaying a run history (history_sql.h) read through a TestDb.
#pragma once

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "history_sql.h"
#include "test_db.h"

namespace runs_test {

struct Replay {
  std::map<std::string, long> max_active;  // per key: most runs active at once
  std::map<std::string, long> overlaps;    // per key: 'active' events that found one active already
  long max_active_all_keys = 0;            // most runs active at once, keys together
  std::map<long long, std::string> events_of_run;  // "AI" = active then inactive
  long events = 0;
  std::vector<std::string> anomalies;  // an 'inactive' for a key with none active
};

inline Replay replay(const TestDb& db, const std::string& table) {
  Replay out;
  const auto history =
      db.run("SELECT run_id, concurrency_key, event FROM " + table + " ORDER BY seq");
  EXPECT_EQ(history.code, SQLITE_OK) << history.message;
  std::map<std::string, long> active;
  long all = 0;
  for (const auto& row : history.rows) {
    const long long run = std::stoll(row[0].value_or("0"));
    const std::string key = row[1].value_or("<NULL>");
    const std::string event = row[2].value_or("<NULL>");
    ++out.events;
    if (event == "active") {
      if (active[key] > 0) ++out.overlaps[key];
      ++active[key];
      ++all;
      out.events_of_run[run] += 'A';
    } else {
      if (active[key] == 0) out.anomalies.push_back("run " + std::to_string(run) + " inactive twice");
      --active[key];
      --all;
      out.events_of_run[run] += 'I';
    }
    out.max_active[key] = std::max(out.max_active[key], active[key]);
    out.max_active_all_keys = std::max(out.max_active_all_keys, all);
  }
  return out;
}

// Lookups that give 0 for a key with no history, rather than throwing.
inline long max_active(const Replay& history, const std::string& key) {
  const auto it = history.max_active.find(key);
  return it == history.max_active.end() ? 0 : it->second;
}
inline long overlaps(const Replay& history, const std::string& key) {
  const auto it = history.overlaps.find(key);
  return it == history.overlaps.end() ? 0 : it->second;
}

}  // namespace runs_test
