// The SQLite API as a loadable extension sees it: every sqlite3_* call goes
// through the routine table that the host hands to sqlite3_runs_init(), so the
// library uses the host's SQLite (the shell's, Python's, Node's) and never
// links libsqlite3. Include this instead of <sqlite3.h> everywhere in ext/.
#pragma once

#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT3
