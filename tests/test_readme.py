"""Every command in the README (set-up aside) is run by a test, exactly as written, or says why not.

The list below maps each command to the test that runs it and checks what the README says it shows.
It must equal the README's commands: a command added to, changed in or removed from the README fails
here until a test runs it (tests take their commands from ``tests.readme.readme_command``).
"""

from __future__ import annotations

from tests.readme import commands_in, readme_commands

CHECKED_BY = {
    "dvc repro": "test_pipeline.py: the digits_project fixture (every stage runs, output under 60 lines)",
    "dvc metrics show": "test_pipeline.py::test_readme_metrics_show",
    "dvc params diff --targets params.yaml": "test_pipeline.py::test_readme_params_diff",
    "dvc plots show": "test_pipeline.py::test_readme_plots_show",
    "python -m digitflow.offline_plots": "test_pipeline.py::test_readme_offline_plots",
    "dvc plots show --html-template .dvc/tmp/plots-offline.html": "test_pipeline.py::test_readme_offline_plots",
    "dvc exp run -S data.dataset=mnist": "test_pipeline.py::test_mnist_end_to_end_from_a_local_mirror",
    # A placeholder path: the MNIST test runs the same command with the variable set to its local mirror.
    "DIGITFLOW_MNIST_MIRRORS=/path/to/folder dvc exp run -S data.dataset=mnist": (
        "test_pipeline.py::test_mnist_end_to_end_from_a_local_mirror (DIGITFLOW_MNIST_MIRRORS set to the mirror)"
    ),
    "mlflow ui --backend-store-uri sqlite:///mlflow.db": "test_pipeline.py::test_readme_mlflow_ui",
    "python -m stages.pr_report --base main": "test_pr_report.py::test_weaker_model_fails_the_gate_with_a_full_comment",
    "dvc exp run --queue -S 'train_torch.lr=0.001,0.01' -S 'train_sklearn.C=0.1,10'": (
        "test_experiments.py::test_queued_experiments_land_in_the_repository_store"
    ),
    "dvc queue start -j 2": "test_experiments.py::test_queued_experiments_land_in_the_repository_store",
    "dvc exp show --sort-by torch.test_accuracy --sort-order desc --keep "
    "'Experiment|(sklearn|torch)\\.(test_accuracy|mlflow_run_id)|train_torch\\.lr|train_sklearn\\.C$' --drop '.*'": (
        "test_experiments.py::test_queued_experiments_land_in_the_repository_store"
    ),
    # Not run by the tests: minutes of MNIST training and several clean `dvc repro`s. Its --quick form
    # below runs the same code on small inputs.
    "python benchmarks/run.py": "not run: the full benchmark (minutes); --quick runs the same code",
    # Run with --output / --markdown in a temporary folder added, so the committed results stay as they are.
    "python benchmarks/run.py --quick": "test_benchmark.py (the quick_results fixture, outputs redirected)",
}


def test_every_readme_command_is_checked() -> None:
    commands = readme_commands()
    assert [c for c in commands if c not in CHECKED_BY] == [], "README commands no test runs"
    assert [c for c in CHECKED_BY if c not in commands] == [], "commands checked here but gone from the README"


def test_commands_are_read_as_a_shell_would() -> None:
    markdown = """
## Set-up

```bash
pip install -e .   # skipped: set-up
```

## Use

```bash
dvc exp show --keep 'a|b#c' \\
  --drop '.*'       # a comment
# a whole-line comment
dvc repro
dvc repro           # the same command twice is listed once
```

```
not bash
```
"""
    assert commands_in(markdown) == ["dvc exp show --keep 'a|b#c' --drop '.*'", "dvc repro"]
