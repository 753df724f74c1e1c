"""Evaluation: the metrics both models share (so their numbers mean the same thing), the per-model
evaluation on the test set, its text log and Excel workbook, and the matplotlib figures every report
draws. May import ``core``, ``data`` and ``models``.
"""
