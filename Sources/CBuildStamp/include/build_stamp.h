#ifndef SSHCA_BUILD_STAMP_H
#define SSHCA_BUILD_STAMP_H

/// The commit the binary was built from ("unknown" when it was built without the build
/// scripts, which write stamp.h beside build_stamp.c before they build).
const char *sshca_build_commit(void);

#endif
