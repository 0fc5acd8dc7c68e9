#ifndef WSRELAY_CGLIBCSPAWN_SHIM_H
#define WSRELAY_CGLIBCSPAWN_SHIM_H
// posix_spawn's GNU extension that closes every descriptor from a number up (glibc 2.34), declared by
// <spawn.h> only under _GNU_SOURCE, which Swift's Glibc module is not built with. A child started with it
// inherits only the descriptors its parent chose, whatever else is open, close-on-exec or not.
#include <spawn.h>
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);
#endif
