/* run_plots.h: the run's plots, drawn by gnuplot (Debian's gnuplot-nox) from
 * metrics.csv and confusion.csv into plots/: loss.png, accuracy.png, throughput.png,
 * confusion.png. Without gnuplot the plots are skipped and that is said. */
#ifndef RUN_PLOTS_H
#define RUN_PLOTS_H

#include "stk_err.h"

/* Writes dir/plots/plots.gp and runs gnuplot on it (waits for it). 0, or -1 + err
 * (gnuplot missing or failing). */
int run_plots_draw(const char *dir, StkErr *err);

#endif
