#include "CSQLiteShim.h"

int sshca_sqlite_keep_wal_at_close(sqlite3 *db) {
    int rc = sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)0);
    if (rc != SQLITE_OK) return rc;
    /* Without this, a WAL that a checkpoint emptied would still be deleted at close, and made
     * again (and its directory synced) by the next command's first commit. */
    int persist = 1;
    return sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
}
