/*
 * rt_load: the load client of tests/bench/realtime.sh (issue 6, item 10) — many Socket.IO clients
 * in one single-threaded epoll process, speaking Engine.IO 4 / Socket.IO 5 over cleartext
 * WebSocket directly (masked client frames, "40{token}" CONNECT, "2" -> "3" pongs).
 *
 * Why not socket.io-client: Node needs tens of KB and tens of microseconds per socket and per
 * message, so on this 2-core machine 10,000 Node sockets cost the server the CPU it is being
 * measured with, and 20,000 of them do not fit. Here a client is ~100 bytes and a delivery is one
 * read(); the latency measured is what a client sees: the emit's send time (taken right before
 * the POST is written) to the moment its frame is read from the socket, on CLOCK_MONOTONIC (one
 * process, one clock). Nothing is parsed beyond finding "t" and "i" in the bench event.
 *
 *   rt_load memory --urls H:P[,H:P] --pids PID[,PID] --token T --counts 5000,19000 [--hold S]
 *     connections spread over the urls in cumulative steps; after each step (all connected, 2 s
 *     quiet) the summed VmRSS of the pids against before: {"kind":"memory",...} per step.
 *   rt_load fanout --urls H:P[,H:P] --token T --n 10000 [--messages 20]
 *     n members of the tenant room spread over the urls; POST /v1/realtime/emit {"to":"tenant",
 *     "event":"bench","data":{"t","i"}} one at a time (the next once every member got it, or
 *     10 s), then `messages` back to back: {"kind":"setup"|"paced"|"burst",...}.
 *
 * Each socket binds to one of 127.0.0.2-127.0.0.9 so that ephemeral ports do not run out.
 * RT_LOAD_VERBOSE=1 in the environment prints each one-at-a-time message's last delivery on stderr.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { ST_CONNECTING, ST_HTTP, ST_OPEN, ST_AUTH, ST_READY, ST_DEAD };

typedef struct {
    int fd;
    uint8_t state;
    uint8_t url;
    uint8_t *rest; /* bytes of an incomplete frame (rare) */
    size_t nrest;
} conn_t;

typedef struct {
    struct sockaddr_in addr;
} url_t;

static url_t urls[8];
static int nurls;
static const char *token;
static conn_t *conns;
static size_t nready, nfailed, ndead;
static int ep;
static double *lat; /* ms, this phase */
static size_t nlat, caplat;
static uint64_t *delivered; /* per message index */
static size_t ndelivered_total;
static double last_recv_ms;
static char errors[512];

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void note_error(const char *what)
{
    if (strstr(errors, what) == NULL && strlen(errors) + strlen(what) + 3 < sizeof(errors)) {
        if (errors[0])
            strcat(errors, "; ");
        strcat(errors, what);
    }
}

/* ---------------------------------------------------------------- frames */

static void send_text(conn_t *c, const char *text, size_t len)
{
    uint8_t buf[8192];
    size_t hl = 2;
    buf[0] = 0x81;
    if (len < 126) {
        buf[1] = 0x80 | (uint8_t)len;
    } else {
        buf[1] = 0x80 | 126;
        buf[2] = (uint8_t)(len >> 8);
        buf[3] = (uint8_t)len;
        hl = 4;
    }
    uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
    memcpy(buf + hl, mask, 4);
    hl += 4;
    if (hl + len > sizeof(buf))
        return;
    for (size_t i = 0; i < len; i++)
        buf[hl + i] = (uint8_t)text[i] ^ mask[i & 3];
    if (write(c->fd, buf, hl + len) != (ssize_t)(hl + len))
        note_error("short write");
}

static void kill_conn(conn_t *c, const char *why)
{
    if (c->state == ST_DEAD)
        return;
    if (c->state == ST_READY) {
        ndead++;
        nready--;
    } else {
        nfailed++;
    }
    note_error(why);
    c->state = ST_DEAD;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->rest);
    c->rest = NULL;
}

static void on_packet(conn_t *c, const char *p, size_t len, double t_read)
{
    if (len == 0)
        return;
    if (p[0] == '2' && len == 1) {
        send_text(c, "3", 1);
    } else if (p[0] == '0' && c->state == ST_OPEN) {
        char buf[4200];
        int n = snprintf(buf, sizeof(buf), "40{\"token\":\"%s\"}", token);
        send_text(c, buf, (size_t)n);
        c->state = ST_AUTH;
    } else if (len >= 3 && memcmp(p, "40{", 3) == 0 && c->state == ST_AUTH) {
        c->state = ST_READY;
        nready++;
    } else if (len >= 2 && memcmp(p, "44", 2) == 0) {
        kill_conn(c, "connect_error");
    } else if (len > 11 && memcmp(p, "42[\"bench\"", 10) == 0) {
        const char *t = memmem(p, len, "\"t\":", 4), *i = memmem(p, len, "\"i\":", 4);
        if (t != NULL && i != NULL) {
            double sent = strtod(t + 4, NULL);
            long idx = strtol(i + 4, NULL, 10);
            if (nlat == caplat) {
                caplat = caplat ? caplat * 2 : 65536;
                lat = realloc(lat, caplat * sizeof(*lat));
            }
            lat[nlat++] = t_read - sent;
            if (idx >= 0 && idx < 4096)
                delivered[idx]++;
            ndelivered_total++;
            last_recv_ms = t_read;
        }
    }
}

static void on_readable(conn_t *c)
{
    static uint8_t buf[1 << 16];
    size_t have = 0;
    if (c->nrest > 0) {
        memcpy(buf, c->rest, c->nrest);
        have = c->nrest;
        free(c->rest);
        c->rest = NULL;
        c->nrest = 0;
    }
    ssize_t n = read(c->fd, buf + have, sizeof(buf) - have);
    double t = now_ms();
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN)
            return;
        kill_conn(c, n == 0 ? "closed by the server" : "read error");
        return;
    }
    have += (size_t)n;
    size_t pos = 0;
    if (c->state == ST_HTTP) {
        uint8_t *end = memmem(buf, have, "\r\n\r\n", 4);
        if (end == NULL) {
            if (have > 4096) {
                kill_conn(c, "bad handshake answer");
                return;
            }
            c->rest = malloc(have);
            memcpy(c->rest, buf, have);
            c->nrest = have;
            return;
        }
        if (have < 12 || memcmp(buf + 9, "101", 3) != 0) {
            kill_conn(c, "upgrade refused");
            return;
        }
        pos = (size_t)(end + 4 - buf);
        c->state = ST_OPEN;
    }
    while (have - pos >= 2 && c->state != ST_DEAD) {
        uint8_t *f = buf + pos;
        int op = f[0] & 0x0f;
        uint64_t plen = f[1] & 0x7f;
        size_t hl = 2;
        if (plen == 126) {
            if (have - pos < 4)
                break;
            plen = (uint64_t)f[2] << 8 | f[3];
            hl = 4;
        } else if (plen == 127) {
            if (have - pos < 10)
                break;
            plen = 0;
            for (int k = 0; k < 8; k++)
                plen = plen << 8 | f[2 + k];
            hl = 10;
        }
        if (have - pos - hl < plen)
            break;
        if (op == 1)
            on_packet(c, (const char *)f + hl, (size_t)plen, t);
        else if (op == 8)
            kill_conn(c, "WebSocket closed by the server");
        pos += hl + (size_t)plen;
    }
    if (c->state != ST_DEAD && pos < have) {
        c->nrest = have - pos;
        c->rest = malloc(c->nrest);
        memcpy(c->rest, buf + pos, c->nrest);
    }
}

/* ---------------------------------------------------------------- connections */

static void start_conn(conn_t *c, size_t k)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) {
        c->state = ST_DEAD;
        nfailed++;
        note_error("socket(): out of file descriptors?");
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(k % 8));
    bind(c->fd, (struct sockaddr *)&src, sizeof(src));
    c->state = ST_CONNECTING;
    if (connect(c->fd, (struct sockaddr *)&urls[c->url].addr, sizeof(urls[c->url].addr)) != 0 && errno != EINPROGRESS) {
        kill_conn(c, "connect failed");
        return;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void on_writable(conn_t *c)
{
    int err = 0;
    socklen_t el = sizeof(err);
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err != 0) {
        kill_conn(c, "connect failed");
        return;
    }
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     inet_ntoa(urls[c->url].addr.sin_addr), ntohs(urls[c->url].addr.sin_port));
    if (write(c->fd, req, (size_t)n) != n) {
        kill_conn(c, "handshake write failed");
        return;
    }
    c->state = ST_HTTP;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Runs the loop for up to ms milliseconds (0: one pass without waiting). */
static void run_for(double ms)
{
    double until = now_ms() + ms;
    struct epoll_event evs[512];
    for (;;) {
        double left = until - now_ms();
        int n = epoll_wait(ep, evs, 512, left > 0 ? (int)(left + 0.999) : 0);
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (c->state == ST_CONNECTING)
                on_writable(c);
            else if (c->state != ST_DEAD)
                on_readable(c);
        }
        if (now_ms() >= until)
            return;
    }
}

/* Opens connections [from, to) with at most 200 handshakes at a time; returns the time it took in ms. */
static double open_conns(size_t from, size_t to)
{
    double t0 = now_ms();
    size_t next = from, settled0 = nready + nfailed + ndead;
    while (now_ms() - t0 < 600000) {
        size_t pending = next - from - (nready + nfailed + ndead - settled0);
        while (pending < 200 && next < to) {
            conns[next].url = (uint8_t)(next % (size_t)nurls);
            start_conn(&conns[next], next);
            next++;
            pending++;
        }
        if (next == to && pending == 0)
            break;
        run_for(5);
    }
    return now_ms() - t0;
}

/* ---------------------------------------------------------------- emit */

static void emit(int u, int idx, double *sent)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&urls[u].addr, sizeof(urls[u].addr)) != 0) {
        note_error("emit: connect failed");
        close(fd);
        return;
    }
    char body[256], req[4096 + 512];
    *sent = now_ms();
    int bl = snprintf(body, sizeof(body), "{\"to\":\"tenant\",\"event\":\"bench\",\"data\":{\"t\":%.3f,\"i\":%d}}", *sent, idx);
    int n = snprintf(req, sizeof(req),
                     "POST /v1/realtime/emit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer %s\r\n"
                     "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                     token, bl, body);
    if (write(fd, req, (size_t)n) != n)
        note_error("emit: short write");
    /* the answer (202) is read later, off the measured path */
    static int pending[64];
    static int npending;
    if (npending == 64) {
        for (int i = 0; i < npending; i++)
            close(pending[i]);
        npending = 0;
    }
    pending[npending++] = fd;
}

/* ---------------------------------------------------------------- main */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *sorted, size_t n, double p)
{
    if (n == 0)
        return -1;
    size_t i = (size_t)((double)n * p);
    return sorted[i < n ? i : n - 1];
}

static long rss_kb(const char *pids)
{
    long total = 0;
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", pids);
    for (char *p = strtok(buf, ","); p != NULL; p = strtok(NULL, ",")) {
        char path[64], line[256];
        snprintf(path, sizeof(path), "/proc/%s/status", p);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            return -1;
        while (fgets(line, sizeof(line), f) != NULL)
            if (strncmp(line, "VmRSS:", 6) == 0)
                total += strtol(line + 6, NULL, 10);
        fclose(f);
    }
    return total;
}

static const char *arg(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 2; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return def;
}

static void parse_urls(const char *list)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", list);
    for (char *p = strtok(buf, ","); p != NULL && nurls < 8; p = strtok(NULL, ",")) {
        if (strncmp(p, "http://", 7) == 0)
            p += 7;
        char *colon = strrchr(p, ':');
        if (colon == NULL)
            continue;
        *colon = '\0';
        urls[nurls].addr.sin_family = AF_INET;
        urls[nurls].addr.sin_port = htons((uint16_t)atoi(colon + 1));
        inet_pton(AF_INET, p, &urls[nurls].addr.sin_addr);
        nurls++;
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: rt_load memory|fanout --urls H:P[,H:P] --token T ... (see the header)\n");
        return 2;
    }
    const char *mode = argv[1];
    parse_urls(arg(argc, argv, "--urls", "127.0.0.1:8080"));
    token = arg(argc, argv, "--token", "");
    if (nurls == 0 || strlen(token) > 4000) {
        fprintf(stderr, "rt_load: --urls and --token (at most 4000 bytes) are needed\n");
        return 2;
    }
    ep = epoll_create1(0);
    delivered = calloc(4096, sizeof(*delivered));
    if (strcmp(mode, "memory") == 0) {
        const char *pids = arg(argc, argv, "--pids", "");
        char counts[256];
        snprintf(counts, sizeof(counts), "%s", arg(argc, argv, "--counts", "1000"));
        size_t max = 0;
        for (char *p = counts; *p;) {
            size_t v = strtoul(p, &p, 10);
            max = v > max ? v : max;
            if (*p == ',')
                p++;
        }
        conns = calloc(max, sizeof(*conns));
        run_for(500);
        long before = rss_kb(pids);
        fprintf(stderr, "rt_load: VmRSS before: %ld kB\n", before);
        size_t have = 0;
        for (char *p = counts; *p;) {
            size_t n = strtoul(p, &p, 10);
            if (*p == ',')
                p++;
            if (n <= have)
                continue;
            double ms = open_conns(have, n);
            have = n;
            fprintf(stderr, "rt_load: %zu connected, %zu failed in %.0f ms; 2 s quiet\n", nready, nfailed, ms);
            run_for(2000);
            long after = rss_kb(pids);
            printf("{\"kind\":\"memory\",\"target\":%zu,\"connected\":%zu,\"failed\":%zu,\"open_ms\":%.0f,\"rss_before_kb\":%ld,"
                   "\"rss_after_kb\":%ld,\"kb_per_conn\":%.2f,\"instances\":%d,\"errors\":\"%s\"}\n",
                   n, nready, nfailed + ndead, ms, before, after, nready ? (double)(after - before) / (double)nready : -1.0, nurls, errors);
            fflush(stdout);
        }
        double hold = atof(arg(argc, argv, "--hold", "0"));
        if (hold > 0) {
            fprintf(stderr, "rt_load: holding for %.0f s\n", hold);
            run_for(hold * 1000);
        }
        return 0;
    }
    if (strcmp(mode, "fanout") == 0) {
        size_t n = strtoul(arg(argc, argv, "--n", "1000"), NULL, 10);
        int messages = atoi(arg(argc, argv, "--messages", "20"));
        if (messages < 1 || messages > 2000)
            messages = 20;
        conns = calloc(n, sizeof(*conns));
        double ms = open_conns(0, n);
        fprintf(stderr, "rt_load: %zu connected, %zu failed in %.0f ms\n", nready, nfailed, ms);
        run_for(1000);
        size_t members = nready;
        printf("{\"kind\":\"setup\",\"target\":%zu,\"connected\":%zu,\"failed\":%zu,\"open_ms\":%.0f,\"errors\":\"%s\"}\n", n, members,
               nfailed, ms, errors);
        fflush(stdout);
        /* 1. one at a time */
        nlat = 0;
        double *last = calloc((size_t)messages, sizeof(double)), *rate = calloc((size_t)messages, sizeof(double));
        for (int i = 0; i < messages; i++) {
            double sent, t0 = now_ms();
            emit(i % nurls, i, &sent);
            while (delivered[i] < nready && now_ms() - t0 < 10000)
                run_for(1);
            last[i] = last_recv_ms - sent;
            if (getenv("RT_LOAD_VERBOSE") != NULL)
                fprintf(stderr, "rt_load: message %d: %llu deliveries, the last after %.1f ms\n", i, (unsigned long long)delivered[i], last[i]);
            rate[i] = (double)delivered[i] / (last[i] / 1000);
            run_for(50);
        }
        qsort(lat, nlat, sizeof(*lat), cmp_double);
        qsort(last, (size_t)messages, sizeof(double), cmp_double);
        qsort(rate, (size_t)messages, sizeof(double), cmp_double);
        printf("{\"kind\":\"paced\",\"members\":%zu,\"messages\":%d,\"deliveries\":%zu,\"expected\":%zu,\"p50_ms\":%.2f,\"p99_ms\":%.2f,"
               "\"max_ms\":%.2f,\"last_delivery_median_ms\":%.2f,\"deliveries_per_s_median\":%.0f}\n",
               members, messages, nlat, members * (size_t)messages, pct(lat, nlat, 0.5), pct(lat, nlat, 0.99), pct(lat, nlat, 1.0),
               pct(last, (size_t)messages, 0.5), pct(rate, (size_t)messages, 0.5));
        fflush(stdout);
        /* 2. back to back */
        nlat = 0;
        size_t base = ndelivered_total;
        double first = 0, sent;
        for (int i = 0; i < messages; i++) {
            emit(i % nurls, messages + i, &sent);
            if (i == 0)
                first = sent;
        }
        double t0 = now_ms();
        while (ndelivered_total - base < members * (size_t)messages && now_ms() - t0 < 30000)
            run_for(1);
        size_t got = ndelivered_total - base;
        double window = (last_recv_ms - first) / 1000;
        qsort(lat, nlat, sizeof(*lat), cmp_double);
        printf("{\"kind\":\"burst\",\"members\":%zu,\"messages\":%d,\"deliveries\":%zu,\"expected\":%zu,\"p50_ms\":%.2f,\"p99_ms\":%.2f,"
               "\"window_s\":%.3f,\"deliveries_per_s\":%.0f,\"errors\":\"%s\"}\n",
               members, messages, got, members * (size_t)messages, pct(lat, nlat, 0.5), pct(lat, nlat, 0.99), window,
               (double)got / window, errors);
        fflush(stdout);
        return 0;
    }
    fprintf(stderr, "rt_load: unknown mode %s\n", mode);
    return 2;
}
