// liblzma (Debian liblzma-dev), for xz-compressed image tarballs. Its static
// liblzma.a links into the fully static release binary with nothing else.
#include <lzma.h>
