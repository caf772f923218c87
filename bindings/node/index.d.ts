/** The path of the extension (runs.so), for db.loadExtension(). */
export function getLoadablePath(): string;
/** The folder of the migrations, sql/NNN_name.sql, in version order by name. */
export function getMigrationsDir(): string;
/** Loads the extension into db, a better-sqlite3 Database (or any with loadExtension()); returns db. */
export function load<T extends { loadExtension(path: string): unknown }>(db: T): T;
