"""TODO reporting/pr."""
