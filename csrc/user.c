/* The container's user, resolved in the child after pivot_root from the
 * container's own /etc/passwd and /etc/group (never the host's, and no NSS:
 * the release binary is static). Async-signal-safe: static buffers, no malloc. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static char passwd_buf[1 << 17];
static char group_buf[1 << 17];

/* Reads a whole small file; 0 if it is missing (no entries), or -errno. */
long gk_read_file(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, size - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == size - 1) {
            close(fd);
            return -EFBIG;
        }
    }
    close(fd);
    buf[len] = '\0';
    return (long)len;
}

/* Field `idx` (0-based, ':'-separated) of the line [line, end). */
static int field(const char *line, const char *end, int idx, const char **start, size_t *len)
{
    const char *p = line;
    for (int i = 0; i < idx; i++) {
        while (p < end && *p != ':')
            p++;
        if (p == end)
            return -1;
        p++;
    }
    const char *q = p;
    while (q < end && *q != ':')
        q++;
    *start = p;
    *len = (size_t)(q - p);
    return 0;
}

static int parse_id(const char *s, size_t len, unsigned long *out)
{
    if (len == 0 || len > 10)
        return -1;
    unsigned long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > 0xfffffffeUL)
        return -1;
    *out = v;
    return 0;
}

static int equals(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}

/* Walks the lines of `buf`; calls `fn` with each non-comment line until it
 * returns non-zero, which is returned. */
typedef int (*line_fn)(const char *line, const char *end, void *ctx);
static int each_line(const char *buf, line_fn fn, void *ctx)
{
    const char *p = buf;
    while (*p) {
        const char *end = strchr(p, '\n');
        if (!end)
            end = p + strlen(p);
        if (end > p && *p != '#') {
            int r = fn(p, end, ctx);
            if (r)
                return r;
        }
        p = *end ? end + 1 : end;
    }
    return 0;
}

struct pw_query {
    const char *name; /* by name, or NULL to match by uid */
    size_t name_len;
    unsigned long uid;
    /* results */
    unsigned long r_uid, r_gid;
    const char *r_name, *r_home;
    size_t r_name_len, r_home_len;
};

static int match_passwd(const char *line, const char *end, void *ctx)
{
    struct pw_query *q = ctx;
    const char *name, *uid, *gid, *home;
    size_t name_len, uid_len, gid_len, home_len;
    unsigned long u, g;
    if (field(line, end, 0, &name, &name_len) || field(line, end, 2, &uid, &uid_len) ||
        field(line, end, 3, &gid, &gid_len) || parse_id(uid, uid_len, &u) || parse_id(gid, gid_len, &g))
        return 0;
    if (q->name ? !equals(name, name_len, q->name, q->name_len) : u != q->uid)
        return 0;
    if (field(line, end, 5, &home, &home_len))
        home_len = 0;
    q->r_uid = u;
    q->r_gid = g;
    q->r_name = name;
    q->r_name_len = name_len;
    q->r_home = home;
    q->r_home_len = home_len;
    return 1;
}

struct gr_query {
    const char *name;
    size_t name_len;
    unsigned long r_gid;
};

static int match_group(const char *line, const char *end, void *ctx)
{
    struct gr_query *q = ctx;
    const char *name, *gid;
    size_t name_len, gid_len;
    unsigned long g;
    if (field(line, end, 0, &name, &name_len) || field(line, end, 2, &gid, &gid_len) ||
        parse_id(gid, gid_len, &g) || !equals(name, name_len, q->name, q->name_len))
        return 0;
    q->r_gid = g;
    return 1;
}

struct member_query {
    const char *user;
    size_t user_len;
    struct gk_user *out;
};

static void add_group(struct gk_user *u, gid_t g)
{
    for (size_t i = 0; i < u->ngroups; i++)
        if (u->groups[i] == g)
            return;
    if (u->ngroups < GK_MAX_GROUPS)
        u->groups[u->ngroups++] = g;
}

static int match_member(const char *line, const char *end, void *ctx)
{
    struct member_query *q = ctx;
    const char *gid, *members;
    size_t gid_len, members_len;
    unsigned long g;
    if (field(line, end, 2, &gid, &gid_len) || parse_id(gid, gid_len, &g) ||
        field(line, end, 3, &members, &members_len))
        return 0;
    const char *p = members, *stop = members + members_len;
    while (p < stop) {
        const char *c = p;
        while (c < stop && *c != ',')
            c++;
        if (equals(p, (size_t)(c - p), q->user, q->user_len))
            add_group(q->out, (gid_t)g);
        p = c + 1;
    }
    return 0;
}

/* A group given by name or id. */
static int lookup_group(const char *text, size_t len, gid_t *out, int have_groups)
{
    unsigned long v;
    if (parse_id(text, len, &v) == 0) {
        *out = (gid_t)v;
        return 0;
    }
    struct gr_query q = {.name = text, .name_len = len};
    if (!have_groups || !each_line(group_buf, match_group, &q))
        return -1;
    *out = (gid_t)q.r_gid;
    return 0;
}

static void set_home(struct gk_user *u, const char *home, size_t len)
{
    if (len == 0 || len >= sizeof u->home) {
        home = "/";
        len = 1;
    }
    memcpy(u->home, home, len);
    u->home[len] = '\0';
}

int gk_resolve_user(const char *spec, const char *const *group_add, size_t ngroup_add,
                    struct gk_user *u, char *err, size_t errsize)
{
    long pl = gk_read_file("/etc/passwd", passwd_buf, sizeof passwd_buf);
    long gl = gk_read_file("/etc/group", group_buf, sizeof group_buf);
    if (pl < 0 || gl < 0) {
        gk_strlcat(err, 0, errsize, pl < 0 ? "read /etc/passwd" : "read /etc/group");
        return pl < 0 ? (int)pl : (int)gl;
    }
    if (pl == 0)
        passwd_buf[0] = '\0';
    if (gl == 0)
        group_buf[0] = '\0';

    const char *colon = spec ? strchr(spec, ':') : NULL;
    const char *user = spec;
    size_t user_len = spec ? (colon ? (size_t)(colon - spec) : strlen(spec)) : 0;
    struct pw_query q = {0};
    unsigned long id;
    if (!spec) {
        /* The config's numeric ids stand; only HOME comes from passwd. */
        q.uid = u->uid;
        if (each_line(passwd_buf, match_passwd, &q))
            set_home(u, q.r_home, q.r_home_len);
        else
            set_home(u, "/", 1);
        return 0;
    }
    u->ngroups = 0;
    if (parse_id(user, user_len, &id) == 0) {
        q.uid = id;
        u->uid = (uid_t)id;
        u->gid = 0;
        if (each_line(passwd_buf, match_passwd, &q)) {
            u->gid = (gid_t)q.r_gid;
            user = q.r_name;
            user_len = q.r_name_len;
            set_home(u, q.r_home, q.r_home_len);
        } else {
            user = NULL;
            set_home(u, "/", 1);
        }
    } else {
        q.name = user;
        q.name_len = user_len;
        if (user_len == 0 || !each_line(passwd_buf, match_passwd, &q)) {
            size_t n = gk_strlcat(err, 0, errsize, "unable to find user ");
            char name[64];
            size_t l = user_len < sizeof name - 1 ? user_len : sizeof name - 1;
            memcpy(name, spec, l);
            name[l] = '\0';
            n = gk_strlcat(err, n, errsize, name);
            gk_strlcat(err, n, errsize, ": no matching entries in passwd file");
            return -ENOENT;
        }
        u->uid = (uid_t)q.r_uid;
        u->gid = (gid_t)q.r_gid;
        set_home(u, q.r_home, q.r_home_len);
    }
    if (colon) {
        gid_t g;
        if (lookup_group(colon + 1, strlen(colon + 1), &g, 1) < 0) {
            size_t n = gk_strlcat(err, 0, errsize, "unable to find group ");
            n = gk_strlcat(err, n, errsize, colon + 1);
            gk_strlcat(err, n, errsize, ": no matching entries in group file");
            return -ENOENT;
        }
        u->gid = g;
    }
    if (user) {
        struct member_query mq = {.user = user, .user_len = user_len, .out = u};
        each_line(group_buf, match_member, &mq);
    }
    for (size_t i = 0; i < ngroup_add; i++) {
        gid_t g;
        if (lookup_group(group_add[i], strlen(group_add[i]), &g, 1) < 0) {
            size_t n = gk_strlcat(err, 0, errsize, "unable to find group ");
            n = gk_strlcat(err, n, errsize, group_add[i]);
            gk_strlcat(err, n, errsize, ": no matching entries in group file");
            return -ENOENT;
        }
        add_group(u, g);
    }
    return 0;
}
