/* Preloaded into wsrelay when it runs under valgrind (bench/run --instructions).
 *
 * A Swift program with an async main ends its main thread in libdispatch's dispatch_main(), which waits in
 * sigsuspend() with a signal mask stored in read-only memory. Valgrind 3.19 edits the mask it is given in
 * place (to keep its own signals deliverable) and so crashes with "the 'impossible' happened: Killed by
 * fatal signal" (SIGSEGV, si_code 2, at an address inside libdispatch.so). Passing a writable copy of the
 * same mask changes nothing for the program and lets valgrind run it. */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

int sigsuspend(const sigset_t *mask) {
    sigset_t copy = *mask;
    return (int)syscall(SYS_rt_sigsuspend, &copy, (size_t)(_NSIG / 8));
}
