"""The ``lrfind`` command line: one small module per command over the workflows."""
