/* ringraftd's entry point below main(): runs the node until SIGINT/SIGTERM. */
#ifndef RR_IO_RINGRAFTD_H
#define RR_IO_RINGRAFTD_H

#include "io/config.h"

/* Returns the process exit status. */
int node_run(const struct node_config *cfg);

#endif
