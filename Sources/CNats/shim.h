#ifndef WSRELAY_CNATS_SHIM_H
#define WSRELAY_CNATS_SHIM_H
// cnats (Debian libnats-dev): the NATS C client, used by the JetStream sink. JetStream and TLS are built in.
#include <nats/nats.h>
#endif
