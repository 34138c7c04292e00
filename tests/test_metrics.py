"""Metrics: exact over an epoch fed in unequal batches (equal to scikit-learn on all the data at once),
the same on logits as on probabilities, "accuracy" resolved as Keras does, and bad settings rejected."""

from __future__ import annotations

import math

import pytest
import sklearn.metrics as skm
import torch
import torch.nn.functional as F

from trainlab.errors import InputError
from trainlab.losses import loss
from trainlab.metrics import METRICS, Metric, metric

N, C = 100, 4
BATCHES = (5, 37, 1, 57)  # unequal: an average of per-batch values would be wrong


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _feed(m: Metric, y_pred: torch.Tensor, y_true: torch.Tensor, *, from_logits: bool = False):
    m.reset()
    start = 0
    for size in BATCHES:
        m.update(y_pred[start:start + size], y_true[start:start + size], from_logits=from_logits)
        start += size
    assert start == y_pred.shape[0]
    return m.compute()


def _multiclass(classes: int = C):
    gen = _gen()
    logits = torch.randn(N, classes, generator=gen) * 2
    labels = torch.randint(0, classes, (N,), generator=gen)
    labels[:40] = logits[:40].argmax(-1)  # better than chance, so the scores are not all ~0
    return logits, logits.softmax(-1), labels


def _binary():
    gen = _gen()
    labels = (torch.rand(N, generator=gen) > 0.4).float()
    logits = torch.randn(N, 1, generator=gen) + (labels.unsqueeze(-1) - 0.5) * 2
    return logits, torch.sigmoid(logits), labels


# --------------------------------------------------------------------------- equal to scikit-learn


def test_accuracies_equal_sklearn_over_unequal_batches():
    logits, probs, labels = _multiclass()
    expected = skm.accuracy_score(labels, probs.argmax(-1))
    assert _feed(metric("sparse_categorical_accuracy"), probs, labels) == pytest.approx(expected)
    one_hot = F.one_hot(labels, C).float()
    assert _feed(metric("categorical_accuracy"), probs, one_hot) == pytest.approx(expected)
    b_logits, b_probs, b_labels = _binary()
    for threshold in (0.5, 0.3):
        expected = skm.accuracy_score(b_labels, (b_probs[:, 0] > threshold).float())
        m = metric({"name": "binary_accuracy", "threshold": threshold})
        assert _feed(m, b_probs, b_labels) == pytest.approx(expected)
        assert _feed(m, b_logits, b_labels, from_logits=True) == pytest.approx(expected)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_k_accuracy_equals_sklearn(k):
    logits, probs, labels = _multiclass(6)
    expected = skm.top_k_accuracy_score(labels, probs, k=k, labels=range(6))
    m = metric({"name": "top_k_accuracy", "k": k})
    assert _feed(m, probs, labels) == pytest.approx(expected)
    assert _feed(m, logits, F.one_hot(labels, 6).float(), from_logits=True) == pytest.approx(expected)


@pytest.mark.parametrize("name, reference", [("precision", skm.precision_score),
                                             ("recall", skm.recall_score), ("f1", skm.f1_score)])
@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
def test_multiclass_precision_recall_f1_equal_sklearn(name, reference, average):
    logits, probs, labels = _multiclass(5)
    labels[labels == 4] = 3  # class 4 never occurs as a target: sklearn averages over the classes seen
    predicted = probs.argmax(-1)
    expected = reference(labels, predicted, average=average, zero_division=0)
    m = metric({"name": name, "average": average}, num_outputs=5)
    assert _feed(m, probs, labels) == pytest.approx(expected)
    assert _feed(m, logits, labels, from_logits=True) == pytest.approx(expected)


@pytest.mark.parametrize("name, reference", [("precision", skm.precision_score),
                                             ("recall", skm.recall_score), ("f1", skm.f1_score)])
@pytest.mark.parametrize("average", ["binary", "macro", "micro", "weighted"])
def test_binary_precision_recall_f1_equal_sklearn(name, reference, average):
    logits, probs, labels = _binary()
    for threshold in (0.5, 0.7):
        expected = reference(labels, (probs[:, 0] > threshold).float(), average=average, zero_division=0)
        m = metric({"name": name, "average": average, "threshold": threshold}, num_outputs=1)
        assert _feed(m, probs, labels) == pytest.approx(expected)
        assert _feed(m, logits, labels, from_logits=True) == pytest.approx(expected)
    # Two softmax outputs are two classes; 'binary' scores class 1, as sklearn's pos_label=1.
    two = torch.cat([-logits, logits], dim=-1) / 2
    expected = reference(labels, two.argmax(-1), average=average, zero_division=0)
    assert _feed(metric({"name": name, "average": average}), two.softmax(-1), labels.long()) == pytest.approx(
        expected)


def test_auc_equals_sklearn_binary_with_ties_and_multiclass_ovr():
    logits, probs, labels = _binary()
    expected = skm.roc_auc_score(labels, probs[:, 0])
    assert _feed(metric("auc"), probs, labels) == pytest.approx(expected)
    assert _feed(metric("auc"), logits, labels, from_logits=True) == pytest.approx(expected)
    coarse = (probs * 4).round() / 4  # many tied scores: a tie counts one half
    assert _feed(metric("auc"), coarse, labels) == pytest.approx(skm.roc_auc_score(labels, coarse[:, 0]))
    m_logits, m_probs, m_labels = _multiclass()
    expected = skm.roc_auc_score(m_labels, m_probs, multi_class="ovr", average="macro")
    assert _feed(metric("auc"), m_probs, m_labels) == pytest.approx(expected)
    assert _feed(metric("auc"), m_logits, m_labels, from_logits=True) == pytest.approx(expected)


def test_confusion_matrix_equals_sklearn_and_is_not_a_scalar():
    logits, probs, labels = _multiclass()
    m = metric("confusion_matrix")
    assert m.scalar is False
    expected = skm.confusion_matrix(labels, probs.argmax(-1), labels=range(C)).tolist()
    assert _feed(m, probs, labels) == expected
    b_logits, b_probs, b_labels = _binary()
    expected = skm.confusion_matrix(b_labels, b_probs[:, 0] > 0.5, labels=[0, 1]).tolist()
    assert _feed(m, b_logits, b_labels, from_logits=True) == expected


@pytest.mark.parametrize("outputs", [1, 3])
def test_regression_metrics_equal_sklearn(outputs):
    gen = _gen()
    y = torch.randn(N, outputs, generator=gen) * 3 + 1e4  # a large mean must not spoil R^2
    pred = y + torch.randn(N, outputs, generator=gen)
    target = y[:, 0] if outputs == 1 else y  # (N,) targets against (N, 1) predictions
    yn, pn = y.double().numpy(), pred.double().numpy()
    assert _feed(metric("mse"), pred, target) == pytest.approx(skm.mean_squared_error(yn, pn), rel=1e-6)
    assert _feed(metric("mae"), pred, target) == pytest.approx(skm.mean_absolute_error(yn, pn), rel=1e-6)
    assert _feed(metric("r2"), pred, target) == pytest.approx(skm.r2_score(yn, pn), rel=1e-6)
    # RMSE is the root of the MSE over every entry (Keras); for one output that is sklearn's too.
    assert _feed(metric("rmse"), pred, target) == pytest.approx(math.sqrt(skm.mean_squared_error(yn, pn)),
                                                                rel=1e-6)
    if outputs == 1:
        assert _feed(metric("rmse"), pred, target) == pytest.approx(
            skm.root_mean_squared_error(yn, pn), rel=1e-6)


def test_a_callable_metric_is_weighted_by_batch_size_and_sees_probabilities():
    logits, probs, labels = _multiclass()

    def true_class_probability(y_pred, y_true):
        return y_pred.gather(1, y_true.unsqueeze(1)).mean()

    m = metric(true_class_probability, loss=loss("sparse_categorical_crossentropy"))
    expected = probs.gather(1, labels.unsqueeze(1)).mean().item()
    assert m.name == "true_class_probability"
    assert _feed(m, probs, labels) == pytest.approx(expected, rel=1e-6)
    assert _feed(m, logits, labels, from_logits=True) == pytest.approx(expected, rel=1e-6)


# --------------------------------------------------------------------------- "accuracy" as Keras resolves it


def test_accuracy_is_resolved_from_the_loss_and_keeps_its_history_key():
    logits, probs, labels = _multiclass()
    expected = skm.accuracy_score(labels, probs.argmax(-1))
    for alias in ("accuracy", "acc", "Accuracy"):
        sparse = metric(alias, loss=loss("sparse_categorical_crossentropy"), num_outputs=C)
        categorical = metric(alias, loss=loss("categorical_crossentropy"), num_outputs=C)
        assert sparse.name == categorical.name == "accuracy"
        assert _feed(sparse, probs, labels) == pytest.approx(expected)
        assert _feed(categorical, probs, F.one_hot(labels, C).float()) == pytest.approx(expected)
    b_logits, b_probs, b_labels = _binary()
    expected = skm.accuracy_score(b_labels, (b_probs[:, 0] > 0.5).float())
    for context in ({"loss": loss("binary_crossentropy")}, {"loss": loss("mse"), "num_outputs": 1}):
        binary = metric("accuracy", **context)
        assert binary.name == "accuracy"
        assert _feed(binary, b_probs, b_labels) == pytest.approx(expected)
        assert _feed(binary, b_logits, b_labels, from_logits=True) == pytest.approx(expected)


def test_accuracy_without_a_known_loss_follows_the_shapes_like_keras():
    logits, probs, labels = _multiclass()
    expected = skm.accuracy_score(labels, probs.argmax(-1))
    m = metric("accuracy", loss=loss(torch.nn.CrossEntropyLoss()))
    assert _feed(m, logits, labels) == pytest.approx(expected)
    assert _feed(m, probs, F.one_hot(labels, C).float()) == pytest.approx(expected)
    b_logits, b_probs, b_labels = _binary()
    assert _feed(m, b_probs, b_labels) == pytest.approx(skm.accuracy_score(b_labels, b_probs[:, 0] > 0.5))


# --------------------------------------------------------------------------- bad settings


@pytest.mark.parametrize(
    "spec, context, message",
    [
        ({"name": "top_k_accuracy", "k": 0}, {}, r"top_k_accuracy: k must be an int >= 1, got 0"),
        ({"name": "top_k_accuracy", "k": 2.5}, {}, r"top_k_accuracy: k must be an int >= 1, got float"),
        ({"name": "f1", "average": "mean"}, {},
         r"f1: average must be one of 'binary', 'macro', 'micro', 'weighted', got 'mean'"),
        ({"name": "precision", "average": "Macro"}, {}, r"Did you mean 'macro'"),
        ("recall", {"num_outputs": 10}, r"recall: average='binary'.*10 outputs.*\"macro\""),
        ({"name": "binary_accuracy", "threshold": 1.5}, {}, r"binary_accuracy: threshold must be in \(0.0, 1.0\)"),
        ({"name": "accuracy", "treshold": 0.3}, {}, r"has no setting 'treshold'.*Did you mean 'threshold'"),
        ("accuarcy", {}, r"unknown metric 'accuarcy'.*Did you mean 'accuracy'"),
        ("mse", {"num_outputs": 0}, r"num_outputs must be an int >= 1, got 0"),
        (3.5, {}, r"a metric must be a name.*got float 3.5"),
    ],
)
def test_bad_metric_settings_are_rejected_with_the_setting_named(spec, context, message):
    with pytest.raises(InputError, match=message):
        metric(spec, **context)


def test_binary_average_on_many_classes_fails_at_the_first_batch_when_outputs_are_unknown():
    logits, probs, labels = _multiclass()
    with pytest.raises(InputError, match=r"f1: average='binary'.*4 outputs"):
        metric("f1").update(probs, labels)


def test_top_k_needs_class_scores_and_warns_when_k_covers_every_class():
    with pytest.raises(InputError, match=r"top_k_accuracy needs one score per class"):
        metric("top_k_accuracy").update(torch.rand(4, 1), torch.ones(4))
    logits, probs, labels = _multiclass(3)
    with pytest.warns(UserWarning, match=r"k=5 is >= the number of classes \(3\)"):
        assert _feed(metric("top_k_accuracy"), probs, labels) == 1.0


def test_mismatched_target_shapes_are_an_error():
    with pytest.raises(InputError, match=r"mse: predictions have shape \(4, 2\) but targets \(4, 3\)"):
        metric("mse").update(torch.zeros(4, 2), torch.zeros(4, 3))
    with pytest.raises(InputError, match=r"one label \(or one-hot row\) per prediction row"):
        metric("f1", num_outputs=1).update(torch.zeros(4, 1), torch.zeros(5))


# --------------------------------------------------------------------------- contract over the registry

REGRESSION = {"mse", "rmse", "mae", "r2"}
BINARY = {"binary_accuracy", "precision", "recall", "f1"}  # precision & co. default to average='binary'
ONE_HOT = {"categorical_accuracy"}


def _data_for(name: str):
    """(logits, probabilities, targets, loss) that fit the metric; other names get 6-class labels."""
    if name in REGRESSION:
        gen = _gen()
        y = torch.randn(N, 2, generator=gen)
        pred = y + 0.5 * torch.randn(N, 2, generator=gen)
        return pred, pred, y, loss("mse")
    if name in BINARY:
        logits, probs, labels = _binary()
        return logits, probs, labels, loss("binary_crossentropy")
    logits, probs, labels = _multiclass(6)
    if name in ONE_HOT:
        return logits, probs, F.one_hot(labels, 6).float(), loss("categorical_crossentropy")
    return logits, probs, labels, loss("sparse_categorical_crossentropy")


class _NoSync:
    """Makes every host transfer fail, to prove `update` stays on the device."""

    METHODS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__")

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch

    def __enter__(self) -> None:
        def refuse(*args, **kwargs):
            raise AssertionError("update() synced with the device")

        for method in self.METHODS:
            self.monkeypatch.setattr(torch.Tensor, method, refuse)

    def __exit__(self, *exc) -> None:
        self.monkeypatch.undo()


@pytest.mark.parametrize("name", METRICS.names())
def test_every_metric_is_exact_over_unequal_batches_and_never_syncs_in_update(name, monkeypatch):
    entry = METRICS.entry(name)
    assert entry.summary and entry.claim
    logits, probs, y, task_loss = _data_for(name)
    m = metric(name, loss=task_loss, num_outputs=probs.shape[-1])
    assert isinstance(m.name, str) and m.name
    empty = m.compute()
    assert (math.isnan(empty) if m.scalar else empty == [])
    m.reset()
    with _NoSync(monkeypatch):
        start = 0
        for size in BATCHES:
            m.update(probs[start:start + size], y[start:start + size])
            start += size
    batched = m.compute()
    m.reset()
    m.update(probs, y)
    whole = m.compute()
    if m.scalar:
        assert isinstance(batched, float) and math.isfinite(batched)
        assert batched == pytest.approx(whole, rel=1e-9, abs=1e-12)
        logit_value = _feed(m, logits, y, from_logits=True)
        assert logit_value == pytest.approx(whole, rel=1e-6)  # logits give the same as probabilities
    else:
        assert batched == whole and sum(map(sum, batched)) == N
    m.reset()
    assert (math.isnan(m.compute()) if m.scalar else m.compute() == [])


@pytest.mark.parametrize("kind", ["sparse", "categorical", "binary"])
def test_update_members_equals_each_members_own_update(kind):
    """Several stacked members scored in one pass get exactly what each would get alone, rows past
    a member's size left out."""
    g = _gen()
    k, n = 3, 20
    sizes = [n, 13, 0]
    if kind == "binary":
        scores, targets = torch.randn(k, n, 1, generator=g), torch.randint(0, 2, (k, n), generator=g).float()
    else:
        scores, labels = torch.randn(k, n, C, generator=g), torch.randint(0, C, (k, n), generator=g)
        targets = F.one_hot(labels, C).float() if kind == "categorical" else labels
    together = [metric("accuracy") for _ in range(k)]
    for m in together:
        m.reset()
    assert type(together[0]).update_members(together, scores, targets, sizes, from_logits=True)
    for row, size in enumerate(sizes):
        alone = metric("accuracy")
        if size:
            alone.update(scores[row, :size], targets[row, :size], from_logits=True)
        expected, got = alone.compute(), together[row].compute()
        assert (math.isnan(expected) and math.isnan(got)) or got == expected


def test_update_members_declines_what_it_cannot_do_in_one_pass():
    scores, labels = torch.randn(2, 5, C), torch.randint(0, C, (2, 5))
    top = [metric({"name": "top_k_accuracy", "k": 2}) for _ in range(2)]
    assert not type(top[0]).update_members(top, scores, labels, [5, 5])
    mixed = [metric("accuracy"), metric({"name": "accuracy", "threshold": 0.7})]
    assert not type(mixed[0]).update_members(mixed, scores, labels, [5, 5])
    flat = [metric("accuracy"), metric("accuracy")]  # (k, n) scores would read as n output columns
    assert not type(flat[0]).update_members(flat, torch.randn(2, 5), torch.randint(0, 2, (2, 5)).float(), [5, 5])
    assert all(math.isnan(m.compute()) for m in [*top, *mixed, *flat])  # nothing was updated
