"""Data sources: built-in sets, files, user factories, and the loaders a sweep reads from."""
