/* progress.c — a one-line progress bar on stderr for long work.
 * Redraws at most every 100 ms; draws nothing unless stderr is a terminal
 * and quiet mode is off, so logs and pipes stay clean. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base.h"

static bool g_quiet = false;

void progress_set_quiet(bool quiet) { g_quiet = quiet; }

bool progress_enabled(void) { return !g_quiet && isatty(STDERR_FILENO); }

static void human_count(char *buf, size_t n, double v) {
    if (v >= 1e9) snprintf(buf, n, "%.2fG", v / 1e9);
    else if (v >= 1e6) snprintf(buf, n, "%.2fM", v / 1e6);
    else if (v >= 1e4) snprintf(buf, n, "%.1fk", v / 1e3);
    else snprintf(buf, n, "%.0f", v);
}

static void human_time(char *buf, size_t n, double s) {
    if (s < 60) snprintf(buf, n, "%.0fs", s);
    else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

void progress_format(const progress *p, uint64_t now_ns, char *buf, size_t n) {
    double el = (double)(now_ns - p->start_ns) / 1e9;
    double rate = el > 0 ? (double)p->done / el : 0;
    char done[32], total[32], r[32], eta[32];
    human_count(done, sizeof done, (double)p->done);
    human_count(r, sizeof r, rate);
    if (p->total) {
        enum { W = 24 };
        double frac = (double)p->done / (double)p->total;
        if (frac > 1) frac = 1;
        int fill = (int)(frac * W);
        char bar[W + 1];
        for (int i = 0; i < W; i++) bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
        bar[W] = 0;
        human_count(total, sizeof total, (double)p->total);
        if (rate > 0 && p->done < p->total)
            human_time(eta, sizeof eta, (double)(p->total - p->done) / rate);
        else
            human_time(eta, sizeof eta, p->done >= p->total ? el : 0);
        snprintf(buf, n, "%s [%s] %3d%% %s/%s %s/s %s %s", p->label, bar,
                 (int)(frac * 100), done, total, r,
                 p->done >= p->total ? "in" : "ETA", eta);
    } else {
        human_time(eta, sizeof eta, el);
        snprintf(buf, n, "%s %s %s/s %s", p->label, done, r, eta);
    }
}

static void progress_draw(progress *p, uint64_t now) {
    char line[256];
    progress_format(p, now, line, sizeof line);
    fprintf(stderr, "\r%s\033[K", line);
    fflush(stderr);
    p->last_draw_ns = now;
    p->drawn = true;
}

void progress_begin(progress *p, const char *label, uint64_t total) {
    memset(p, 0, sizeof *p);
    p->label = label;
    p->total = total;
    p->start_ns = timer_now_ns();
    p->active = progress_enabled();
}

void progress_set_total(progress *p, uint64_t total) { p->total = total; }

void progress_update(progress *p, uint64_t done) {
    p->done = done;
    if (!p->active) return;
    uint64_t now = timer_now_ns();
    if (now - p->last_draw_ns >= 100000000ULL) progress_draw(p, now);
}

void progress_end(progress *p) {
    if (!p->active) return;
    if (p->total && p->done < p->total) p->total = p->done;
    progress_draw(p, timer_now_ns());
    fputc('\n', stderr);
    p->active = false;
}
