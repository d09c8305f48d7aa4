"""Reports: the JSON model, the human table, Markdown, and diagnostics as text."""
