/* The start's timestamps: see include/gocker_timings.h. */
#include "gocker_timings.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static uint64_t local_marks[GK_MARK_COUNT];
static uint64_t *marks = local_marks;

void gk_mark(enum gk_timing_mark mark)
{
    struct timespec ts;
    if ((unsigned)mark >= GK_MARK_COUNT || clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
        return;
    marks[mark] = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Whether the container's first process is to report its marks. */
static int share_wanted;

int gk_timings_share(void)
{
    share_wanted = 1;
    return 0;
}

int gk_timings_before_copy(void)
{
    if (!share_wanted || marks != local_marks)
        return 0;
    void *page = mmap(NULL, sizeof local_marks, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
        return -errno;
    memcpy(page, local_marks, sizeof local_marks);
    marks = page;
    return 0;
}

uint64_t gk_mark_ns(enum gk_timing_mark mark)
{
    return (unsigned)mark < GK_MARK_COUNT ? ((volatile uint64_t *)marks)[mark] : 0;
}
