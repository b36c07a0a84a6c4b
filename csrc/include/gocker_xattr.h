/*
 * Extended attributes for the Swift side: Glibc's Swift module does not
 * offer <sys/xattr.h>. Used by the image store for overlayfs's own marks
 * (an opaque directory is one with trusted.overlay.opaque = "y").
 */
#ifndef GOCKER_XATTR_H
#define GOCKER_XATTR_H

#include <sys/types.h>
#include <sys/xattr.h>

/* fgetxattr(2): the value's length, or -1 with errno set. */
static inline ssize_t gk_fgetxattr(int fd, const char *name, void *value, size_t size) {
    return fgetxattr(fd, name, value, size);
}

/* llistxattr(2): the length of the names' list, or -1 with errno set. */
static inline ssize_t gk_llistxattr(const char *path, char *list, size_t size) {
    return llistxattr(path, list, size);
}

/* fsetxattr(2): 0, or -1 with errno set. */
static inline int gk_fsetxattr(int fd, const char *name, const void *value, size_t size, int flags) {
    return fsetxattr(fd, name, value, size, flags);
}

#endif
