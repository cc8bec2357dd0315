/*
 * publish_cli: `wsgw publish`, which publishes one message through Redis
 * without a running gateway, the same way POST /api/publish does.
 */
#ifndef GW_PUBLISH_CLI_H
#define GW_PUBLISH_CLI_H

/* argv[0] is "publish". Returns the process exit code: 0 published (the
 * result is on stdout), 1 failed (bad channel or data, Redis unreachable or
 * refusing), 2 bad usage. */
int gw_publish_main(int argc, char **argv);

#endif
