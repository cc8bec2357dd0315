/*
 * token_cli: `wsgw token`, which prints a signed HS256 token.
 */
#ifndef GW_TOKEN_CLI_H
#define GW_TOKEN_CLI_H

/* argv[0] is "token". Returns the process exit code. */
int gw_token_main(int argc, char **argv);

#endif
