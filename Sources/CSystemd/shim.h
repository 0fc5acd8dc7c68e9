#ifndef WSRELAY_CSYSTEMD_SHIM_H
#define WSRELAY_CSYSTEMD_SHIM_H
#include <systemd/sd-daemon.h>
#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-journal.h>
#endif
