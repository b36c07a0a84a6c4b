/* The system's libcgroup (Debian libcgroup-dev), for the libcgroup backend. */
#include <libcgroup.h>
