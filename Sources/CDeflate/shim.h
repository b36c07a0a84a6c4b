// libdeflate (Debian libdeflate-dev): gzip layers that are whole files on
// disk, inflated in one call into memory, about three times as fast as
// zlib's streaming inflate. Its static libdeflate.a links into the fully
// static release binary with nothing else.
#include <libdeflate.h>
