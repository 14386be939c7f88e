/* output.c — the evaluation table, its JSON form, and the markdown report
 * with an SVG chart. Every output names split and protocol; intervals are
 * 95% intervals of the mean over users (eval_stat_of). Paired comparisons
 * are against the first model listed (the baseline). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval.h"

static void describe_split(const eval_report_info *info, sb *out) {
    const eval_split_params *p = info->split_params;
    if (p->kind == EVAL_SPLIT_LOO)
        sb_puts(out, "leave-last-one-out (validation: second-last)");
    else
        sb_printf(out, "%s, %.0f%% test (validation: %.0f%% of the rest)",
                  p->kind == EVAL_SPLIT_TEMPORAL ? "global temporal" : "random per user", 100 * p->ratio,
                  100 * p->ratio);
    if (p->kcore > 0) sb_printf(out, ", %d-core", p->kcore);
}

/* Primary metric for comparisons: NDCG at the first K. */
static const double *per_user(const eval_result *r, int ki, int mi, double *buf) {
    for (int64_t u = 0; u < r->n_users; u++) buf[u] = r->values[(u * r->nk + ki) * EVAL_M_PER_USER + mi];
    return buf;
}

/* "0.1234 [.1100,.1400]": a mean and its interval in 20 columns. */
static void cell(char *buf, size_t n, const eval_stat *st) {
    char lo[16], hi[16];
    snprintf(lo, sizeof lo, "%.4f", st->lo);
    snprintf(hi, sizeof hi, "%.4f", st->hi);
    snprintf(buf, n, "%.4f [%s,%s]", st->mean, lo[0] == '0' ? lo + 1 : lo, hi[0] == '0' ? hi + 1 : hi);
}

void eval_print_table(FILE *f, const eval_report_info *info, const eval_result *r, int n, bool wide) {
    sb d;
    sb_init(&d);
    describe_split(info, &d);
    fprintf(f, "dataset:  %s (%d users, %d items)\nsplit:    %s\nprotocol: ", info->dataset,
            info->split->n_users, info->split->n_items, sb_str(&d));
    sb_clear(&d);
    eval_protocol_describe(info->protocol, &d);
    fprintf(f, "%s\nusers evaluated: %lld; mean [95%% interval: Wilson for hr, t clipped to [0, 1] for the rest]\n\n",
            sb_str(&d), n ? (long long)r[0].n_users : 0LL);
    sb_deinit(&d);
    if (!n) return;
    int w = 5; /* the model column fits the longest name */
    for (int i = 0; i < n; i++)
        if ((int)strlen(r[i].model) > w) w = (int)strlen(r[i].model);
    if (wide) {
        /* Every per-user metric at every K, in one row per model. */
        fprintf(f, "%-*s %7s", w, "model", "train s");
        for (int ki = 0; ki < r[0].nk; ki++)
            for (int m = 0; m < EVAL_M_PER_USER; m++) {
                char h[32];
                snprintf(h, sizeof h, "%s@%d", eval_metric_names[m], r[0].ks[ki]);
                fprintf(f, " %-20s", h);
            }
        fputc('\n', f);
        for (int i = 0; i < n; i++) {
            fprintf(f, "%-*s %7.2f", w, r[i].model, r[i].train_s);
            for (int ki = 0; ki < r[i].nk; ki++)
                for (int m = 0; m < EVAL_M_PER_USER; m++) {
                    char c[48];
                    cell(c, sizeof c, &r[i].stats[ki][m]);
                    fprintf(f, " %-20s", c);
                }
            fputc('\n', f);
        }
    } else {
        /* One row per model and K: fits 100 columns whatever the Ks. */
        fprintf(f, "%-*s %7s %5s  %-20s  %-20s  %6s  %6s\n", w, "model", "train s", "K", "hr", "ndcg", "mrr", "recall");
        for (int i = 0; i < n; i++)
            for (int ki = 0; ki < r[i].nk; ki++) {
                char hr[48], nd[48];
                cell(hr, sizeof hr, &r[i].stats[ki][EVAL_M_HR]);
                cell(nd, sizeof nd, &r[i].stats[ki][EVAL_M_NDCG]);
                if (ki == 0) fprintf(f, "%-*s %7.2f", w, r[i].model, r[i].train_s);
                else fprintf(f, "%-*s %7s", w, "", "");
                fprintf(f, " %5d  %-20s  %-20s  %.4f  %.4f\n", r[i].ks[ki], hr, nd, r[i].stats[ki][EVAL_M_MRR].mean,
                        r[i].stats[ki][EVAL_M_RECALL].mean);
            }
    }
    int k0 = r[0].ks[0];
    fprintf(f, "\n%-*s %10s %10s %10s %10s %10s %10s\n", w, "model", "precision", "map", "coverage", "gini",
            "avg pop", "novelty");
    for (int i = 0; i < n; i++)
        fprintf(f, "%-*s %10.4f %10.4f %10.4f %10.4f %10.1f %10.3f\n", w, r[i].model,
                r[i].stats[0][EVAL_M_PRECISION].mean, r[i].stats[0][EVAL_M_MAP].mean, r[i].coverage[0],
                r[i].gini[0], r[i].arp[0], r[i].novelty[0]);
    fprintf(f, "(at K=%d; coverage: share of items shown to anyone; avg pop: training users per shown item)\n", k0);
    if (n > 1) {
        double *a = xmalloc(((size_t)r[0].n_users + 1) * sizeof *a), *b = xmalloc(((size_t)r[0].n_users + 1) * sizeof *b);
        fprintf(f, "\npaired comparison with %s, ndcg@%d (difference, 95%% CI, p-value):\n", r[0].model, k0);
        for (int i = 1; i < n; i++) {
            eval_paired p = eval_paired_test(per_user(&r[i], 0, EVAL_M_NDCG, a), per_user(&r[0], 0, EVAL_M_NDCG, b),
                                             r[0].n_users);
            fprintf(f, "  %-*s %+.4f [%+.4f, %+.4f] p=%.2g\n", w, r[i].model, p.diff, p.lo, p.hi, p.p_value);
        }
        free(a);
        free(b);
    }
}

void eval_write_json(sb *o, const eval_report_info *info, const eval_result *r, int n) {
    sb d;
    sb_init(&d);
    sb_puts(o, "{\"dataset\":");
    sb_json_str(o, info->dataset, strlen(info->dataset));
    sb_printf(o, ",\"users\":%d,\"items\":%d,\"split\":", info->split->n_users, info->split->n_items);
    sb_json_str(o, eval_split_kind_name(info->split_params->kind), strlen(eval_split_kind_name(info->split_params->kind)));
    describe_split(info, &d);
    sb_puts(o, ",\"split_description\":");
    sb_json_str(o, d.buf, d.len);
    sb_printf(o, ",\"protocol\":\"%s\"", info->protocol->kind == EVAL_FULL ? "full" : "sampled");
    sb_clear(&d);
    eval_protocol_describe(info->protocol, &d);
    sb_puts(o, ",\"protocol_description\":");
    sb_json_str(o, d.buf, d.len);
    sb_puts(o, ",\"k\":[");
    for (int ki = 0; n && ki < r[0].nk; ki++) sb_printf(o, "%s%d", ki ? "," : "", r[0].ks[ki]);
    sb_puts(o, "],\"results\":[");
    for (int i = 0; i < n; i++) {
        sb_printf(o, "%s{\"model\":\"%s\",\"params\":%s,\"train_s\":%.4f,\"eval_s\":%.4f,\"users\":%lld,\"metrics\":{",
                  i ? "," : "", r[i].model, r[i].params, r[i].train_s, r[i].eval_s, (long long)r[i].n_users);
        bool first = true;
        for (int ki = 0; ki < r[i].nk; ki++) {
            for (int mi = 0; mi < EVAL_M_PER_USER; mi++) {
                const eval_stat *st = &r[i].stats[ki][mi];
                sb_printf(o, "%s\"%s@%d\":{\"mean\":%.6f,\"ci95\":[%.6f,%.6f]}", first ? "" : ",",
                          eval_metric_names[mi], r[i].ks[ki], st->mean, st->lo, st->hi);
                first = false;
            }
            sb_printf(o, ",\"coverage@%d\":{\"mean\":%.6f},\"gini@%d\":{\"mean\":%.6f},"
                         "\"arp@%d\":{\"mean\":%.6f},\"novelty@%d\":{\"mean\":%.6f}",
                      r[i].ks[ki], r[i].coverage[ki], r[i].ks[ki], r[i].gini[ki], r[i].ks[ki], r[i].arp[ki],
                      r[i].ks[ki], r[i].novelty[ki]);
        }
        sb_puts(o, "}}");
    }
    sb_puts(o, "],\"paired\":[");
    if (n > 1) {
        double *a = xmalloc(((size_t)r[0].n_users + 1) * sizeof *a), *b = xmalloc(((size_t)r[0].n_users + 1) * sizeof *b);
        for (int i = 1; i < n; i++) {
            eval_paired p = eval_paired_test(per_user(&r[i], 0, EVAL_M_NDCG, a), per_user(&r[0], 0, EVAL_M_NDCG, b),
                                             r[0].n_users);
            sb_printf(o, "%s{\"a\":\"%s\",\"b\":\"%s\",\"metric\":\"ndcg@%d\",\"mean_diff\":%.6f,"
                         "\"ci95\":[%.6f,%.6f],\"p_value\":%.6g}",
                      i > 1 ? "," : "", r[i].model, r[0].model, r[0].ks[0], p.diff, p.lo, p.hi, p.p_value);
        }
        free(a);
        free(b);
    }
    sb_puts(o, "]}\n");
    sb_deinit(&d);
}

/* A bar chart of NDCG at the first K with the 95% interval as whiskers. */
static void write_svg(sb *o, const eval_result *r, int n) {
    int W = 640, H = 360, L = 70, R = 20, T = 40, B = 60;
    double maxv = 0;
    for (int i = 0; i < n; i++)
        if (r[i].stats[0][EVAL_M_NDCG].hi > maxv) maxv = r[i].stats[0][EVAL_M_NDCG].hi;
    if (maxv <= 0) maxv = 1;
    maxv *= 1.1;
    sb_printf(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    sb_printf(o, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H);
    sb_printf(o, "<text x=\"%d\" y=\"24\" font-size=\"15\">NDCG@%d per model (95%% CI)</text>\n", L, n ? r[0].ks[0] : 10);
    int ph = H - T - B, pw = W - L - R;
    for (int g = 0; g <= 4; g++) {
        double v = maxv * g / 4;
        int y = T + ph - (int)(ph * g / 4.0);
        sb_printf(o, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#ddd\"/>\n", L, y, W - R, y);
        sb_printf(o, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.3f</text>\n", L - 6, y + 4, v);
    }
    double slot = n ? (double)pw / n : pw;
    for (int i = 0; i < n; i++) {
        const eval_stat *st = &r[i].stats[0][EVAL_M_NDCG];
        int x = L + (int)(slot * i + slot * 0.2), bw = (int)(slot * 0.6);
        int y = T + ph - (int)(ph * st->mean / maxv);
        int ylo = T + ph - (int)(ph * (st->lo > 0 ? st->lo : 0) / maxv), yhi = T + ph - (int)(ph * st->hi / maxv);
        sb_printf(o, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#4c78a8\"/>\n", x, y, bw, T + ph - y);
        int cx = x + bw / 2;
        sb_printf(o, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", cx, ylo, cx, yhi);
        sb_printf(o, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", cx - 6, ylo, cx + 6, ylo);
        sb_printf(o, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", cx - 6, yhi, cx + 6, yhi);
        sb_printf(o, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", cx, T + ph + 18, r[i].model);
        sb_printf(o, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"10\">%.4f</text>\n", cx, T + ph + 34, st->mean);
    }
    sb_puts(o, "</svg>\n");
}

static int write_file(const char *path, const sb *content, tailor_error *err) {
    FILE *f = fopen(path, "wb");
    if (!f) return err_set(err, TAILOR_EIO, "cannot write %s: %s", path, strerror(errno));
    bool ok = fwrite(content->buf, 1, content->len, f) == content->len;
    ok &= fclose(f) == 0;
    return ok ? 0 : err_set(err, TAILOR_EIO, "cannot write %s", path);
}

int eval_write_report(const char *dir, const eval_report_info *info, const eval_result *r, int n,
                      tailor_error *err) {
    int rc = mkdir_p(dir, err);
    if (rc) return rc;
    sb md, d;
    sb_init(&md);
    sb_init(&d);
    sb_printf(&md, "# Evaluation: %s\n\n", info->dataset);
    describe_split(info, &d);
    sb_printf(&md, "- data: %d users, %d items\n- split: %s\n", info->split->n_users, info->split->n_items, sb_str(&d));
    sb_clear(&d);
    eval_protocol_describe(info->protocol, &d);
    sb_printf(&md, "- protocol: %s\n- users evaluated: %lld; figures are means with 95%% confidence intervals over users\n\n",
              sb_str(&d), n ? (long long)r[0].n_users : 0LL);
    sb_puts(&md, "![NDCG per model](ndcg.svg)\n\n| model | params | train s |");
    for (int ki = 0; n && ki < r[0].nk; ki++)
        sb_printf(&md, " HR@%d | NDCG@%d | MRR@%d | Recall@%d |", r[0].ks[ki], r[0].ks[ki], r[0].ks[ki], r[0].ks[ki]);
    sb_puts(&md, "\n|---|---|---:|");
    for (int ki = 0; n && ki < r[0].nk; ki++) sb_puts(&md, "---:|---:|---:|---:|");
    sb_putc(&md, '\n');
    static const int shown[] = {EVAL_M_HR, EVAL_M_NDCG, EVAL_M_MRR, EVAL_M_RECALL};
    for (int i = 0; i < n; i++) {
        sb_printf(&md, "| %s | `%s` | %.2f |", r[i].model, r[i].params, r[i].train_s);
        for (int ki = 0; ki < r[i].nk; ki++)
            for (int m = 0; m < 4; m++) {
                const eval_stat *st = &r[i].stats[ki][shown[m]];
                sb_printf(&md, " %.4f ±%.4f |", st->mean, st->hi - st->mean);
            }
        sb_putc(&md, '\n');
    }
    int k0 = n ? r[0].ks[0] : 10;
    sb_printf(&md, "\nBeyond accuracy at K=%d (from each user's full top-%d list):\n\n"
                   "| model | precision | MAP | coverage | Gini | avg popularity | novelty |\n|---|---:|---:|---:|---:|---:|---:|\n",
              k0, k0);
    for (int i = 0; i < n; i++)
        sb_printf(&md, "| %s | %.4f | %.4f | %.4f | %.4f | %.1f | %.3f |\n", r[i].model, r[i].stats[0][EVAL_M_PRECISION].mean,
                  r[i].stats[0][EVAL_M_MAP].mean, r[i].coverage[0], r[i].gini[0], r[i].arp[0], r[i].novelty[0]);
    if (n > 1) {
        sb_printf(&md, "\nPaired comparison with %s on NDCG@%d (per-user differences):\n\n| model | difference | 95%% CI | p-value |\n|---|---:|---|---:|\n",
                  r[0].model, k0);
        double *a = xmalloc(((size_t)r[0].n_users + 1) * sizeof *a), *b = xmalloc(((size_t)r[0].n_users + 1) * sizeof *b);
        for (int i = 1; i < n; i++) {
            eval_paired p = eval_paired_test(per_user(&r[i], 0, EVAL_M_NDCG, a), per_user(&r[0], 0, EVAL_M_NDCG, b),
                                             r[0].n_users);
            sb_printf(&md, "| %s | %+.4f | [%+.4f, %+.4f] | %.2g |\n", r[i].model, p.diff, p.lo, p.hi, p.p_value);
        }
        free(a);
        free(b);
    }
    char *mdp = path_join(dir, "report.md"), *svgp = path_join(dir, "ndcg.svg");
    rc = write_file(mdp, &md, err);
    sb_clear(&d);
    write_svg(&d, r, n);
    if (!rc) rc = write_file(svgp, &d, err);
    free(mdp);
    free(svgp);
    sb_deinit(&md);
    sb_deinit(&d);
    return rc;
}
