#include "extension_table.h"

#include "functions.h"
#include "migrations.h"
#include "version.h"

namespace runs_fuzz {

std::vector<ExtensionFunction> extension_functions() {
  std::vector<ExtensionFunction> out;
  for (const runs::FunctionSpec& spec : runs::function_specs()) {
    out.push_back({spec.name, spec.min_args, spec.max_args});
  }
  return out;
}

int latest_schema_version() { return runs::migrations().back().version; }

std::string library_version() { return SQLITE_RUNS_VERSION; }

}  // namespace runs_fuzz
