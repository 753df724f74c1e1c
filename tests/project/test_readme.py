"""Every command in the README (set-up aside) and in docs/ is run by a test, exactly as written, or says
why not.

The list below maps each command to the test that runs it and checks what the page says it shows. It
must equal the pages' commands: a command added to, changed in or removed from a page fails here until a
test runs it (tests take their commands from ``tests.support.readme.readme_command``), and each test it
names must exist.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.readme import commands_in, readme_commands

CURL_INVOCATION = (
    "curl -s http://127.0.0.1:5001/invocations -H 'Content-Type: application/json' -d '{\"inputs\": [["
    "0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8, 8, 0, "
    "0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0]]}'"
)

PSQL_SETUP = (
    "echo \"CREATE ROLE sweeps LOGIN PASSWORD 'secret'; CREATE DATABASE sweeps OWNER sweeps;\" | sudo -u postgres psql"
)
SWEEP_EXP_SHOW = (
    "dvc exp show --keep 'Experiment|metrics/train_torch\\.json:val_log_loss|(sklearn|torch)\\.test_accuracy' "
    "--keep 'train_torch\\.(lr|optimizer|digits\\.batch_size|digits\\.weight_decay)$|train_sklearn\\.C$' --drop '.*'"
)
UI_BROWSER = "test_pipeline.py::test_digitflow_ui_opens_the_comparison_in_a_browser"
EXPERIMENT = "test_pipeline.py::test_readme_experiment_reruns_only_the_stages_that_read_the_setting"
MODEL = "test_model_contract.py::"
FIRST_HOUR = "test_first_hour.py::"
GRID = FIRST_HOUR + "test_the_readme_grid_on_two_workers_lands_in_mlflow (a plain install)"
TEAM = "test_team.py::"
TEAM_RUN = "test_team.py: the team_project fixture (these three lines in one shell; runs reach the server)"
FRESH_CLONE = TEAM + "test_dvc_push_then_a_fresh_clone_pulls_and_reproduces_nothing"
TEAM_RESTART = TEAM + "test_stack_restarts_with_its_data_and_stops_with_no_process_left"
SWEEP_LOCAL = "test_sweep.py: the local_sweep fixture (the three lines in one shell), test_two_workers_share_six_trials"
SWEEP_SHARED = "test_sweep.py: the killed_sweep fixture"
OWN = "test_own_images.py: "
WARM_LIFE = "test_warm_server.py::test_a_servers_life"

CHECKED_BY = {
    "dvc repro": "test_pipeline.py: the digits_project fixture (every stage runs, output under 65 lines)",
    "dvc metrics show": "test_pipeline.py::test_readme_metrics_show",
    "dvc params diff --targets params.yaml": "test_pipeline.py::test_readme_params_diff",
    "dvc plots show": FIRST_HOUR + "test_plots_show_draws_both_confusion_matrices_and_the_learning_curve",
    "digitflow offline-plots": "test_pipeline.py::test_readme_offline_plots",
    "dvc plots show --html-template .dvc/tmp/plots-offline.html": "test_pipeline.py::test_readme_offline_plots",
    "dvc exp run -S data.dataset=mnist": FIRST_HOUR + "test_mnist_end_to_end_from_a_local_mirror",
    "dvc exp run -S train_sklearn.C=0.5": EXPERIMENT,
    "dvc exp show --keep 'Experiment|(sklearn|torch)\\.test_accuracy|train_sklearn\\.C$' --drop '.*'": EXPERIMENT,
    # Run with DISPLAY unset (no browser opens), stopped with Ctrl-C; headless Chromium opens what it prints.
    "digitflow ui": UI_BROWSER,
    # The test commands themselves: a test does not run the suite it is part of.
    'pytest -m "not e2e"': "not run by a test: the edit loop (a subset of what .ci/run runs)",
    "pytest -n auto": "not run by a test: .ci/run, the README's test command",
    # A placeholder path: the MNIST test runs the same command with the variable set to its local mirror.
    "DIGITFLOW_MNIST_MIRRORS=/path/to/folder dvc exp run -S data.dataset=mnist": (
        FIRST_HOUR + "test_mnist_end_to_end_from_a_local_mirror (DIGITFLOW_MNIST_MIRRORS set to the mirror)"
    ),
    "digitflow pr-report --base main": "test_pr_report.py::test_weaker_model_fails_the_gate_with_a_full_comment",
    "dvc exp run --queue -S 'train_torch.lr=0.001,0.01' -S 'train_sklearn.C=0.1,10'": GRID,
    "dvc queue start -j 2": GRID,
    "dvc exp show --sort-by torch.test_accuracy --sort-order desc --keep "
    "'Experiment|(sklearn|torch)\\.(test_accuracy|mlflow_run_id)|train_torch\\.lr$|train_sklearn\\.C$' "
    "--drop '.*'": GRID,
    # Not run by the tests: minutes of MNIST training and several clean `dvc repro`s. Its --quick form
    # below runs the same code on small inputs.
    "python benchmarks/run.py": "not run: the full benchmark (minutes); --quick runs the same code",
    # Run with --output / --markdown in a temporary folder added, so the committed results stay as they are.
    "python benchmarks/run.py --quick": "test_benchmark.py (the quick_results fixture, outputs redirected)",
    # Using the model, Team setup, Sweeps across machines: run exactly as written (the tests take them with
    # readme_command and run them through bash in the test's project), checking what the README says.
    "digitflow promote torch": MODEL + "test_promotion_moves_refuses_and_forces (version 1 becomes @champion)",
    "digitflow promote torch --metric test_log_loss": (
        MODEL + "test_promotion_moves_refuses_and_forces (the version with the lowest test log loss)"
    ),
    "digitflow promote torch --version 3": (
        MODEL + "test_promotion_moves_refuses_and_forces (a worse version 3 is refused, exit 1)"
    ),
    "digitflow promote torch --version 3 --force": (
        MODEL + "test_promotion_moves_refuses_and_forces (version 3 becomes @champion)"
    ),
    CURL_INVOCATION: (
        MODEL + "test_serve_answers_raw_pixels_with_probabilities (`digitflow serve torch` on port 5001; one row "
        "of 10 probabilities summing to 1, a 0 at > 0.9)"
    ),
    "digitflow predict my_seven.png scan.jpg": (
        MODEL + "test_predict_the_readme_files (both files made from test images; `FILE: DIGIT (probability P)` "
        "per file, as evaluate predicted)"
    ),
    "digitflow predict my_seven.png --source champion --model sklearn": (
        MODEL + "test_predict_the_readme_files (`my_seven.png: 7 (probability P)` from sklearn's @champion)"
    ),
    "digitflow predict photos/* --show seen": (
        "test_predict_photos.py: the predictions fixture (200 photos of MNIST test digits, a blank page and a "
        "grey wall; a line per file, warnings for the two, a view per file in seen/)"
    ),
    "sudo apt-get install -y postgresql": "not run: a system install (.ci/run installs the same package)",
    'pip install -e ".[team]"': "not run: set-up (.ci/run installs the team extra)",
    "digitflow stack up": (
        "test_team.py: the stack fixture, and test_stack_restarts_... (DIGITFLOW_STACK_DIR / _NAME set: the "
        "test's own state folder and databases)"
    ),
    'eval "$(digitflow stack env)"': TEAM_RUN,
    "digitflow stack dvc-remote": TEAM_RUN + "; and in the fresh clone, " + FRESH_CLONE,
    "dvc repro && dvc push": TEAM_RUN,
    "digitflow stack status": TEAM_RESTART + " (running with PIDs, then stopped)",
    "digitflow stack down": TEAM_RESTART + " (stopped: mlflow, seaweedfs; no process left)",
    "digitflow stack add-user alice --permission EDIT --dvc write": (
        "test_team.py: the stack fixture (its generated password then logs a run, EDIT; its key writes the DVC "
        "bucket only: " + TEAM + "test_each_s3_key_reaches_its_own_bucket_only)"
    ),
    "printf '%s\\n' \"$BOB_PASSWORD\" | digitflow stack add-user bob --password-stdin": (
        "test_team.py: the stack fixture (BOB_PASSWORD set); "
        + TEAM
        + "test_user_without_permission_is_refused_and_nothing_is_logged"
    ),
    "digitflow stack add-user release --permission EDIT --promote": (
        "test_team.py: the stack fixture; " + TEAM + "test_only_an_account_with_promote_registers_or_moves_the_champion"
    ),
    "digitflow stack add-user ci-pr --permission EDIT": (
        "test_team.py: the stack fixture; " + TEAM + "test_the_pull_requests_account_logs_its_run_without_registering"
    ),
    # A placeholder URL; the test sets DIGITFLOW_REPO to the team project (a local git repository).
    "export DIGITFLOW_REPO=https://git.example.com/your-team/digitflow.git": (
        "not run: a placeholder URL; " + FRESH_CLONE + " sets DIGITFLOW_REPO to a local repository"
    ),
    'git clone "$DIGITFLOW_REPO" digitflow && cd digitflow': FRESH_CLONE,
    "dvc pull": FRESH_CLONE + " (the models arrive byte for byte)",
    "dvc exp show --keep 'Experiment|(sklearn|torch)\\.(test_accuracy|mlflow_run_id)' --drop '.*'": (
        FRESH_CLONE + " (exactly those columns; main's row has both run ids and test accuracies)"
    ),
    "digitflow sweep --trials 6 -S train_torch.digits.epochs=5 &": SWEEP_LOCAL,
    "digitflow sweep --trials 6 -S train_torch.digits.epochs=5": SWEEP_LOCAL,
    "wait": SWEEP_LOCAL,
    SWEEP_EXP_SHOW: "test_sweep.py::test_readme_exp_show_lists_every_trial_with_its_columns",
    "digitflow ui --study digits-tune": "test_sweep.py::test_digitflow_ui_shows_the_study_trials_best_first",
    PSQL_SETUP: "test_sweep.py: the postgres_url fixture (tests/support/services.py; sudo from .ci/run)",
    # A placeholder host; the test sets SWEEP_STORAGE to the database the command above made on 127.0.0.1.
    "export SWEEP_STORAGE=postgresql+psycopg2://sweeps:secret@db-host:5432/sweeps": (
        "not run: a placeholder host; " + SWEEP_SHARED + " sets SWEEP_STORAGE to the README's database on 127.0.0.1"
    ),
    # As written, then the test's options (later ones win): 3 trials of 5 epochs, 2 s heartbeats.
    "digitflow sweep --study digits-tune --trials 60": (
        SWEEP_SHARED + " (three workers, one killed, SWEEP_STORAGE set), with --trials 3 -S ...epochs=5 --heartbeat 2 "
        "--grace 8 after it; no password in any command line"
    ),
    "dvc exp push origin digits-tune-2": "test_sweep.py::test_readme_exp_push_shares_a_trial (a bare git origin)",
    # Train on your own images (docs/own_images.md): the first three make the own_images project fixture.
    "digitflow example-images data/images": OWN + "the project fixture (160 pictures of 4 classes)",
    "dvc add data/images": OWN + "the project fixture",
    "dvc exp run -S data.dataset=folder -S data.folder=data/images -S data.centre_ink=true": (
        OWN + "the project fixture; test_every_stage_runs_on_the_folder_and_both_models_learn_it (every stage)"
    ),
    "digitflow predict data/images/cross/cross-000.png": (
        "test_own_images.py::test_predict_prints_the_class_name (`...: cross (probability P)`)"
    ),
    "digitflow serve torch": (
        "test_own_images.py::test_the_served_model_answers_in_the_order_of_its_class_names (port 5001, the "
        "probabilities of pyfunc, columns in the order of the metadata's class_names)"
    ),
    "digitflow server status": WARM_LIFE + " (each server with its pid and OMP_NUM_THREADS; none after stop)",
    "digitflow server start": (
        "tests/conftest.py: the reproduced_digits fixture, before the README's `dvc repro` (every stage of which "
        "runs warm: test_pipeline.py's digits_project fixture checks the servers' logs)"
    ),
    "digitflow server stop": WARM_LIFE + " (its pid, then no process left)",
    "DIGITFLOW_SERVER=0 dvc repro": (
        "test_pipeline.py::test_same_params_give_identical_bytes_across_runs_and_thread_counts (the cold run: "
        "the same bytes and MLflow params and metrics as the warm one)"
    ),
}


def test_every_readme_command_is_checked() -> None:
    commands = readme_commands()
    assert [c for c in commands if c not in CHECKED_BY] == [], "README commands no test runs"
    assert [c for c in CHECKED_BY if c not in commands] == [], "commands checked here but gone from the README"


def test_every_named_test_exists() -> None:
    tests = {path.name: path.read_text() for path in (Path(__file__).resolve().parents[1]).rglob("test_*.py")}
    missing = []
    for where in CHECKED_BY.values():
        for file, name in re.findall(r"(test_\w+\.py)::(\w+)", where):
            if file not in tests or f"def {name}(" not in tests[file]:
                missing.append(f"{file}::{name}")
    assert missing == [], "tests named in CHECKED_BY that do not exist"


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
