#ifndef SSHCA_CSQLITESHIM_H
#define SSHCA_CSQLITESHIM_H
/* sqlite3_db_config is variadic, which Swift cannot call: this wraps the one setting the ledger needs. */

/* Keeps the WAL file across connections instead of checkpointing and deleting it on every
 * close: a command that opens the ledger, commits once and exits then syncs the disk once
 * (the commit), not four times. Checkpoints still happen automatically as the WAL grows.
 * `connection` is a sqlite3*. Returns 0 on success. */
int sshca_sqlite_keep_wal_on_close(void *connection);

#endif
