/* run_plots.c: gnuplot script for the run's plots (see run_plots.h). */
#include "run_plots.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Rows of metrics.csv are train or eval records; a column is taken from one kind only. */
static const char script[] =
    "set terminal pngcairo size 900,540 noenhanced\n"
    "set datafile separator ','\n"
    "set key autotitle columnhead\n"
    "set grid\n"
    "set xlabel 'step'\n"
    "train(c) = strcol(1) eq 'train' ? column(c) : NaN\n"
    "eval(c) = strcol(1) eq 'eval' ? column(c) : NaN\n"
    "has(kind) = system('grep -q ^' . kind . ', metrics.csv && echo y') eq 'y'\n"
    "if (has('train')) {\n"
    "  set output 'plots/loss.png'\n"
    "  set title 'loss'\n"
    "  plot 'metrics.csv' using 3:(train(4)) with lines title 'train loss', \\\n"
    "       '' using 3:(eval(4)) with points pt 7 title 'val loss'\n"
    "}\n"
    "if (has('eval')) {\n"
    "  set output 'plots/accuracy.png'\n"
    "  set title 'val accuracy (%)'\n"
    "  plot 'metrics.csv' using 3:(eval(8)) with points pt 7 title 'top-1', \\\n"
    "       '' using 3:(eval(9)) with points pt 5 title 'top-5'\n"
    "}\n"
    "if (has('train')) {\n"
    "  set output 'plots/throughput.png'\n"
    "  set title 'training throughput'\n"
    "  set y2tics\n"
    "  set ylabel 'images/s'\n"
    "  set y2label 'input wait (%)'\n"
    "  plot 'metrics.csv' using 3:(train(6)) with lines title 'images/s', \\\n"
    "       '' using 3:(100*train(7)) axes x1y2 with lines title 'input wait %'\n"
    "}\n"
    "unset y2tics; unset y2label; unset ylabel\n"
    "set output 'plots/confusion.png'\n"
    "set title 'confusion matrix, last evaluation (row: true class)'\n"
    "set size ratio -1\n"
    "set xlabel 'predicted'\n"
    "set ylabel 'true'\n"
    "unset key\n"
    "if (system('test -s confusion.csv && echo y') eq 'y') {\n"
    "  k = int(system(\"head -1 confusion.csv | tr , '\\\\n' | wc -l\"))\n"
    "  if (k <= 30) { set xtics 1; set ytics 1 }\n" /* a tick per class while they fit */
    "  set xrange [-0.5:k-0.5]; set yrange [k-0.5:-0.5]\n"
    "  plot 'confusion.csv' matrix with image\n"
    "}\n";

int run_plots_draw(const char *dir, StkErr *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/plots/plots.gp", dir);
    FILE *f = fopen(path, "w");
    if (!f) return stk_errf(err, "write %s: %s", path, strerror(errno));
    fputs(script, f);
    if (fclose(f)) return stk_errf(err, "write %s: %s", path, strerror(errno));
    pid_t pid = fork();
    if (pid < 0) return stk_errf(err, "fork: %s", strerror(errno));
    if (pid == 0) {
        signal(SIGINT, SIG_IGN);
        if (chdir(dir)) _exit(126);
        execlp("gnuplot", "gnuplot", "plots/plots.gp", (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return stk_errf(err, "waitpid gnuplot: %s", strerror(errno));
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
        return stk_errf(err, "gnuplot not found (scripts/setup.sh installs gnuplot-nox)");
    if (!WIFEXITED(st) || WEXITSTATUS(st))
        return stk_errf(err, "gnuplot %s failed", path);
    return 0;
}
