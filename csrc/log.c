/* The container log: docker's json-file lines, one per line the container
 * printed, kept under a size bound by rotating to LOG.1. Written by the
 * monitor of a detached container and by gocker for an attached one. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void gk_log_open(struct gk_log *l)
{
    l->fd = open(l->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    struct stat st;
    l->size = (l->fd >= 0 && fstat(l->fd, &st) == 0) ? (unsigned long long)st.st_size : 0;
}

/* Appends one json-file line for `text` (without its newline, `nl` says
 * whether it had one). */
static void log_line(struct gk_log *l, const char *stream, const char *text, size_t len, int nl)
{
    static char out[GK_LOG_LINE_MAX * 6 + 128];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = (size_t)snprintf(out, 64, "{\"log\":\"");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c == '\n') {
            out[n++] = '\\';
            out[n++] = 'n';
        } else if (c == '\r') {
            out[n++] = '\\';
            out[n++] = 'r';
        } else if (c == '\t') {
            out[n++] = '\\';
            out[n++] = 't';
        } else if (c < 0x20) {
            n += (size_t)snprintf(out + n, 8, "\\u%04x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    if (nl) {
        out[n++] = '\\';
        out[n++] = 'n';
    }
    n += (size_t)snprintf(out + n, 128, "\",\"stream\":\"%s\",\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ\"}\n",
                          stream, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                          ts.tv_nsec);
    if (l->max && l->size + n > l->max && l->size > 0) {
        /* Rotate: keep one previous file, as docker's max-file=2. */
        char old[4096];
        snprintf(old, sizeof old, "%s.1", l->path);
        close(l->fd);
        rename(l->path, old);
        gk_log_open(l);
    }
    if (l->fd >= 0) {
        size_t off = 0;
        while (off < n) {
            ssize_t w = write(l->fd, out + off, n - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        l->size += n;
    }
}

void gk_log_flush(struct gk_log_stream *s, struct gk_log *l)
{
    if (s->len)
        log_line(l, s->name, s->buf, s->len, 0);
    s->len = 0;
}

int gk_log_read(struct gk_log_stream *s, struct gk_log *l)
{
    ssize_t r = read(s->fd, s->buf + s->len, sizeof s->buf - s->len);
    if (r < 0)
        return errno == EINTR || errno == EAGAIN ? 1 : 0;
    if (r > 0 && s->copy_to >= 0) {
        size_t off = 0;
        while (off < (size_t)r) {
            ssize_t w = write(s->copy_to, s->buf + s->len + off, (size_t)r - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            off += (size_t)w;
        }
    }
    if (r == 0) {
        gk_log_flush(s, l);
        return 0;
    }
    s->len += (size_t)r;
    size_t start = 0;
    for (size_t i = 0; i < s->len; i++) {
        if (s->buf[i] == '\n') {
            log_line(l, s->name, s->buf + start, i - start, 1);
            start = i + 1;
        }
    }
    if (start == 0 && s->len == sizeof s->buf) {
        log_line(l, s->name, s->buf, s->len, 0); /* a line longer than the buffer: split it */
        start = s->len;
    }
    memmove(s->buf, s->buf + start, s->len - start);
    s->len -= start;
    return 1;
}

