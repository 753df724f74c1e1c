"""TODO team."""
