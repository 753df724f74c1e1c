"""Reporting: the pipeline's Markdown report, the offline ``dvc plots`` template, and the pull-request
comment with its regression gate (``pr``). May import every layer up to ``tracking``; not ``sweep`` or
``team``.
"""
