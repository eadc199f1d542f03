"""Figures (matplotlib, Agg): one run, an overlay of runs, constant-LR trials."""
