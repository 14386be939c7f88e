/* experiment.c — measurements of the conversational recommender
 * (`tailor experiment NAME`): where a turn's time goes, step by step, and
 * what each memory policy keeps of facts stated long ago. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "eval/eval.h"

/* Requests of every kind the tools serve, in the words people use; run in
 * sessions of ten, so that "more" and "why" have something to refer to. */
static const char *const SUITE[] = {
    "recommend me something",      "three comedies from the 90s", "more",
    "why",                         "something like Toy Story",    "films about time travel",
    "tell me about Jurassic Park", "no horror",                   "scary movies please",
    "hidden gems",                 "dramas",                      "thrillers before 1980",
    "movies similar to Heat",      "find something about zombies", "I loved Forrest Gump",
    "recommend something",         "more",                        "what do you know about me",
    "forget my constraints",       "sci-fi from the 80s",         "two westerns",
    "a couple of musicals",        "animated films for kids",     "star wars",
    "info on Fargo",               "more like Pulp Fiction",      "romantic comedies",
    "anything after 2010",         "war movies",                  "why",
};
enum { N_SUITE = sizeof SUITE / sizeof SUITE[0] };

static int dcmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double q) {
    if (n == 0) return 0;
    qsort(v, (size_t)n, sizeof *v, dcmp);
    int i = (int)ceil(q * n) - 1;
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

int eval_tool_latency(pz_engine *e, llm_backend *b, int rounds, FILE *f, sb *json, tailor_error *err) {
    enum { STEPS = 6 };
    static const char *const names[STEPS] = {"context", "intent", "tools", "answer", "store", "turn"};
    int total = rounds * N_SUITE, n = 0;
    double *v[STEPS];
    for (int s = 0; s < STEPS; s++) v[s] = xcalloc((size_t)total + 1, sizeof(double));
    int rc = 0, calls = 0;
    agent *a = NULL;
    for (int r = 0; r < rounds && !rc; r++)
        for (int i = 0; i < N_SUITE && !rc; i++) {
            if (i % 10 == 0) {
                agent_free(a);
                a = NULL;
                if ((rc = agent_new(e, b, agent_default_params(), &a, err))) break;
            }
            agent_reply rep;
            uint64_t t0 = timer_now_ns();
            if ((rc = agent_turn(a, SUITE[i], NULL, NULL, &rep, err))) break;
            double all = timer_seconds_since(t0) * 1000;
            double step[STEPS] = {rep.ms_context, rep.ms_intent, rep.ms_tools, rep.ms_answer, rep.ms_store, all};
            for (int s = 0; s < STEPS; s++) v[s][n] = step[s];
            n++;
            calls += rep.n_calls;
            agent_reply_deinit(&rep);
        }
    agent_free(a);
    if (!rc) {
        fprintf(f, "tool latency, %s backend: %d turns (%d requests x %d), %d tool calls; ms per turn\n\n",
                b->ops->name, n, N_SUITE, rounds, calls);
        fprintf(f, "%-8s %9s %9s %9s %9s\n", "step", "mean", "p50", "p99", "max");
        sb_printf(json, "{\"experiment\":\"tool-latency\",\"backend\":\"%s\",\"turns\":%d,\"tool_calls\":%d,\"steps\":{",
                  b->ops->name, n, calls);
        for (int s = 0; s < STEPS; s++) {
            double mean = 0;
            for (int i = 0; i < n; i++) mean += v[s][i];
            mean /= n ? n : 1;
            double p50 = pct(v[s], n, 0.5), p99 = pct(v[s], n, 0.99), mx = n ? v[s][n - 1] : 0;
            fprintf(f, "%-8s %9.3f %9.3f %9.3f %9.3f\n", names[s], mean, p50, p99, mx);
            sb_printf(json, "%s\"%s\":{\"mean\":%.4f,\"p50\":%.4f,\"p99\":%.4f,\"max\":%.4f}", s ? "," : "", names[s],
                      mean, p50, p99, mx);
        }
        sb_puts(json, "}}");
        fprintf(f, "(context: assembling what the backend sees; intent: its first reply; tools: running them; "
                   "answer: its later replies; store: keeping the turn)\n");
    }
    for (int s = 0; s < STEPS; s++) free(v[s]);
    return rc;
}

/* ---- context stress --------------------------------------------------------- */

static const char *const WHO[] = {"sister", "brother", "father", "mother", "neighbour",
                                  "colleague", "uncle", "aunt", "cousin", "teacher"};
static const char *const WHAT[] = {"submarines", "dragons", "volcanoes", "pirates", "robots",
                                   "vampires", "samurai", "dinosaurs", "astronauts", "lighthouses"};
static const char *const FILLER[] = {"dramas", "comedies from the 90s", "more", "something like Toy Story",
                                     "thrillers", "why"};

static void svg_chart(sb *o, const double (*ret)[32], int n_points, const double *x, const char *const *labels) {
    const int W = 560, H = 320, L = 50, R = 120, T = 20, B = 40;
    double xmax = x[n_points - 1];
    sb_printf(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" "
                 "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", W, H);
    int pw = W - L - R, ph = H - T - B;
    for (int g = 0; g <= 4; g++) { /* y grid: 0..100% */
        int y = T + ph - ph * g / 4;
        sb_printf(o, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#ddd\"/><text x=\"%d\" y=\"%d\" "
                     "text-anchor=\"end\">%d%%</text>\n",
                  L, y, L + pw, y, L - 6, y + 4, 25 * g);
    }
    for (int i = 0; i < n_points; i++) {
        int xx = L + (int)(pw * x[i] / xmax);
        sb_printf(o, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", xx, T + ph + 16, x[i]);
    }
    sb_printf(o, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">conversation length (x the context window)</text>\n",
              L + pw / 2, H - 6);
    static const char *const colors[] = {"#c0392b", "#2471a3", "#229954"};
    for (int p = 0; p < 3; p++) {
        sb_printf(o, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", colors[p]);
        for (int i = 0; i < n_points; i++)
            sb_printf(o, "%d,%d ", L + (int)(pw * x[i] / xmax), T + ph - (int)(ph * ret[p][i]));
        sb_printf(o, "\"/>\n<text x=\"%d\" y=\"%d\" fill=\"%s\">%s</text>\n", L + pw + 8, T + 16 + 18 * p, colors[p],
                  labels[p]);
    }
    sb_puts(o, "</svg>\n");
}

int eval_context_stress(pz_engine *e, llm_backend *b, int32_t budget, int turns, const char *report_dir, FILE *f,
                        sb *json, tailor_error *err) {
    enum { EVERY = 5, STEP = 10 };
    int n_points = turns / STEP;
    if (n_points > 32) n_points = 32;
    double ret[3][32] = {{0}}, xs[32] = {0};
    int window = 0, rc = 0;
    for (int p = 0; p < 3 && !rc; p++) {
        agent_params ap = agent_default_params();
        ap.memory = (agent_memory)p;
        ap.context_budget = budget;
        agent *a = NULL;
        if ((rc = agent_new(e, b, ap, &a, err))) break;
        int facts = 0, point = 0;
        for (int t = 1; t <= n_points * STEP && !rc; t++) {
            char say[160];
            if (t % EVERY == 1 && facts < 10) {
                snprintf(say, sizeof say, "remember that my %s loves films about %s", WHO[facts], WHAT[facts]);
                facts++;
            } else {
                snprintf(say, sizeof say, "%s", FILLER[t % 6]);
            }
            agent_reply r;
            if ((rc = agent_turn(a, say, NULL, NULL, &r, err))) break;
            if (p == 0 && r.turns_kept > window) window = r.turns_kept;
            agent_reply_deinit(&r);
            if (t % STEP) continue;
            /* Probe: would each fact stated so far be in front of the model? */
            int kept = 0;
            for (int k = 0; k < facts; k++) {
                char ask[160];
                snprintf(ask, sizeof ask, "what does my %s love?", WHO[k]);
                sb ctx;
                sb_init(&ctx);
                if (!agent_context_preview(a, ask, &ctx, NULL, NULL, err)) kept += strstr(sb_str(&ctx), WHAT[k]) != NULL;
                sb_deinit(&ctx);
            }
            ret[p][point] = facts ? (double)kept / facts : 0;
            xs[point] = t;
            point++;
        }
        agent_free(a);
    }
    if (rc) return rc;
    if (window < 1) window = 1;
    for (int i = 0; i < n_points; i++) xs[i] /= window;
    static const char *const labels[] = {"truncate", "summarize", "retrieve"};
    fprintf(f, "context stress, %s backend: a budget of %d tokens holds about %d turns whole; a fact is stated "
               "every %d turns (10 in all); retention = share of the facts stated so far that are in what the "
               "backend sees when asked about each\n\n%-10s",
            b->ops->name, budget, window, EVERY, "turns");
    for (int i = 0; i < n_points; i++) fprintf(f, " %6d", (i + 1) * STEP);
    fprintf(f, "\n%-10s", "x window");
    for (int i = 0; i < n_points; i++) fprintf(f, " %6.1f", xs[i]);
    fputc('\n', f);
    sb_printf(json, "{\"experiment\":\"context-stress\",\"backend\":\"%s\",\"budget\":%d,\"window_turns\":%d,\"turns\":[",
              b->ops->name, budget, window);
    for (int i = 0; i < n_points; i++) sb_printf(json, "%s%d", i ? "," : "", (i + 1) * STEP);
    sb_puts(json, "],\"retention\":{");
    for (int p = 0; p < 3; p++) {
        fprintf(f, "%-10s", labels[p]);
        sb_printf(json, "%s\"%s\":[", p ? "," : "", labels[p]);
        for (int i = 0; i < n_points; i++) {
            fprintf(f, " %5.0f%%", 100 * ret[p][i]);
            sb_printf(json, "%s%.4f", i ? "," : "", ret[p][i]);
        }
        fputc('\n', f);
        sb_putc(json, ']');
    }
    sb_puts(json, "}}");
    if (report_dir) {
        if ((rc = mkdir_p(report_dir, err))) return rc;
        sb svg;
        sb_init(&svg);
        svg_chart(&svg, ret, n_points, xs, labels);
        char *path = path_join(report_dir, "context-stress.svg");
        FILE *o = fopen(path, "wb");
        if (!o || fwrite(svg.buf, 1, svg.len, o) != svg.len) rc = err_set(err, TAILOR_EIO, "cannot write %s", path);
        if (o) fclose(o);
        if (!rc) fprintf(f, "chart: %s\n", path);
        free(path);
        sb_deinit(&svg);
    }
    return rc;
}
