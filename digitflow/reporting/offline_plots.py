"""An HTML template that makes ``dvc plots show`` work offline.

DVC's HTML loads Vega, Vega-Lite and Vega-Embed from a CDN, so its page is blank without a network.
``dvc plots show --html-template FILE`` takes a page of our own instead: one with ``{plot_divs}``
(where DVC puts each plot) and no ``{scripts}`` (where DVC would put its CDN tags). This module
builds that page with the three libraries inlined, at the exact versions DVC's renderer asks for,
taken from their packages on the npm registry (``npm pack``; no package on PyPI ships Vega-Lite 5 as
a browser bundle). The result is self-contained: ``dvc_plots/index.html`` opens anywhere, offline.

    digitflow offline-plots            # once; needs npm (Node.js)
    dvc plots show --html-template .dvc/tmp/plots-offline.html
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from digitflow.core import paths
from digitflow.core.errors import DigitflowError
from digitflow.core.io import write_text

PAGE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {{refresh_tag}}
    <title>DVC Plot</title>
{scripts}
    <style>
        table {{ border-spacing: 15px; }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def dvc_vega_packages() -> list[tuple[str, str]]:
    """``(package, version)`` of each script DVC's Vega renderer loads, in its order."""
    from dvc_render.vega import VegaRenderer

    found = re.findall(r"/npm/(vega(?:-[a-z]+)?)@([0-9][0-9.]*)", VegaRenderer.SCRIPTS)
    if {name for name, _ in found} != {"vega", "vega-lite", "vega-embed"}:
        raise DigitflowError(f"unexpected scripts in dvc-render's Vega renderer: {VegaRenderer.SCRIPTS.strip()}")
    return found


def fetch_bundles(packages: list[tuple[str, str]], workdir: Path) -> dict[str, str]:
    """Each package's browser bundle (``build/<name>.min.js``) from the npm registry, by name."""
    npm = shutil.which("npm")
    if npm is None:
        raise DigitflowError(
            "npm (Node.js) is needed to fetch Vega, Vega-Lite and Vega-Embed from the npm registry; "
            "install Node.js, or use plain `dvc plots show` while online."
        )
    specs = [f"{name}@{version}" for name, version in packages]
    result = subprocess.run([npm, "pack", "--silent", *specs], cwd=workdir, capture_output=True, text=True)
    if result.returncode != 0:
        raise DigitflowError(f"`npm pack {' '.join(specs)}` failed:\n{result.stderr.strip()}")
    bundles = {}
    for name, version in packages:
        with tarfile.open(workdir / f"{name}-{version}.tgz") as archive:
            member = archive.extractfile(f"package/build/{name}.min.js")
            if member is None:
                raise DigitflowError(f"{name}@{version} has no build/{name}.min.js")
            bundles[name] = member.read().decode("utf-8")
    return bundles


def build_template(bundles: dict[str, str]) -> str:
    """The page, with each bundle inlined in its own script element."""
    # "</script" inside a bundle would end its element early; "<\\/script" is the same JavaScript.
    escaped = {name: code.replace("</script", "<\\/script") for name, code in bundles.items()}
    scripts = "\n".join(f"    <script>/* {name} */\n{code}\n    </script>" for name, code in escaped.items())
    return PAGE.format(scripts=scripts)


def write_offline_template(output: Path = paths.OFFLINE_PLOTS_TEMPLATE) -> str:
    """Build the template at ``output``; return what was written, for the command's one line."""
    packages = dvc_vega_packages()
    with tempfile.TemporaryDirectory(prefix="digitflow-vega-") as tmp:
        bundles = fetch_bundles(packages, Path(tmp))
    output.parent.mkdir(parents=True, exist_ok=True)
    write_text(output, build_template(bundles))
    versions = ", ".join(f"{name} {version}" for name, version in packages)
    return f"wrote {output} ({versions}); use: dvc plots show --html-template {output}"
