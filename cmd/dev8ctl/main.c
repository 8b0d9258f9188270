/*
 * dev8ctl: the operator's command line for dev8-agent (kubectl-style).
 * Everything is in pkg/ctl; this only hands over argv.
 */
#include "ctl/ctl.h"

int main(int argc, char **argv)
{
    return ctl_main(argc, argv);
}
