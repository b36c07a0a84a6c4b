/*
 * System calls the Swift side makes that Glibc's Swift module does not
 * offer.
 */
#ifndef GOCKER_SYS_H
#define GOCKER_SYS_H

#include <pthread.h>
#include <sys/random.h>
#include <sys/types.h>

/* getrandom(2) from the kernel's pool, as /dev/urandom gives it: the
 * number of bytes, or -1 with errno set. */
static inline ssize_t gk_getrandom(void *buf, size_t len) {
    return getrandom(buf, len, 0);
}

/* Reserves the blocks of a file's first `len` bytes without changing its
 * size (fallocate with FALLOC_FL_KEEP_SIZE): 0 or -1 with errno set. */
int gk_reserve(int fd, long long len);

/* Grows a private anonymous mapping of `old_size` bytes at `addr` to
 * `new_size`, moving it where it must (mremap with MREMAP_MAYMOVE, which
 * Swift cannot call: it is variadic): the pages written so far keep
 * their content. Its new address, or NULL with errno set. */
void *gk_grow_mapping(void *addr, size_t old_size, size_t new_size);

/* Gives a thread about to be made with `attr` every CPU the calling thread
 * may run on but the one it runs on now, where that leaves any: work
 * handed to it then runs beside the caller's, where a scheduler that packs
 * tasks onto few CPUs would queue it behind. Nothing changes otherwise. */
void gk_attr_spread(pthread_attr_t *attr);

/* A wait that spins a little before it sleeps. In a virtual machine a
 * CPU with nothing to run is halted, and waking it again (an interrupt
 * through the hypervisor) cost more than the short waits of a start took
 * in all: so a thread that expects its event within a fraction of a
 * millisecond checks for it on its own CPU first, giving way to any other
 * task there, and sleeps only after gk_spin says so (1 ms at most, or
 * GOCKER_SPIN_NS nanoseconds). With a single CPU it never spins.
 * Zero-initialise one per wait:
 *     struct gk_spinner s = {0};
 *     while (!ready())
 *         if (!gk_spin(&s)) { sleep until ready; break; }
 * Usable in a container's first process (no lock, no allocation). */
struct gk_spinner {
    unsigned long long until; /* CLOCK_MONOTONIC ns; set on the first call */
    unsigned n;
};
/* 1: check again (after a pause); 0: the window is over, sleep. */
int gk_spin(struct gk_spinner *s);
/* The window in nanoseconds: 0 where it never spins (decided once, when
 * the process starts). */
long long gk_spin_window(void);

/* Renames `from` to `to` unless `to` exists (renameat2 with
 * RENAME_NOREPLACE): 0 or -1 with errno set (EEXIST: `to` is there). */
int gk_rename_noreplace(const char *from, const char *to);

/* Swaps `from` and `to`, both of which must exist (renameat2 with
 * RENAME_EXCHANGE): 0 or -1 with errno set (ENOENT: one is missing;
 * EINVAL: the file system cannot). */
int gk_rename_exchange(const char *from, const char *to);

/* Whether the directory open as `fd` holds nothing: 1, 0, or -1 with
 * errno set. Reads from the descriptor's current position. */
int gk_directory_empty(int fd);

#endif
