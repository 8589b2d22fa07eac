#include "CSQLiteShim.h"

int sshca_sqlite_checkpoint_at_close(sqlite3 *db, int enabled) {
    return sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, enabled ? 0 : 1, (int *)0);
}

int sshca_sqlite_keep_wal_file(sqlite3 *db) {
    int persist = 1;
    return sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
}
