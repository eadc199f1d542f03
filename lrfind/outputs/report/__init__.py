"""Reports in text, Markdown, JUnit XML and HTML."""
