"""What each command does, callable from Python: sweep, check, compare, verify, report, ..."""
