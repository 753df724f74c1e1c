"""The pull-request report: one Markdown comment comparing a branch's results with its base, and a gate.

Everything a reviewer needs to judge a change to the pipeline in one place: the test metrics of both
models (base, new, change), the parameters that changed, confusion matrices and learning curves of
both sides as PNG images, and a verdict from the regression gate configured in ``params.yaml``.

The values come from DVC's own tools (``dvc metrics diff`` and ``dvc params diff``), not from a
re-implementation, so the comment agrees with what a developer sees locally. The metric and plot files
are ``cache: false`` in ``dvc.yaml`` and committed to git, so the base side needs no DVC remote: only
the base commit, which ``revisions.resolve_base`` fetches from ``origin`` when a shallow clone lacks it.

Pure parts (``diff`` parses, ``gate`` decides, ``markdown`` and ``cells`` render) and the parts that read
git, DVC and files (``revisions``, ``images``), assembled by ``build``. May import every lower layer.
"""
