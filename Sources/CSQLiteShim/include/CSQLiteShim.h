#ifndef SSHCA_CSQLITESHIM_H
#define SSHCA_CSQLITESHIM_H
/*
 * The SQLite calls Swift cannot make itself (sqlite3_db_config is variadic), for the ledger's
 * handling of its WAL. Everything else goes through GRDB.
 */
#include <sqlite3.h>

/* Whether the connection moves the WAL into the database file when it closes. SQLite does it
 * only when no other connection, in this process or another, has the database open; then it
 * empties the WAL file (with sshca_sqlite_keep_wal_file and journal_size_limit 0). Without it,
 * the WAL stays as it is for the next connection. SQLITE_OK, or SQLite's error code. */
int sshca_sqlite_checkpoint_at_close(sqlite3 *db, int enabled);

/* The WAL file is kept (emptied) rather than deleted when a checkpoint empties it at close, so
 * the next connection does not create it again. SQLITE_OK, or SQLite's error code. */
int sshca_sqlite_keep_wal_file(sqlite3 *db);

#endif
