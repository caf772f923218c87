// What runs_debug() reports: which library this is and which SQLite runs it.
#pragma once

#include <string>

namespace runs {

// One JSON object, for bug reports:
// {"version":"v0.1.0","commit":"007dab2","build_type":"RelWithDebInfo","sqlite_version":"3.40.1"}
// The SQLite version is the host's, asked through the API table at each call.
std::string debug_info();

}  // namespace runs
