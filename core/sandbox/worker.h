/* worker.h: the sandbox worker process (see worker.c for what it confines
 * and how). The gateway starts it as `hookgate sandbox-worker [--states N]
 * [--address-space BYTES]` with its end of a socket pair on fd 0; it
 * answers jobs (core/sandbox/wire.h) until that socket closes. */
#ifndef HG_SANDBOX_WORKER_H
#define HG_SANDBOX_WORKER_H

/* Runs the worker; argv holds the options after the command's name.
 * Returns the process's exit status. */
int hg_sandbox_worker_main(int argc, char **argv);

#endif
