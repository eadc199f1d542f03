"""The package version (a leaf: nothing else imports the package root for it)."""

__version__ = "0.1.0"
