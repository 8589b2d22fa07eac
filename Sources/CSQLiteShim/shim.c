#include "CSQLiteShim.h"
#include <sqlite3.h>

int sshca_sqlite_keep_wal_on_close(void *connection) {
    sqlite3 *db = connection;
    int persist = 1;
    int rc = sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)0);
    if (rc != SQLITE_OK) return rc;
    return sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
}
