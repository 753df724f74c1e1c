"""digitflow.models.torch_model: learns a separable problem, deterministically; divergence is a clear error."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from digitflow.core.errors import DigitflowError, TrainingDivergedError
from digitflow.core.params import TrainTorchParams
from digitflow.models.torch_model import (
    LogisticRegressionNet,
    ProbabilityModel,
    balanced_weights,
    coefficients,
    load_model,
    model_bytes,
    predict_proba,
    save_model,
    scaling_statistics,
    select_device,
    train_logistic_regression,
)

CPU = torch.device("cpu")
N_FEATURES = 20


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ten well separated Gaussian clusters: class k is centred at 4 * e_k."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    features = rng.normal(0, 0.5, size=(n, N_FEATURES))
    features[np.arange(n), labels] += 4.0
    return features.astype(np.float32), labels.astype(np.int64)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These matrices are tiny: one thread is fastest, and immune to a busy machine's other processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    return blobs(500, seed=0), blobs(200, seed=1), blobs(300, seed=2)


PARAMS = TrainTorchParams(optimizer="adam", lr=0.05, batch_size=32, epochs=5, seed=0)


def train(data, params: TrainTorchParams = PARAMS):
    (x_train, y_train), (x_val, y_val), _ = data
    return train_logistic_regression(x_train, y_train, x_val, y_val, params, device=CPU, progress=False)


@pytest.fixture(scope="module")
def trained(data):
    return train(data)


def test_learns_a_separable_problem(data, trained):
    _, _, (x_test, y_test) = data
    accuracy = (predict_proba(trained.model, x_test).argmax(axis=1) == y_test).mean()
    assert accuracy >= 0.97
    assert trained.device == "cpu"


def test_history_has_one_row_per_epoch_and_improves(trained):
    history = trained.history
    assert [row["epoch"] for row in history] == [1, 2, 3, 4, 5]
    assert set(history[0]) == {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy"}
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_accuracy"] >= 0.97


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_same_seed_gives_identical_weights(data, optimizer):
    params = PARAMS.model_copy(update={"optimizer": optimizer, "epochs": 2})
    first, second = train(data, params), train(data, params)
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert first.history == second.history
    other = train(data, params.model_copy(update={"seed": 1}))
    assert not torch.equal(first.model.linear.weight, other.model.linear.weight)


def reference_training(data, params: TrainTorchParams) -> LogisticRegressionNet:
    """The textbook loop: autograd and torch.optim, same initialisation and batch order as the library."""
    (x_train, y_train), _, _ = data
    x, y = torch.as_tensor(x_train), torch.as_tensor(y_train)
    torch.manual_seed(params.seed)
    shuffle = torch.Generator().manual_seed(params.seed)
    model = LogisticRegressionNet(x.shape[1])
    model.set_scaling(*scaling_statistics(x_train, params.scaling))
    optimizer_class = torch.optim.Adam if params.optimizer == "adam" else torch.optim.SGD
    optimizer = optimizer_class(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    steps, done = params.epochs * math.ceil(len(x) / params.batch_size), 0
    for _ in range(params.epochs):
        order = torch.randperm(len(x), generator=shuffle)
        for start in range(0, len(x), params.batch_size):
            rows = order[start : start + params.batch_size]
            loss = torch.nn.functional.cross_entropy(model(x[rows]), y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
            if params.lr_schedule == "cosine":  # CosineAnnealingLR's closed form: from lr down to zero
                for group in optimizer.param_groups:
                    group["lr"] = params.lr * (1 + math.cos(math.pi * done / steps)) / 2
    return model


@pytest.mark.parametrize(("optimizer", "schedule"), [("sgd", "constant"), ("adam", "constant"), ("adam", "cosine")])
def test_updates_match_torch_optim(data, optimizer, schedule):
    params = TrainTorchParams(
        optimizer=optimizer, lr=0.05, lr_schedule=schedule, batch_size=64, epochs=2, weight_decay=0.01, seed=3
    )
    ours = train(data, params).model
    reference = reference_training(data, params)
    torch.testing.assert_close(ours.linear.weight, reference.linear.weight, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours.linear.bias, reference.linear.bias, rtol=1e-4, atol=1e-5)
    if schedule == "cosine":  # the schedule changed the training, so the comparison above means something
        constant = train(data, params.model_copy(update={"lr_schedule": "constant"})).model
        assert not torch.allclose(ours.linear.weight, constant.linear.weight, rtol=1e-3, atol=1e-4)


def test_huge_learning_rate_diverges_with_a_helpful_message(data):
    (x_train, y_train), (x_val, y_val), _ = data
    params = TrainTorchParams(scaling="none", optimizer="sgd", lr=1e30, batch_size=32, epochs=3, seed=0)
    with pytest.raises(TrainingDivergedError) as caught:
        train_logistic_regression(x_train * 1e6, y_train, x_val * 1e6, y_val, params, device=CPU, progress=False)
    message = str(caught.value)
    assert "train_torch.lr" in message
    assert "1e+30" in message  # the current value
    assert "1e+29" in message  # a tenth of it, as a suggestion
    assert "epoch 1" in message
    assert isinstance(caught.value, DigitflowError)


def test_predict_proba_rows_sum_to_one(data, trained):
    _, _, (x_test, _) = data
    proba = predict_proba(trained.model, x_test * 50)  # large logits: softmax must stay normalised
    assert proba.shape == (len(x_test), 10)
    assert proba.dtype == np.float64
    assert np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)


def test_state_dict_loads_with_weights_only(tmp_path: Path, data, trained):
    _, _, (x_test, _) = data
    path = tmp_path / "model.pt"
    save_model(trained.model, path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    # The scaling travels with the weights: the saved model takes raw features.
    assert set(state) == {"shift", "scale", "linear.weight", "linear.bias"}
    assert state["linear.weight"].shape == (10, N_FEATURES)
    np.testing.assert_allclose(state["shift"].numpy(), data[0][0].mean(axis=0), rtol=1e-5, atol=1e-5)
    loaded = load_model(str(path), N_FEATURES)
    assert not loaded.training
    np.testing.assert_array_equal(predict_proba(loaded, x_test), predict_proba(trained.model, x_test))
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_model(str(path), N_FEATURES + 1)


def test_coefficients(trained):
    coef, intercept = coefficients(trained.model)
    assert coef.shape == (10, N_FEATURES)
    assert intercept.shape == (10,)
    assert coef.dtype == intercept.dtype == np.float32
    # Class k's weight is largest on feature k, where its cluster sits.
    np.testing.assert_array_equal(coef[:, :10].argmax(axis=1), np.arange(10))


def test_model_shape():
    model = LogisticRegressionNet(64)
    assert model(torch.zeros(3, 64)).shape == (3, 10)


def test_select_device_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device() == torch.device("cpu")


def test_select_device_with_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device().type == "cuda"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_trains_on_cuda(data):
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = data
    result = train_logistic_regression(
        x_train, y_train, x_val, y_val, PARAMS, device=torch.device("cuda"), progress=False
    )
    assert result.device.startswith("cuda")
    assert next(result.model.parameters()).is_cuda
    assert (predict_proba(result.model, x_test).argmax(axis=1) == y_test).mean() >= 0.97


@pytest.mark.parametrize("scaling", ["standard", "minmax", "none"])
def test_scaling_statistics_match_scikit_learn(scaling):
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    features, _ = blobs(300, seed=4)
    features[:, 3] = 7.0  # a constant pixel is left unscaled, as scikit-learn does
    shift, scale = scaling_statistics(features, scaling)
    ours = (features - shift) / scale
    if scaling == "none":
        expected = features
    else:
        expected = (StandardScaler() if scaling == "standard" else MinMaxScaler()).fit_transform(features)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


def test_scaling_comes_from_the_training_rows_only(data):
    (x_train, y_train), (x_val, y_val), _ = data
    params = PARAMS.model_copy(update={"epochs": 1})
    model = train_logistic_regression(x_train, y_train, x_val, y_val, params, device=CPU, progress=False).model
    shifted = train_logistic_regression(x_train, y_train, x_val + 100, y_val, params, device=CPU, progress=False)
    torch.testing.assert_close(model.shift, torch.as_tensor(x_train.mean(axis=0)), rtol=1e-5, atol=1e-5)
    assert torch.equal(model.shift, shifted.model.shift)
    assert torch.equal(model.scale, shifted.model.scale)


def test_probability_model_gives_predict_proba(data, trained):
    _, _, (x_test, _) = data
    served = ProbabilityModel(trained.model)(torch.as_tensor(x_test)).detach().numpy()
    np.testing.assert_array_equal(served, predict_proba(trained.model, x_test))


def test_same_model_gives_the_same_file_bytes(tmp_path: Path, data):
    first, second = train(data).model, train(data).model
    save_model(first, tmp_path / "a" / "model.pt")
    save_model(second, tmp_path / "b" / "other-name.pt")
    assert (tmp_path / "a" / "model.pt").read_bytes() == (tmp_path / "b" / "other-name.pt").read_bytes()
    assert model_bytes(first) == (tmp_path / "a" / "model.pt").read_bytes()


def test_class_count_and_balanced_weights():
    """Three classes, one rare: ``n_classes`` sizes the layer; balanced weights (scikit-learn's formula)
    recover the rare class that plain training gives up on."""
    rng = np.random.default_rng(3)
    counts = (300, 300, 12)
    labels = np.repeat(np.arange(3), counts)
    features = rng.normal(0, 1.0, size=(len(labels), 2)).astype(np.float32)
    features[labels == 1, 0] += 2.5
    features[labels == 2, 1] += 1.5
    assert balanced_weights(labels, 3).tolist() == pytest.approx([612 / 900, 612 / 900, 612 / 36])
    params = TrainTorchParams(optimizer="adam", lr=0.05, batch_size=64, epochs=20, seed=0)
    plain = train_logistic_regression(features, labels, features, labels, params, CPU, progress=False, n_classes=4)
    assert plain.model.linear.out_features == 4  # a class absent from training still has its column
    weighted = train_logistic_regression(
        features, labels, features, labels, params.model_copy(update={"class_weight": "balanced"}), CPU, progress=False
    )
    assert weighted.model.linear.out_features == 3
    recall = [
        (predict_proba(result.model, features)[labels == 2].argmax(axis=1) == 2).mean() for result in (plain, weighted)
    ]
    assert recall[1] > recall[0] + 0.3, recall
