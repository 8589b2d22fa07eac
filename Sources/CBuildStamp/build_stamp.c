#include "build_stamp.h"

// stamp.h is written by scripts/deps.sh (sshca_stamp_build) and kept out of git; only this
// file includes it, so a new commit recompiles one C file, not the modules that import it.
#if __has_include("stamp.h")
#include "stamp.h"
#endif

#ifndef SSHCA_COMMIT
#define SSHCA_COMMIT "unknown"
#endif

const char *sshca_build_commit(void) {
    return SSHCA_COMMIT;
}
