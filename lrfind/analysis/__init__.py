"""Pure analysis (numpy, no torch): curve shape, suggestions, and choosing an LR from trials."""
