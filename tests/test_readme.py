"""Every command in the README (set-up aside) is run by a test, exactly as written, or says why not.

The list below maps each command to the test that runs it and checks what the README says it shows.
It must equal the README's commands: a command added to, changed in or removed from the README fails
here until a test runs it (tests take their commands from ``tests.readme.readme_command``).
"""

from __future__ import annotations

from tests.readme import commands_in, readme_commands

CURL_INVOCATION = (
    "curl -s http://127.0.0.1:5001/invocations -H 'Content-Type: application/json' -d '{\"inputs\": [["
    "0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8, 8, 0, "
    "0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0]]}'"
)

PSQL_SETUP = (
    'sudo -u postgres psql -c "CREATE ROLE sweeps LOGIN PASSWORD \'secret\'" -c "CREATE DATABASE sweeps OWNER sweeps"'
)
TEAM_PUSH_PULL = "test_team.py::test_dvc_push_then_a_fresh_clone_pulls_and_reproduces_nothing"
TEAM_RESTART = "test_team.py::test_stack_restarts_with_its_data_and_stops_with_no_process_left"
SWEEP_LOCAL = "test_sweep.py::test_two_workers_share_six_trials"

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
    # Using the model: the same subcommands, flags and request, run by tests/test_model_contract.py.
    "digitflow promote torch": "test_model_contract.py::test_serve_answers_raw_pixels_with_probabilities",
    "digitflow promote torch --metric test_log_loss": (
        "test_model_contract.py::test_promotion_moves_refuses_and_forces (ranking by a test metric)"
    ),
    "digitflow promote torch --version 3": "test_model_contract.py::test_promotion_moves_refuses_and_forces",
    "digitflow promote torch --version 3 --force": "test_model_contract.py::test_promotion_moves_refuses_and_forces",
    CURL_INVOCATION: (
        "test_model_contract.py::test_serve_answers_raw_pixels_with_probabilities (the same JSON, over urllib)"
    ),
    "digitflow predict my_seven.png scan.jpg": "test_model_contract.py::test_predict_image_files_like_evaluate",
    "digitflow predict my_seven.png --source champion --model sklearn": (
        "test_model_contract.py::test_predict_image_files_like_evaluate[champion]"
    ),
    # Team setup: run by tests/test_team.py through the same module and commands.
    "sudo apt-get install -y postgresql": "not run: a system install (.ci/run installs the same package)",
    'pip install -e ".[team]"': "not run: set-up (.ci/run installs the team extra)",
    "python -m digitflow.stack up": "test_team.py: the stack fixture",
    'eval "$(python -m digitflow.stack env)"': "test_team.py: the stack fixture's client environment",
    "python -m digitflow.stack dvc-remote": TEAM_PUSH_PULL,
    "dvc repro && dvc push": TEAM_PUSH_PULL,
    "python -m digitflow.stack status": TEAM_RESTART,
    "python -m digitflow.stack down": TEAM_RESTART,
    "python -m digitflow.stack add-user alice": "test_team.py: the stack fixture (users alice and bob)",
    "python -m digitflow.stack add-user bob --permission READ --password 'at-least-12-chars'": (
        "test_team.py::test_user_without_permission_is_refused_and_nothing_is_logged"
    ),
    'git clone ... && cd digitflow && pip install -e ".[team]"': "not run: a placeholder URL (a fresh clone is tested)",
    "dvc pull": TEAM_PUSH_PULL,
    "dvc exp show": TEAM_PUSH_PULL,
    # Sweeps across machines: run by tests/test_sweep.py through the same command and options.
    "python -m stages.sweep --trials 20 -S train_torch.digits.epochs=20 &": (
        "test_sweep.py::test_two_workers_share_six_trials (two workers, fewer trials and epochs)"
    ),
    "python -m stages.sweep --trials 20 -S train_torch.digits.epochs=20": SWEEP_LOCAL,
    "dvc exp show --keep 'Experiment|val_log_loss|test_accuracy|\\.lr$|\\.C$' --drop '.*'": (
        "test_sweep.py::test_two_workers_share_six_trials (the experiments in dvc exp show)"
    ),
    PSQL_SETUP: ("test_sweep.py: tests/services.py makes a role and a database the same way"),
    "python -m stages.sweep --study digits-tune --trials 60 --storage "
    "postgresql+psycopg2://sweeps:secret@db-host:5432/sweeps": (
        "test_sweep.py::test_three_workers_on_postgres_account_for_every_trial (a database on 127.0.0.1)"
    ),
    "dvc exp push origin digits-tune-12": "not run: needs a git remote with the experiment (dvc exp push)",
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
