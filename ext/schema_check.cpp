#include "schema_check.h"

#include <memory>

#include "migrations.h"
#include "statement.h"

namespace runs {
namespace {

struct CloseDatabase {
  void operator()(sqlite3* db) const noexcept { sqlite3_close(db); }
};
using Database = std::unique_ptr<sqlite3, CloseDatabase>;

struct Expected {
  std::string type;  // table, column, index, trigger
  std::string name;  // a column: "table.column"
  std::string sql;
  int version;  // the migration that created it
};

std::string migration_number(int version) {
  std::string digits = std::to_string(version);
  return std::string(digits.size() < 3 ? 3 - digits.size() : 0, '0') + digits;
}

// "CREATE TRIGGER name ..." as stored in sqlite_schema, made to create it in
// main whatever TEMP objects exist: "CREATE TRIGGER main.name ...". The
// name is the first word of that text after the keywords.
std::string in_main(const std::string& sql, const std::string& name) {
  const auto at = sql.find(" " + name + " ");
  if (at == std::string::npos) return sql;
  return sql.substr(0, at + 1) + "main." + sql.substr(at + 1);
}

std::vector<Expected> reference(int version) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(":memory:", &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  Database memory(raw);
  if (rc != SQLITE_OK) {
    throw Error(rc, "cannot open an in-memory database to compare the schema with");
  }
  std::vector<Expected> objects;
  for (const Migration& migration : migrations()) {
    if (migration.version > version) break;
    char* message = nullptr;
    const int applied = sqlite3_exec(memory.get(), migration.sql, nullptr, nullptr, &message);
    if (applied != SQLITE_OK) {
      std::string text = std::string("cannot build the reference schema: migration ") +
                         migration.name + " failed: " +
                         (message != nullptr ? message : sqlite3_errstr(applied));
      sqlite3_free(message);
      throw Error(applied, text);
    }
    // Every object and every table's column, in the order created.
    Statement listed(memory.get(),
                     "SELECT type, name, sql FROM main.sqlite_schema"
                     " WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
                     " UNION ALL SELECT 'column', t.name || '.' || c.name, NULL"
                     " FROM main.sqlite_schema AS t, pragma_table_info(t.name, 'main') AS c"
                     " WHERE t.type = 'table' AND t.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'");
    Query query(listed);
    while (query.step()) {
      const std::string name = query.text(1);
      bool known = false;
      for (const Expected& object : objects) known = known || object.name == name;
      if (!known) objects.push_back({query.text(0), name, query.text(2), migration.version});
    }
  }
  return objects;
}

}  // namespace

std::vector<SchemaProblem> schema_problems(sqlite3* db, int version) {
  std::vector<SchemaProblem> problems;
  if (version <= 0) return problems;
  // A table's text is not compared (an adopted table has its own, and
  // ALTER TABLE changes it); its columns are.
  Statement find(db,
                 "SELECT type, sql FROM main.sqlite_schema WHERE name = ?1"
                 " UNION ALL SELECT 'column', NULL FROM main.sqlite_schema AS t,"
                 " pragma_table_info(t.name, 'main') AS c"
                 " WHERE t.type = 'table' AND t.name || '.' || c.name = ?1");
  for (const Expected& object : reference(version)) {
    const std::string what = object.type + " " + object.name + " (migration " +
                             migration_number(object.version) + ")";
    std::optional<std::pair<std::string, std::string>> found;
    {
      Query query(find);
      query.bind(1, std::string_view(object.name));
      if (query.step()) found.emplace(query.text(0), query.text(1));
    }
    const bool restorable = object.type == "index" || object.type == "trigger";
    if (!found) {
      problems.push_back({what + " is missing",
                          restorable ? std::optional(in_main(object.sql, object.name)) : std::nullopt});
      continue;
    }
    if (found->first != object.type) {
      problems.push_back({what + " is missing: a " + found->first + " has its name", std::nullopt});
      continue;
    }
    if (restorable && found->second != object.sql) {
      problems.push_back({what + " differs from the one the migration creates: drop it, and "
                                 "SELECT runs_migrate() restores it",
                          std::nullopt});
    }
  }
  return problems;
}

}  // namespace runs
