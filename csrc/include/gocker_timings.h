/*
 * Monotonic timestamps of one container start, for `gocker run --timings`
 * and `gocker bench`.
 *
 * A mark is one clock_gettime(CLOCK_MONOTONIC) stored at a fixed slot:
 * nothing is allocated and nothing is written anywhere else, so marks are
 * always on, at the cost of a clock read each.
 *
 * The container's first process leaves some marks too (GK_MARK_CHILD to
 * GK_MARK_EXEC); it only calls clock_gettime (async-signal-safe) and stores
 * the time. Cloned sharing gocker's memory (see gk_spawn; on cgroup v1),
 * it stores into gocker's own marks. Cloned as a copy, it would store into
 * its copy: with gk_timings_share() called, gk_timings_before_copy() moves
 * the marks to one page mapped MAP_SHARED|MAP_ANONYMOUS first, which the
 * copy inherits (execve drops it). Without gk_timings_share() (timings
 * off) a copy's marks are lost, which costs it the clock reads alone.
 * (Mapping that page at the top of every timed start cost about 1.5 % of
 * the start, 0.07 ms.)
 *
 * The marks, in the order a foreground start passes them: a phase is the
 * time between one mark that was reached and the one reached next. GO comes
 * after MOUNTED instead of before PIVOTED when the child sets itself up
 * while the parent makes its cgroups (GK_SPAWN_LATE_GO).
 */
#ifndef GOCKER_TIMINGS_H
#define GOCKER_TIMINGS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum gk_timing_mark {
    GK_MARK_START = 0, /* main() entered */
    GK_MARK_PARSED,    /* command line parsed */
    GK_MARK_IMAGE,     /* run: request checked, image found (or built) */
    GK_MARK_BUNDLE,    /* run: OCI config and bundle written */
    GK_MARK_CONFIG,    /* create: config read, launch plan made; cgroups next */
    GK_MARK_CLONE,     /* parent: spawn description packed, groups made (with
                        * GK_SPAWN_LATE_GO: made before GO, after the clone); clone next */
    GK_MARK_CHILD,     /* child: first instruction after clone */
    GK_MARK_GO,        /* child: GO received and its groups joined */
    GK_MARK_PIVOTED,   /* child: root filesystem mounted, pivot_root done */
    GK_MARK_MOUNTED,   /* child: mounts done; device nodes next */
    GK_MARK_READY,     /* child: mounts, devices, user, capabilities done; READY next */
    GK_MARK_EXEC,      /* child: `start` opened the exec FIFO; execve next */
    GK_MARK_STARTED,   /* parent: start saw the exec */
    GK_MARK_EXITED,    /* parent: the container's process reaped */
    GK_MARK_END,       /* parent: about to exit */
    GK_MARK_COUNT
};

/* Stores the monotonic clock in `mark`'s slot. Async-signal-safe. */
void gk_mark(enum gk_timing_mark mark);

/* Asks for the container's first process's marks too. Call before
 * gk_spawn. 0. */
int gk_timings_share(void);

/* Before a child is cloned as a copy of this process: maps the shared page
 * and moves the marks there, when gk_timings_share() asked for them. 0 or
 * -errno (the child's marks are then lost). While it runs no other thread
 * or child may mark: a mark stored between the copy and the switch would
 * be lost (gk_spawn calls it with one start under way). */
int gk_timings_before_copy(void);

/* The mark in nanoseconds of CLOCK_MONOTONIC, or 0 if it was not reached. */
uint64_t gk_mark_ns(enum gk_timing_mark mark);

#ifdef __cplusplus
}
#endif
#endif
