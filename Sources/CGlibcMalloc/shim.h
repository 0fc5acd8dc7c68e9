#ifndef WSRELAY_CGLIBCMALLOC_SHIM_H
#define WSRELAY_CGLIBCMALLOC_SHIM_H
// glibc's malloc controls (mallopt and its parameter names), which Swift's Glibc module does not include.
#include <malloc.h>
static const int wsrelay_m_trim_threshold = M_TRIM_THRESHOLD;
static const int wsrelay_m_mmap_threshold = M_MMAP_THRESHOLD;
#endif
