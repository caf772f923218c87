/*
** sqlite-runs: at most one active run per key, enforced by SQLite itself.
**
** Load it and migrate the database once:
**
**   .load ./build/runs                      -- sqlite3 shell; or load_extension()
**   SELECT runs_migrate();                  -- 4: schema version reached
**
** or, linked into a program as the static library (libsqlite-runs.a, built
** from these sources with SQLITE_CORE), register it for every connection
** (sqlite-runs.h): sqlite3_auto_extension((void (*)(void))sqlite3_runs_init).
**
** Then run the lifecycle in SQL, each call a statement of its own:
**
**   SELECT start_run('full');               -- 1: id of the new pending run
**   SELECT start_run('full');               -- error: run 1 is already active ...
**   SELECT active_run();                    -- 1
**   SELECT mark_run_running(1);             -- 'updated'; this process owns it
**   SELECT update_run_progress(1, 5, 10, 'extract');
**   SELECT heartbeat_run(1);                -- 'ok', 'cancel_requested' or 'lost'
**   SELECT complete_run(1);                 -- 'updated'
**   SELECT run_status(1);                   -- 'completed'
**
** Functions (docs/functions/ has a page for each):
**
**   start_run(scope [, triggered_by [, concurrency_key [, lease_seconds]]])
**       -> id. In one BEGIN IMMEDIATE transaction of its own: when the key
**       has an active (pending or running) run, fails that run if its owner
**       is certainly gone (same boot and namespaces: the process died or
**       its pid was reused; otherwise only by lease) and else refuses with
**       SQLITE_CONSTRAINT;
**       then inserts a pending run owned by the calling process and commits.
**       Must be a statement of its own: not inside BEGIN ... COMMIT, not
**       with FROM.
**   active_run([concurrency_key])            -> id or NULL
**   mark_run_running(id)                     pending -> running; caller owns it
**   complete_run(id)                         running -> completed
**   fail_run(id, error_message)              pending/running -> failed
**   cancel_run(id)                           pending/running -> cancelled, or
**       'cancel_requested' when the owner is alive in another process: it
**       confirms with its own cancel_run(id) after heartbeat_run() told it.
**   update_run_progress(id, current, total, current_step)   while active
**       Each returns 'updated', 'not_found' or 'not_in_expected_state'.
**   heartbeat_run(id)                        'ok', 'cancel_requested', 'lost';
**       the caller becomes the owner: 'ok' = safe until the lease ends
**   reap_stale_runs([concurrency_key])       -> how many abandoned runs failed
**   run_info(id)                             -> JSON: the run, owner, staleness
**   run_status(id)                           -> status or NULL
**   runs_migrate()                           -> schema version; restores
**       dropped guards
**   runs_check()                             -> JSON: what is wrong, like
**       PRAGMA integrity_check
**   runs_busy_timeout(ms)                    -> ms; installs a fair, bounded
**       busy handler on the connection in place of busy_timeout (0: none)
**   runs_version()                           -> 'vX.Y.Z'
**   runs_debug()                             -> JSON: version, commit, build, SQLite
**
** Every function but runs_version() and runs_debug() is SQLITE_DIRECTONLY:
** a trigger, view or DEFAULT expression cannot call it; the writing ones
** also refuse to run in a statement that writes, where a CHECK constraint
** (which SQLite does not hold to SQLITE_DIRECTONLY) would call them. Errors name the function and say what
** to do; a failed call leaves the connection in autocommit, nothing written.
**
** The code, top down: this file (entry point and registration),
** functions.cpp (argument checks and results), run_store.cpp (every SQL
** statement; run_sql.h the rules they share, put together at compile time
** by sql_text.h), liveness.cpp (who owns a run, and whether it still lives),
** schema_check.cpp (the schema compared with what sql/ creates),
** statement.h / transaction.h / statement_cache.h (RAII over the C API),
** close_hook.cpp (tells the statement cache when sqlite3_close() runs),
** enum_table.h (tables indexed by an enum, checked at compile time),
** busy_handler.cpp (the busy handler of runs_busy_timeout()).
*/
#include <memory>
#include <new>

#include "close_hook.h"
#include "functions.h"
#include "host_version.h"
#include "sqlite-runs.h"
#include "sqlite.h"

// Loadable (runs.so): the API table's pointer, local to the library (its
// version script exports the entry point only). Static (SQLITE_CORE): nothing;
// the calls go to the program's SQLite directly.
SQLITE_EXTENSION_INIT1

namespace {

int set_load_error(char** error_message, const char* text, int rc) {
  if (error_message != nullptr) *error_message = sqlite3_mprintf("%s", text);
  return rc;
}

int register_all(sqlite3* db, char** error_message) {
  if (const auto problem =
          runs::host_version_problem(sqlite3_libversion_number(), sqlite3_libversion())) {
    return set_load_error(error_message, problem->c_str(), SQLITE_ERROR);
  }
  const auto store = std::make_shared<runs::RunStore>(db);
  store->adopt_busy_handler(runs::earlier_busy_handler(db));
  // Functions first: SQLite refuses to replace a function while a statement
  // runs (loading again from SELECT load_extension(...)), and then the old
  // registrations, their store and its close hook stay as they were. The
  // close hook goes last; it shares ownership of the store through its cache.
  int rc = SQLITE_OK;
  for (const runs::FunctionSpec& spec : runs::function_specs()) {
    rc = runs::register_function(db, spec, store);
    if (rc != SQLITE_OK) break;
  }
  if (rc == SQLITE_OK) {
    rc = runs::register_close_hook(
        db, std::shared_ptr<runs::CloseListener>(store, &store->statements()));
  }
  if (rc != SQLITE_OK) return set_load_error(error_message, sqlite3_errmsg(db), rc);
  return SQLITE_OK;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int sqlite3_runs_init(
    sqlite3* db, char** error_message, const sqlite3_api_routines* api) {
  SQLITE_EXTENSION_INIT2(api);
  try {
    return register_all(db, error_message);
  } catch (const std::bad_alloc&) {
    return SQLITE_NOMEM;
  } catch (...) {
    return set_load_error(error_message, "sqlite-runs: unexpected error while loading", SQLITE_ERROR);
  }
}
