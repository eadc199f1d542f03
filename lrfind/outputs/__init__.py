"""What a run leaves behind: run directories, plots, reports and schedule snippets."""
