#ifndef SSHCA_CSQLITESHIM_H
#define SSHCA_CSQLITESHIM_H
/*
 * The one SQLite call Swift cannot make itself: sqlite3_db_config is variadic.
 * Everything else goes through GRDB.
 */
#include <sqlite3.h>

/* The connection neither checkpoints nor deletes the WAL when it closes (it stays for the next
 * process, which reads it back). SQLITE_OK, or SQLite's error code. */
int sshca_sqlite_keep_wal_at_close(sqlite3 *db);

#endif
