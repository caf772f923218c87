#include "close_hook.h"

#include <new>

#include "error.h"
#include "statement.h"

namespace runs {
namespace {

constexpr const char* kModuleName = "runs_close_hook";

struct HookTable {
  sqlite3_vtab base;  // first: SQLite sees a sqlite3_vtab*
  std::shared_ptr<CloseListener> listener;
};

struct HookCursor {
  sqlite3_vtab_cursor base;
};

int hook_connect(sqlite3* db, void* aux, int, const char* const*, sqlite3_vtab** out,
                 char**) noexcept {
  const int rc = sqlite3_declare_vtab(db, "CREATE TABLE x(unused)");
  if (rc != SQLITE_OK) return rc;
  sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
  auto* table = new (std::nothrow) HookTable{};
  if (table == nullptr) return SQLITE_NOMEM;
  table->listener = *static_cast<std::shared_ptr<CloseListener>*>(aux);
  table->listener->hook_connected();
  *out = &table->base;
  return SQLITE_OK;
}

int hook_disconnect(sqlite3_vtab* vtab) noexcept {
  auto* table = reinterpret_cast<HookTable*>(vtab);
  table->listener->hook_disconnected();
  delete table;
  return SQLITE_OK;
}

int hook_best_index(sqlite3_vtab*, sqlite3_index_info* info) noexcept {
  info->estimatedCost = 1;
  info->estimatedRows = 0;
  return SQLITE_OK;
}

int hook_open(sqlite3_vtab*, sqlite3_vtab_cursor** out) noexcept {
  auto* cursor = new (std::nothrow) HookCursor{};
  if (cursor == nullptr) return SQLITE_NOMEM;
  *out = &cursor->base;
  return SQLITE_OK;
}

int hook_close(sqlite3_vtab_cursor* cursor) noexcept {
  delete reinterpret_cast<HookCursor*>(cursor);
  return SQLITE_OK;
}

int hook_filter(sqlite3_vtab_cursor*, int, const char*, int, sqlite3_value**) noexcept {
  return SQLITE_OK;
}

int hook_next(sqlite3_vtab_cursor*) noexcept { return SQLITE_OK; }

int hook_eof(sqlite3_vtab_cursor*) noexcept { return 1; }

int hook_column(sqlite3_vtab_cursor*, sqlite3_context* ctx, int) noexcept {
  sqlite3_result_null(ctx);
  return SQLITE_OK;
}

int hook_rowid(sqlite3_vtab_cursor*, sqlite3_int64* rowid) noexcept {
  *rowid = 0;
  return SQLITE_OK;
}

void hook_destroy_aux(void* aux) noexcept {
  delete static_cast<std::shared_ptr<CloseListener>*>(aux);
}

// Eponymous-only (no xCreate): it exists in every schema without CREATE
// VIRTUAL TABLE, and cannot be created as a real table.
const sqlite3_module kModule = {
    /* iVersion */ 0,
    /* xCreate */ nullptr,
    /* xConnect */ hook_connect,
    /* xBestIndex */ hook_best_index,
    /* xDisconnect */ hook_disconnect,
    /* xDestroy */ nullptr,
    /* xOpen */ hook_open,
    /* xClose */ hook_close,
    /* xFilter */ hook_filter,
    /* xNext */ hook_next,
    /* xEof */ hook_eof,
    /* xColumn */ hook_column,
    /* xRowid */ hook_rowid,
    /* xUpdate */ nullptr,
    /* xBegin */ nullptr,
    /* xSync */ nullptr,
    /* xCommit */ nullptr,
    /* xRollback */ nullptr,
    /* xFindFunction */ nullptr,
    /* xRename */ nullptr,
    /* xSavepoint */ nullptr,
    /* xRelease */ nullptr,
    /* xRollbackTo */ nullptr,
    /* xShadowName */ nullptr,
};

}  // namespace

int register_close_hook(sqlite3* db, std::shared_ptr<CloseListener> listener) {
  auto* aux = new (std::nothrow) std::shared_ptr<CloseListener>(std::move(listener));
  if (aux == nullptr) return SQLITE_NOMEM;
  // On failure SQLite calls hook_destroy_aux itself.
  return sqlite3_create_module_v2(db, kModuleName, &kModule, aux, hook_destroy_aux);
}

void attach_close_hook(sqlite3* db) {
  try {
    Statement probe(db, "SELECT unused FROM runs_close_hook");
  } catch (const Error& error) {
    // The module is eponymous and its table always has the column `unused`:
    // a plain SQLITE_ERROR here means the name resolves to a table or view of
    // the schema instead (one without that column). The listener then stays
    // unhooked and the caller says so; anything else (no memory, an
    // authorizer's refusal, a corrupt schema) is reported as it is.
    if ((error.code() & 0xff) != SQLITE_ERROR) throw;
  }
}

}  // namespace runs
