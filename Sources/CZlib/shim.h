// zlib (Debian zlib1g-dev), for gzip-compressed image tarballs. Its static
// libz.a links into the fully static release binary with nothing else.
#include <zlib.h>
