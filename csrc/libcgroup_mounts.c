/*
 * One read of the mount table for libcgroup.
 *
 * libcgroup 2.0 opens /proc/mounts again before it makes each group and
 * before it writes each value, to check that some cgroup filesystem is
 * still mounted; the directories it then writes to come from the table
 * cgroup_init read. A start makes about twenty such reads. Each has the
 * kernel format the whole mount table while it holds the global namespace
 * lock, the lock a starting container's mounts wait for.
 *
 * gocker links with --wrap=fopen (Package.swift). While the calling thread
 * is inside a libcgroup call (gk_libcgroup_enter/leave), an open of
 * /proc/mounts for reading is served from a copy of the table, read by the
 * first such open (cgroup_init's). Every other open is fopen's own.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gocker_cgroup.h"

FILE *__real_fopen(const char *path, const char *mode);

static __thread int inside_libcgroup;

static pthread_mutex_t copy_lock = PTHREAD_MUTEX_INITIALIZER;
static char *copy;
static size_t copy_len;

void gk_libcgroup_enter(void) { inside_libcgroup++; }
void gk_libcgroup_leave(void) { inside_libcgroup--; }

/* The whole table, or NULL (errno set). */
static char *read_table(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) break;
        if (n == cap) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            free(buf);
            buf = NULL;
            break;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    int saved = errno;
    close(fd);
    errno = saved;
    *len = n;
    return buf;
}

FILE *__wrap_fopen(const char *path, const char *mode)
{
    if (!inside_libcgroup || strcmp(path, "/proc/mounts") != 0 || mode[0] != 'r' || strchr(mode, '+'))
        return __real_fopen(path, mode);
    pthread_mutex_lock(&copy_lock);
    if (!copy) {
        size_t len = 0;
        char *table = read_table(path, &len);
        if (table) {
            copy = table;
            copy_len = len;
        }
    }
    char *table = copy;
    size_t len = copy_len;
    pthread_mutex_unlock(&copy_lock);
    FILE *f = table ? fmemopen(table, len, "r") : NULL;
    return f ? f : __real_fopen(path, mode);
}

/*
 * One clearing of libcgroup's mount table: none.
 *
 * cgroup_init() first zeroes its table of mounted hierarchies, 820 kB in
 * the library's zero-filled data (CG_CONTROLLER_MAX entries of two
 * FILENAME_MAX paths each), of which a start uses a dozen entries. Zeroing
 * pages that are zero already makes the kernel back every one of them: 200
 * page faults on the driver's thread, which shares the machine's cores
 * with the main thread and the container's first process.
 *
 * gocker links with --wrap=memset too (Package.swift): the first memset of
 * that table to zero in the process is skipped, as the table has never
 * been written (only cgroup_init fills it, after this clearing). Any later
 * one, from another cgroup_init, clears it as libcgroup means to. Any other
 * memset goes straight to the C library's. (Weak: a libcgroup linked as a
 * shared library makes its own memset calls, which this never sees.)
 */
extern char cg_mount_table[] __attribute__((weak));

void *__real_memset(void *s, int c, size_t n);

static int mount_table_written;

void *__wrap_memset(void *s, int c, size_t n)
{
    if (__builtin_expect(s == (void *)cg_mount_table, 0) && s && c == 0
        && !__atomic_exchange_n(&mount_table_written, 1, __ATOMIC_RELAXED))
        return s;
    return __real_memset(s, c, n);
}
