/*
 * touched-data: runs a command under ptrace and, as the command's process
 * exits, prints the data symbols of BINARY that lie on the pages it touched
 * (it, its threads and the children sharing its memory): every page of
 * .bss it read or wrote, every page of .data it wrote. A page of .data that
 * was only read is mapped from the file, as are its neighbours, and cannot
 * be told apart from them. One line per touched page whose symbol was not
 * printed yet, on stdout, in address order: the size in pages of the
 * section holding it, then that symbol (the last one at or before the
 * page's end). Exits with the command's status. Transparent huge pages are
 * turned off for the command (PR_SET_THP_DISABLE): a 2 MB page would make
 * every section on it look touched.
 *
 *   touched-data BINARY -- COMMAND [ARGS...]
 *
 * Meant for a link of BINARY in which every data section starts a page of
 * its own (.ci/page-per-section.lds): a touched page then names its
 * section, and a section's size is the distance from its first page to
 * the next section's (the first symbol at a page's start past it).
 * `./build.sh order` runs it on gocker's starts to append the data to
 * .ci/hot-symbols.txt, smallest sections first: the sections a start
 * writes then sit together in the release binary, on fewer pages, so that
 * a start faults in fewer (two faults each for a page read, then written)
 * and its exit frees fewer.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nm-symbols.h"

/* _end: where the data end (the last section's end). */
static uint64_t data_end;

/* Names the linker defines at a section's bounds: no section of their own. */
static int linker_made(const char *name)
{
    static const char *exact[] = {"_end", "end", "_edata", "edata", "_etext", "etext", "__bss_start", "__TMC_END__",
                                  "__ehdr_start", "__executable_start", "_GLOBAL_OFFSET_TABLE_", NULL};
    static const char *prefix[] = {"__start_", "__stop_", "__init_array_", "__fini_array_", "__preinit_array_",
                                   "__rela_iplt_", NULL};
    for (int i = 0; exact[i]; i++)
        if (strcmp(name, exact[i]) == 0) return 1;
    for (int i = 0; prefix[i]; i++)
        if (strncmp(name, prefix[i], strlen(prefix[i])) == 0) return 1;
    return 0;
}

/* Data symbols (nm's b, B, d, D, v, V) of their own; notes _end.
 * Thread-local symbols are offsets in a thread's block, not addresses:
 * they are the small values. */
static int is_data(char type, const char *name, uint64_t addr)
{
    if (strcmp(name, "_end") == 0) data_end = addr;
    return strchr("bBdDvV", type) && !linker_made(name) && addr >= 0x10000;
}

/* Pagemap: bit 63 present, bit 61 a page of a file (or shared). A page of
 * .bss read only is the zero page: present, not a file's. */
#define PM_PRESENT (1ULL << 63)
#define PM_FILE (1ULL << 61)

/* The size in pages of the section holding syms[i]: from the last symbol
 * at a page's start at or before it to the first one after it (or _end). */
static uint64_t section_pages(size_t i)
{
    size_t lo = i, hi = i + 1;
    while (lo > 0 && (syms[lo].addr & 4095)) lo--;
    while (hi < nsyms && ((syms[hi].addr & 4095) || syms[hi].addr == syms[lo].addr)) hi++;
    uint64_t end = hi < nsyms ? syms[hi].addr : data_end;
    uint64_t start = syms[lo].addr & ~4095ULL;
    return end > start ? (end - start + 4095) / 4096 : 1;
}

static void print_touched(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/pagemap", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        perror("touched-data: pagemap");
        return;
    }
    uint64_t first = syms[0].addr & ~4095ULL, last = (data_end - 1) & ~4095ULL;
    size_t next = 0; /* the first symbol past the pages seen so far */
    for (uint64_t page = first; page <= last; page += 4096) {
        uint64_t entry = 0;
        if (pread(fd, &entry, sizeof entry, (off_t)(page / 4096 * sizeof entry)) != (ssize_t)sizeof entry) break;
        while (next < nsyms && syms[next].addr < page + 4096) next++;
        if (!(entry & PM_PRESENT) || (entry & PM_FILE) || next == 0) continue;
        struct sym *s = &syms[next - 1];
        if (!s->mark) {
            printf("%llu %s\n", (unsigned long long)section_pages(next - 1), s->name);
            s->mark = 1;
        }
    }
    close(fd);
}

int main(int argc, char **argv)
{
    if (argc < 4 || strcmp(argv[2], "--") != 0) {
        fprintf(stderr, "usage: touched-data BINARY -- COMMAND [ARGS...]\n");
        return 2;
    }
    if (load_symbols(argv[1], is_data) < 0) {
        fprintf(stderr, "touched-data: no data symbols read from %s\n", argv[1]);
        return 2;
    }
    if (data_end <= syms[nsyms - 1].addr) data_end = syms[nsyms - 1].addr + 1;
    pid_t child = fork();
    if (child < 0) {
        perror("touched-data: fork");
        return 2;
    }
    if (child == 0) {
        prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        execvp(argv[3], argv + 3);
        perror("touched-data: exec");
        _exit(127);
    }
    int status;
    /* Stopped at its exec: from here it is the command. (Exited: the exec
     * failed.) */
    if (waitpid(child, &status, 0) < 0) return 2;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (!WIFSTOPPED(status)) return 2;
    ptrace(PTRACE_SETOPTIONS, child, 0, PTRACE_O_TRACEEXIT | PTRACE_O_EXITKILL);
    ptrace(PTRACE_CONT, child, 0, 0);
    for (;;) {
        if (waitpid(child, &status, 0) < 0) return 2;
        if (WIFEXITED(status)) return WEXITSTATUS(status);
        if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
        if (!WIFSTOPPED(status)) continue;
        int sig = WSTOPSIG(status), deliver = 0;
        if (sig == SIGTRAP && (status >> 16) == PTRACE_EVENT_EXIT) {
            /* Exiting, its memory still whole. */
            print_touched(child);
            fflush(stdout);
        } else if (sig != SIGTRAP) {
            deliver = sig;
        }
        ptrace(PTRACE_CONT, child, 0, deliver);
    }
}
