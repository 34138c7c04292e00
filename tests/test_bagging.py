"""Bagging: bootstrap samples, out-of-bag rows and estimate, soft and majority votes, saved ensembles."""

import numpy as np
import pytest
import torch
from torch import nn

import trainlab
from trainlab.errors import InputError
from trainlab.generalize import Ensemble, bagging
from trainlab.generalize.bagging import bootstrap_rows
from trainlab.layers import Dense

RECIPE = {"num_epochs": 2, "seed": 1, "batch_size": 16, "optimizer": {"name": "adam", "lr": 0.02}}


def blobs(n=90, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = (rng.normal(size=(n, 2)) + 1.5 * np.stack([y, y % 2], axis=1)).astype(np.float32)
    return x, y


@pytest.fixture(scope="module")
def bagged():
    x, y = blobs()
    model = trainlab.Sequential([Dense(6, activation="relu"), Dense(3, activation="softmax")])
    return bagging(model, (x, y), RECIPE, members=4), x, y


def test_each_member_trains_on_a_bootstrap_sample_of_the_training_rows(bagged):
    result, x, _ = bagged
    train = result.train_rows
    assert len(train) == 72 and result.test_rows.tolist() == list(range(72, 90))  # the last 20% held out
    for drawn, _ in result.samples:
        assert len(drawn) == len(train) and set(drawn.tolist()) <= set(train.tolist())
        assert len(set(drawn.tolist())) < len(train)  # drawn with replacement: some rows repeat
    assert len({tuple(d.tolist()) for d, _ in result.samples}) == 4


def test_out_of_bag_rows_are_exactly_the_rows_not_drawn(bagged):
    result, _, _ = bagged
    for drawn, oob in result.samples:
        assert sorted(oob.tolist()) == sorted(set(result.train_rows.tolist()) - set(drawn.tolist()))


def test_bootstrap_draws_are_numpys_seeded_generator():  # oracle: numpy.random.default_rng
    rng = np.random.default_rng(7)
    expected = [rng.integers(0, 10, size=10) for _ in range(3)]
    for (drawn, oob), want in zip(bootstrap_rows(10, 3, seed=7), expected):
        assert drawn.tolist() == want.tolist()
        assert oob.tolist() == sorted(set(range(10)) - set(want.tolist()))


def test_the_out_of_bag_estimate_votes_each_row_with_the_members_that_did_not_draw_it(bagged):
    result, x, y = bagged
    members = result.ensemble.members
    rows = sorted(set().union(*(set(oob.tolist()) for _, oob in result.samples)))
    correct = 0
    for row in rows:
        voters = [m for m, (_, oob) in zip(members, result.samples) if row in set(oob.tolist())]
        mean = np.mean([m.predict(x[row:row + 1])[0] for m in voters], axis=0)
        correct += int(mean.argmax() == y[row])
    assert result.oob_score["accuracy"] == pytest.approx(correct / len(rows))
    assert result.oob_coverage == pytest.approx(len(rows) / len(result.train_rows))


def test_the_ensemble_is_scored_on_the_held_out_rows_against_each_member(bagged):
    result, x, y = bagged
    test = result.test_rows
    each = np.stack([m.predict(x[test]) for m in result.ensemble.members])
    assert result.ensemble_score["accuracy"] == pytest.approx(float((each.mean(0).argmax(1) == y[test]).mean()))
    for k, scores in enumerate(result.member_scores):
        assert scores["accuracy"] == pytest.approx(float((each[k].argmax(1) == y[test]).mean()))
    assert result.members_mean == pytest.approx(np.mean([s["accuracy"] for s in result.member_scores]))


def test_a_saved_ensemble_reloads_with_trainlab_load_and_predicts_the_same(bagged, tmp_path):
    result, x, _ = bagged
    folder = result.save(tmp_path / "bag")
    assert (folder / "ensemble.json").is_file() and (folder / "member-0" / "model.safetensors").is_file()
    loaded = trainlab.load(folder)
    assert isinstance(loaded, Ensemble) and len(loaded) == 4
    np.testing.assert_allclose(loaded.predict(x), result.ensemble.predict(x), rtol=1e-6, atol=1e-7)


class Fixed(nn.Module):
    """A member whose output is given: class probabilities, whatever the input."""

    def __init__(self, rows):
        super().__init__()
        self.register_buffer("rows", torch.tensor(rows))

    def forward(self, x):
        return self.rows[: x.shape[0]]

    def output_activation(self):
        return "softmax"


def test_majority_vote_counts_votes_and_breaks_ties_toward_the_lowest_class():
    members = [Fixed([[0.6, 0.4, 0.0], [0.1, 0.2, 0.7]]), Fixed([[0.1, 0.9, 0.0], [0.1, 0.8, 0.1]]),
               Fixed([[0.1, 0.9, 0.0], [0.4, 0.3, 0.3]])]
    x = torch.zeros(2, 1)
    vote = Ensemble(members, task="classification", combine="vote")(x)
    torch.testing.assert_close(vote, torch.tensor([[1 / 3, 2 / 3, 0.0], [1 / 3, 1 / 3, 1 / 3]]))
    assert vote.argmax(-1).tolist() == [1, 0]  # row 2: a three-way tie goes to class 0, as numpy's argmax
    soft = Ensemble(members, task="classification", combine="average")(x)
    torch.testing.assert_close(soft, torch.tensor([[0.8 / 3, 2.2 / 3, 0.0], [0.2, 1.3 / 3, 1.1 / 3]]))


def test_bagging_with_one_member_is_refused():
    x, y = blobs()
    with pytest.raises(InputError, match=r"members must be an int >= 2, got 1.*--members 2 or more"):
        bagging([Dense(3, activation="softmax")], (x, y), RECIPE, members=1)
