/*
 * The symbols of a binary as `nm -n --defined-only` lists them, for the
 * layout tools of `./build.sh order` (.ci/first-touch.c,
 * .ci/touched-data.c).
 */
#ifndef GOCKER_NM_SYMBOLS_H
#define GOCKER_NM_SYMBOLS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* `mark`: the tool's own use (seen, printed). */
struct sym { uint64_t addr; char *name; int mark; };
static struct sym *syms;
static size_t nsyms;

/* Reads BINARY's symbols that `keep` accepts (nm's type letter, name,
 * address), in address order, into syms. 0, or -1 when nm failed or none
 * was kept. */
static int load_symbols(const char *binary, int (*keep)(char type, const char *name, uint64_t addr))
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "nm -n --defined-only '%s'", binary);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t cap = 1 << 14;
    syms = malloc(cap * sizeof *syms);
    if (!syms) {
        pclose(p);
        return -1;
    }
    char line[8192];
    while (fgets(line, sizeof line, p)) {
        char type, name[8000];
        unsigned long long addr;
        if (sscanf(line, "%llx %c %7999s", &addr, &type, name) != 3 || !keep(type, name, addr)) continue;
        if (nsyms == cap) {
            struct sym *bigger = realloc(syms, 2 * cap * sizeof *syms);
            if (!bigger) break;
            syms = bigger;
            cap *= 2;
        }
        syms[nsyms].addr = addr;
        syms[nsyms].name = strdup(name);
        syms[nsyms].mark = 0;
        nsyms++;
    }
    return pclose(p) == 0 && nsyms > 0 ? 0 : -1;
}

#endif
