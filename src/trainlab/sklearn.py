"""scikit-learn estimators: `NeuralNetClassifier` and `NeuralNetRegressor`, trained by the one engine.

They put a trainlab network where scikit-learn expects an estimator: in
`GridSearchCV`, `cross_val_score`, a `Pipeline`, `BaggingClassifier`,
`AdaBoostClassifier` (which needs `sample_weight`) or `CalibratedClassifierCV`.
Their parameters are the model's and the recipe's, as plain constructor
arguments; `fit` hands them to `trainlab.fit`, so they train exactly as a
recipe would (same seeds, same weights).

    >>> from sklearn.datasets import load_iris
    >>> from trainlab.sklearn import NeuralNetClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = NeuralNetClassifier(units=16, lr=0.05, epochs=10, random_state=0).fit(X, y)
    >>> clf.classes_.tolist(), clf.n_features_in_
    ([0, 1, 2], 4)
    >>> clf.score(X, y) > 0.9
    True

Conventions, as in scikit-learn: `__init__` only stores its arguments (they are
checked in `fit`); fitted attributes end with an underscore (`model_`,
`classes_`, `n_features_in_`, `history_`, `n_iter_`); `predict` before `fit`
raises scikit-learn's `NotFittedError`. The optimizer, the early stopping and
the schedule are names or tables (``optimizer={"name": "sgd", "momentum":
0.9}``), and their settings are reached with nested names, as in skorch:
``clf.set_params(optimizer__momentum=0.95)`` or
``GridSearchCV(clf, {"lr": [...], "optimizer__momentum": [...]})``.

Pickling a fitted estimator works (joblib ships estimators to its workers that
way); a model meant for others to load is saved with ``clf.model_.save(...)``
(JSON and safetensors, no pickle).
"""

from __future__ import annotations

import copy
import functools
import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
from torch import nn

from trainlab.data.dataset import Task
from trainlab.errors import InputError, InputTypeError

#: Parameters reached with nested names: ``optimizer__momentum=0.9`` is the optimizer's `momentum`.
NESTED_PREFIXES = ("optimizer", "early_stopping", "schedule")

# random_state=None draws a seed in [0, 2**31 - 1), as scikit-learn's estimators draw theirs.
_MAX_SEED = 2**31 - 1


def _is_nested(name: str) -> bool:
    prefix, sep, rest = name.partition("__")
    return bool(sep) and prefix in NESTED_PREFIXES and bool(rest)


class _NeuralNet(BaseEstimator):  # type: ignore[misc]
    """The parameters and the training shared by the classifier and the regressor."""

    def __init__(self, *, layers: Sequence[Any] | None = None, units: int | Sequence[int] = (64,),
                 activation: str = "relu", kernel_initializer: str | None = None, dropout: float = 0.0,
                 optimizer: Any = "adam", lr: float | None = None, schedule: Any = None,
                 batch_size: int = 32, epochs: int = 100, early_stopping: bool | Mapping[str, Any] = False,
                 validation_split: float | None = None, scaling: str | None = "auto",
                 random_state: int | np.random.RandomState | None = None, device: str = "auto",
                 verbose: int = 0) -> None:
        self.layers = layers
        self.units = units
        self.activation = activation
        self.kernel_initializer = kernel_initializer
        self.dropout = dropout
        self.optimizer = optimizer
        self.lr = lr
        self.schedule = schedule
        self.batch_size = batch_size
        self.epochs = epochs
        self.early_stopping = early_stopping
        self.validation_split = validation_split
        self.scaling = scaling
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # -- parameters ------------------------------------------------------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters; with `deep`, also each setting of a technique given as a
        table, by its nested name: ``optimizer={"name": "sgd", "momentum": 0.9}`` gives
        ``optimizer__name`` and ``optimizer__momentum``."""
        params: dict[str, Any] = super().get_params(deep=deep)
        if deep:
            for prefix in NESTED_PREFIXES:
                value = params.get(prefix)
                if isinstance(value, Mapping):
                    params.update({f"{prefix}__{k}": v for k, v in value.items()})
        return params

    def set_params(self, **params: Any) -> Any:
        """Set parameters. A nested name sets one setting of a technique, as in skorch:
        ``optimizer__momentum=0.9`` makes `optimizer` the table ``{"name": <its name>, "momentum": 0.9}``
        (a new dict; the old one is left as it was); ``early_stopping__patience=10`` makes early
        stopping the table ``{"patience": 10}``, which turns it on; ``schedule__<setting>`` likewise."""
        nested = {k: v for k, v in params.items() if _is_nested(k)}
        super().set_params(**{k: v for k, v in params.items() if k not in nested})
        for key, value in nested.items():
            prefix, _, setting = key.partition("__")
            setattr(self, prefix, {**self._table(prefix, key), setting: value})
        return self

    def _table(self, prefix: str, key: str) -> dict[str, Any]:
        """The technique `prefix` as a table that a nested setting can join."""
        value = getattr(self, prefix)
        if isinstance(value, Mapping):
            return dict(value)
        if isinstance(value, str):
            return {"name": value}
        if value is None or isinstance(value, bool):  # no schedule; early stopping on or off
            return {}
        raise InputTypeError(
            f"{type(self).__name__}: {key} needs {prefix} to be a name or a table, but "
            f"it is a {type(value).__name__}. Give the settings with the object itself (for a torch.optim "
            "class: functools.partial(torch.optim.SGD, momentum=0.9)), or use a name such as 'sgd'.")

    # -- what fit hands to trainlab.fit -----------------------------------------
    def _where(self, name: str) -> str:
        return f"{type(self).__name__}.{name}"

    def _check_params(self) -> None:
        _check_int(self._where("batch_size"), self.batch_size, 1, "It is the number of samples per step, e.g. 32.")
        _check_int(self._where("epochs"), self.epochs, 1, "It is the number of passes over the data, e.g. 100.")
        _check_int(self._where("verbose"), self.verbose, 0, "0 is silent, 1 a progress bar, 2 one line per epoch.")
        if self.lr is not None and (isinstance(self.lr, bool) or not isinstance(self.lr, numbers.Real)
                                    or not math.isfinite(self.lr) or self.lr <= 0):
            raise InputError(f"{self._where('lr')} must be a number > 0 or None (the optimizer's default), got "
                             f"{self.lr!r}. Typical values: 1e-3 for adam, 1e-2 to 1e-1 for sgd.")
        split = self.validation_split
        if split is not None and (isinstance(split, bool) or not isinstance(split, numbers.Real)
                                  or not 0.0 < split < 1.0):
            raise InputError(f"{self._where('validation_split')} must be a fraction in (0, 1) or None, got "
                             f"{split!r}. It is the share of the training samples held out for validation; "
                             "None holds out 0.1 when early_stopping is on and nothing otherwise.")
        if not (isinstance(self.dropout, numbers.Real) and not isinstance(self.dropout, bool)
                and 0.0 <= self.dropout < 1.0):
            raise InputError(f"{self._where('dropout')} must be a rate in [0, 1), got {self.dropout!r}. It is "
                             "the fraction of each hidden layer's units dropped in training; 0 for none.")
        if not isinstance(self.early_stopping, (bool, Mapping)):
            raise InputTypeError(f"{self._where('early_stopping')} must be true, false or a table of "
                                 f"EarlyStopping settings such as {{'patience': 10}}, got "
                                 f"{type(self.early_stopping).__name__} {self.early_stopping!r}")

    def _check_techniques(self) -> None:
        """Build the optimizer, the schedule and the loss once on a dummy parameter, so that a bad name
        or setting fails before training, with the estimator's parameter named."""
        from trainlab.losses import loss as make_loss
        from trainlab.optimizers import optimizer as make_optimizer
        from trainlab.schedules import schedule as make_schedule

        built = make_optimizer(self._optimizer(), [nn.Parameter(torch.zeros(1))], source=self._where("optimizer"))
        lr = float(built.param_groups[0]["lr"])
        if not lr > 0:
            raise InputError(f"{self._where('optimizer')}: the learning rate must be > 0, got {lr:g}: with it the "
                             "weights never move. Typical values: 1e-3 for adam, 1e-2 to 1e-1 for sgd.")
        if self.schedule is not None:
            make_schedule(self.schedule, steps_per_epoch=1, num_epochs=self.epochs, base_lr=lr,
                          source=self._where("schedule"))
        if self._loss() is not None:
            make_loss(self._loss(), source=self._where("loss"))
        if self.scaling not in ("auto", None):
            from trainlab.data import scaler as make_scaler

            make_scaler(None if self.scaling == "none" else self.scaling, source=self._where("scaling"))
        if isinstance(self.device, str):
            from trainlab.spec import check_device

            try:
                check_device(self.device)
            except ValueError as error:
                raise InputError(f"{self._where('device')}: {error}") from None
        if isinstance(self.early_stopping, Mapping):
            from pydantic import ValidationError

            from trainlab.errors import did_you_mean
            from trainlab.spec import EarlyStoppingSpec

            try:
                EarlyStoppingSpec.model_validate(dict(self.early_stopping))
            except ValidationError as error:
                known = list(EarlyStoppingSpec.model_fields)
                problems = []
                for item in error.errors():
                    field = ".".join(str(part) for part in item["loc"])
                    if item["type"] == "extra_forbidden":
                        problems.append(f"{field} is not a setting of EarlyStopping.{did_you_mean(field, known)} "
                                        f"Settings: {', '.join(known)}")
                    else:
                        problems.append(f"{field}: {item['msg'].removeprefix('Value error, ')}")
                raise InputError(f"{self._where('early_stopping')}: " + "; ".join(problems)) from None

    def _seed(self) -> int:
        if isinstance(self.random_state, numbers.Integral) and not isinstance(self.random_state, bool):
            if not 0 <= int(self.random_state) < 2**32:
                raise InputError(f"{self._where('random_state')} must be in [0, 2**32 - 1], got "
                                 f"{self.random_state}")
            return int(self.random_state)
        try:
            rng = check_random_state(self.random_state)
        except ValueError:
            raise InputTypeError(f"{self._where('random_state')} must be None, an int or a "
                                 f"numpy.random.RandomState, got {self.random_state!r}") from None
        return int(rng.randint(_MAX_SEED))

    def _optimizer(self) -> Any:
        """The optimizer for the recipe: a name or a table (with `lr` when it is given), or a torch.optim
        class or factory (called with `lr` when it is given)."""
        spec = self.optimizer
        if isinstance(spec, Mapping):
            table = dict(spec)
        elif isinstance(spec, str):
            table = {"name": spec}
        elif callable(spec) and not isinstance(spec, nn.Module):
            return spec if self.lr is None else functools.partial(spec, lr=self.lr)
        else:
            raise InputTypeError(
                f"{self._where('optimizer')} must be an optimizer's name ('adam', 'sgd', ...; see `trainlab "
                "catalog optimizer`), a table such as {'name': 'sgd', 'momentum': 0.9}, or a torch.optim "
                f"class such as torch.optim.SGD; got {type(spec).__name__} {spec!r}")
        given = {k: table[k] for k in ("lr", "learning_rate") if k in table}
        if self.lr is not None:
            if given:
                name = next(iter(given))
                raise InputError(
                    f"{type(self).__name__}: the learning rate is given twice, lr={self.lr!r} and the "
                    f"optimizer's {name}={given[name]!r} (optimizer__{name}). Give it once: leave lr=None to "
                    f"use the optimizer's {name}, or drop {name} from the optimizer.")
            table["lr"] = self.lr
        return table

    def _early_stopping(self) -> dict[str, Any] | None:
        if self.early_stopping is False:
            return None
        settings: dict[str, Any] = {"restore_best_weights": True}  # scikit-learn's MLP keeps the best epoch
        if isinstance(self.early_stopping, Mapping):
            settings.update(self.early_stopping)
        return settings

    def _hidden_layers(self) -> list[Any]:
        from trainlab.layers import Dense, Dropout, Layer, layer_config, layer_from_config

        if self.layers is not None:
            defaults = {"units": ((64,), [64], 64), "activation": ("relu",), "kernel_initializer": (None,),
                        "dropout": (0, 0.0)}
            changed = [name for name, allowed in defaults.items()
                       if not any(_same(getattr(self, name), a) for a in allowed)]
            if changed:
                raise InputError(
                    f"{type(self).__name__}: the hidden layers are given as layers, and also as "
                    f"{', '.join(changed)}. Give them one way: a list of layers, or units/activation/"
                    "kernel_initializer/dropout.")
            if isinstance(self.layers, (str, Mapping)) or not isinstance(self.layers, Sequence):
                raise InputTypeError(
                    f"{self._where('layers')} must be a list of layers (trainlab layers such as "
                    "Dense(64, activation='relu'), or tables such as {'type': 'Dense', 'units': 64}), got "
                    f"{type(self.layers).__name__}")
            built: list[Any] = []
            for i, layer in enumerate(self.layers):
                source = f"{self._where('layers')}[{i}]"
                if isinstance(layer, Mapping):
                    built.append(layer_from_config(dict(layer), source=source))
                elif isinstance(layer, Layer):
                    # Rebuilt from its config: every fit starts from fresh weights, and the given layer
                    # object (a parameter) is never changed.
                    built.append(layer_from_config(layer_config(layer), source=source))
                elif isinstance(layer, nn.Module):
                    fresh = copy.deepcopy(layer)
                    for module in fresh.modules():
                        reset = getattr(module, "reset_parameters", None)
                        if callable(reset):
                            reset()
                    built.append(fresh)
                else:
                    raise InputTypeError(f"{source} must be a trainlab layer, a torch module or a table such "
                                         f"as {{'type': 'Dense', 'units': 64}}, got {type(layer).__name__}")
            return built
        units: Any = [self.units] if isinstance(self.units, numbers.Integral) else self.units
        if isinstance(units, (str, Mapping)) or not isinstance(units, Sequence) or not all(
                isinstance(u, numbers.Integral) and not isinstance(u, bool) and int(u) >= 1 for u in units):
            raise InputError(f"{self._where('units')} must be a positive int (one hidden layer) or a list of "
                             f"them (one per hidden layer; [] for none), got {self.units!r}")
        hidden: list[Any] = []
        extra = {"kernel_initializer": self.kernel_initializer} if self.kernel_initializer is not None else {}
        for width in units:
            hidden.append(Dense(int(width), activation=self.activation, **extra))
            if self.dropout > 0:
                hidden.append(Dropout(float(self.dropout)))
        return hidden

    def _recipe(self, *, seed: int, num_epochs: int, early_stopping: bool) -> dict[str, Any]:
        recipe: dict[str, Any] = {"optimizer": self._optimizer(), "batch_size": self.batch_size,
                                  "num_epochs": num_epochs, "seed": seed, "device": self.device}
        stopping = self._early_stopping() if early_stopping else None
        if stopping is not None:
            recipe["early_stopping"] = stopping
        if self.schedule is not None:
            recipe["schedule"] = self.schedule
        loss = self._loss()
        if loss is not None:
            recipe["loss"] = loss
        return recipe

    def _loss(self) -> Any:
        return None

    def _validation_split(self) -> float | None:
        if self.validation_split is not None:
            return float(self.validation_split)
        return 0.1 if self.early_stopping is not False else None  # scikit-learn's validation_fraction

    def _train(self, x: np.ndarray, y: torch.Tensor, sample_weight: np.ndarray, *, task: Task,
               num_classes: int | None, num_outputs: int, partial: bool = False) -> None:
        """Build a fresh model and train it through `trainlab.fit`; set the fitted attributes.

        `partial` (the first partial_fit): one epoch, no validation split and no early stopping.
        """
        import trainlab
        from trainlab.data import Dataset
        from trainlab.engine.driver import seeded
        from trainlab.layers import Dense
        from trainlab.models import Sequential

        self._check_params()
        self._check_techniques()
        seed = self._seed()
        output = (Dense(num_outputs, activation="softmax") if task == "classification" else Dense(num_outputs))
        with seeded(seed, torch.device("cpu")):  # a torch module's fresh weights come from the run's seed
            hidden = self._hidden_layers()
        model = Sequential([*hidden, output], name=type(self).__name__)
        dataset = Dataset(x=torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), y=y, task=task,
                          num_classes=num_classes, name="X")
        recipe = self._recipe(seed=seed, num_epochs=1 if partial else self.epochs, early_stopping=not partial)
        split = None if partial else self._validation_split()
        history = trainlab.fit(model, dataset, recipe, validation_split=split,
                               stratify=task == "classification" and split is not None,
                               scaling=self.scaling, verbose=self.verbose, sample_weight=_relative(sample_weight))
        self.model_ = model
        self.history_ = dict(history.history)
        self.n_iter_ = len(history.history.get("loss", []))
        self.stop_reason_ = history.stop_reason
        _warn_if_diverged(self, history.stop_reason)
        self._partial_calls = 0

    def _train_more(self, x: np.ndarray, y: torch.Tensor, sample_weight: np.ndarray | None, *,
                    task: Task, num_classes: int | None) -> None:
        """One more epoch on (x, y) for partial_fit: same model, same scaler, the optimizer's state kept."""
        import trainlab
        from trainlab.data import Dataset

        self._check_params()
        model = self.model_
        scaler = model.scaler
        tensor = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if scaler is not None:
            tensor = scaler.transform(tensor)
        dataset = Dataset(x=tensor, y=y, task=task, num_classes=num_classes, name="X")
        self._partial_calls = getattr(self, "_partial_calls", 0) + 1
        base = self._partial_seed
        seed = int(np.random.SeedSequence([base, self._partial_calls]).generate_state(1)[0]) % _MAX_SEED
        recipe = self._recipe(seed=seed, num_epochs=1, early_stopping=False)
        optimizer = getattr(model.optimizer, "torch_optimizer", None)
        if optimizer is not None:
            from trainlab.engine import resolve_device

            model.to(resolve_device(self.device))
            optimizer.load_state_dict(optimizer.state_dict())  # torch moves the moments to the weights' device
            recipe["optimizer"] = optimizer  # the same torch optimizer: its moments carry over
        history = trainlab.fit(model, dataset, recipe, validation_split=None, scaling=None,
                               verbose=self.verbose,
                               sample_weight=_relative(sample_weight) if sample_weight is not None else None)
        model.scaler = scaler
        for key, values in history.history.items():
            self.history_.setdefault(key, []).extend(values)
        self.n_iter_ += 1
        self.stop_reason_ = history.stop_reason
        _warn_if_diverged(self, history.stop_reason)

    def _outputs(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        x = validate_data(self, X, reset=False, dtype=np.float32)
        out: np.ndarray = self.model_.predict(torch.from_numpy(np.ascontiguousarray(x)))
        return out.astype(np.float64)

    def __getstate__(self) -> dict[str, Any]:
        """The fitted network travels as its config (JSON-able) and its tensors: trainlab layers hold
        initializer functions that pickle cannot carry."""
        state: dict[str, Any] = dict(super().__getstate__())  # a copy: Python returns __dict__ itself
        if isinstance(state.get("layers"), (list, tuple)):
            from trainlab.layers import Layer, layer_config

            # Never built (each fit builds fresh layers from them), so their config is all they hold.
            state["layers"] = type(state["layers"])(
                _LayerConfig(layer_config(layer)) if isinstance(layer, Layer) else layer
                for layer in state["layers"])
        model = state.get("model_")
        if model is not None:
            state["model_"] = _PickledModel(model, (int(state["n_features_in_"]),))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        model = state.get("model_")
        if isinstance(model, _PickledModel):
            state = {**state, "model_": model.rebuild()}
        if isinstance(state.get("layers"), (list, tuple)):
            from trainlab.layers import layer_from_config

            state["layers"] = type(state["layers"])(
                layer_from_config(layer.config) if isinstance(layer, _LayerConfig) else layer
                for layer in state["layers"])
        super().__setstate__(state)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")



class NeuralNetClassifier(ClassifierMixin, _NeuralNet):  # type: ignore[misc]
    """A trainlab network as a scikit-learn classifier.

    The network is the hidden layers (`units` wide, or the given `layers`)
    followed by a Dense layer with one unit per class and softmax, trained with
    sparse categorical cross-entropy by `trainlab.fit`.

    Args:
        layers: the hidden layers, as trainlab layers (``Dense(64, activation="relu")``,
            ``Dropout(0.2)``, ...) or their spec tables (``{"type": "Dense", "units": 64}``);
            None builds them from `units`, `activation`, `kernel_initializer` and `dropout`.
            The output layer is added. Each fit builds fresh layers from these.
        units: width of each hidden Dense layer: an int (one layer) or a list (one per layer).
        activation: the hidden layers' activation (`trainlab catalog activation`).
        kernel_initializer: the hidden layers' initializer; None for Dense's default.
        dropout: dropout rate after each hidden layer (0 for none).
        optimizer: a name (`trainlab catalog optimizer`), a table ``{"name": "sgd", "momentum": 0.9}``
            or a torch.optim class. Its settings are also reachable as ``optimizer__<setting>``.
        lr: the learning rate; None for the optimizer's default. Same as ``optimizer__lr``.
        schedule: a learning-rate schedule's name or table (`trainlab catalog schedule`), or None.
        batch_size: samples per step.
        epochs: passes over the training data (the most, with early stopping).
        early_stopping: False, True (Keras's EarlyStopping on val_loss with patience 5, keeping the
            best epoch's weights as scikit-learn's MLP does), or a table of its settings; also
            ``early_stopping__patience=10`` and the like.
        validation_split: share of the training samples held out (stratified); None holds out 0.1
            when early stopping is on (scikit-learn's validation_fraction) and nothing otherwise.
        scaling: "auto" (standardize float features, fitted on the training part, as `trainlab.fit`
            does), "standardize", "minmax" or None.
        class_weight: {class label: weight}, "balanced", or None; multiplies `sample_weight`.
        random_state: None (a new seed each fit), an int (the recipe's `seed`), or a RandomState.
        device: "auto" (CUDA when present), "cpu", "cuda".
        verbose: 0 silent, 1 a progress bar, 2 one line per epoch.

    Attributes:
        model_: the trained `trainlab.Sequential` (save it with ``model_.save("m.keras")``).
        classes_: the class labels, sorted.
        n_features_in_: the number of features seen in fit (and `feature_names_in_` for a DataFrame).
        history_: per-epoch lists (loss, accuracy, val_loss, ..., lr), as Keras's ``history.history``.
        n_iter_: epochs trained. stop_reason_: why training stopped early, or None.
    """

    def __init__(self, *, layers: Sequence[Any] | None = None, units: int | Sequence[int] = (64,),
                 activation: str = "relu", kernel_initializer: str | None = None, dropout: float = 0.0,
                 optimizer: Any = "adam", lr: float | None = None, schedule: Any = None,
                 batch_size: int = 32, epochs: int = 100, early_stopping: bool | Mapping[str, Any] = False,
                 validation_split: float | None = None, scaling: str | None = "auto",
                 class_weight: Mapping[Any, float] | str | None = None,
                 random_state: int | np.random.RandomState | None = None, device: str = "auto",
                 verbose: int = 0) -> None:
        super().__init__(layers=layers, units=units, activation=activation,
                         kernel_initializer=kernel_initializer, dropout=dropout, optimizer=optimizer, lr=lr,
                         schedule=schedule, batch_size=batch_size, epochs=epochs,
                         early_stopping=early_stopping, validation_split=validation_split, scaling=scaling,
                         random_state=random_state, device=device, verbose=verbose)
        self.class_weight = class_weight

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> NeuralNetClassifier:
        """Train a fresh network on (X, y); `sample_weight` weighs each sample's loss (relative weights).

        Returns:
            self, fitted.
        """
        x, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise InputError(
                f"y has one class only ({self.classes_[0]!r}); a classifier needs samples of at least 2 "
                "classes. Check the labels, or the split that gave this part of the data.")
        weights = self._weights(codes, sample_weight, x)
        self._train(x, torch.from_numpy(codes.astype(np.int64)), weights, task="classification",
                    num_classes=len(self.classes_), num_outputs=len(self.classes_))
        self._partial_seed = self._seed()
        return self

    def partial_fit(self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None) -> NeuralNetClassifier:
        """One epoch on (X, y), continuing from the current weights and optimizer state.

        The first call (on an unfitted estimator) needs `classes`, every label
        that will ever be seen, as in scikit-learn's `MLPClassifier`; it builds
        the network and fits the scaling on this first part. Early stopping and
        the validation split do not apply here.
        """
        first = not hasattr(self, "model_")
        x, y = validate_data(self, X, y, dtype=np.float32, reset=first)
        check_classification_targets(y)
        if first:
            if classes is None:
                raise InputError("partial_fit needs classes=<every label> on its first call (the network's "
                                 "output has one unit per class), e.g. partial_fit(X, y, classes=np.unique(y_all))")
            self.classes_ = np.unique(np.asarray(classes))
            if len(self.classes_) < 2:
                raise InputError(f"classes holds one class only ({self.classes_.tolist()}); a classifier "
                                 "needs at least 2")
        elif classes is not None and not np.array_equal(np.unique(np.asarray(classes)), self.classes_):
            raise InputError(f"classes={np.unique(np.asarray(classes)).tolist()} differs from the classes of "
                             f"the first call, {self.classes_.tolist()}; pass the same classes every time")
        unknown = np.setdiff1d(y, self.classes_)
        if unknown.size:
            raise InputError(f"y holds labels {unknown.tolist()[:5]} that are not in classes "
                             f"{self.classes_.tolist()}; pass every label in classes on the first call")
        codes = np.searchsorted(self.classes_, y)
        weights = self._weights(codes, sample_weight, x)
        labels = torch.from_numpy(codes.astype(np.int64))
        if first:
            self._train(x, labels, weights, task="classification", num_classes=len(self.classes_),
                        num_outputs=len(self.classes_), partial=True)
            self._partial_seed = self._seed()
        else:
            self._train_more(x, labels, weights, task="classification", num_classes=len(self.classes_))
        return self

    def _weights(self, codes: np.ndarray, sample_weight: Any, x: np.ndarray) -> np.ndarray:
        weights: np.ndarray = _check_sample_weight(sample_weight, x, dtype=np.float64)
        if self.class_weight is not None:
            from sklearn.utils.class_weight import compute_sample_weight

            if not isinstance(self.class_weight, (str, Mapping)):
                raise InputTypeError(f"{self._where('class_weight')} must be a dict {{label: weight}}, "
                                     f"'balanced' or None, got {type(self.class_weight).__name__}")
            if isinstance(self.class_weight, Mapping):
                unknown = [label for label in self.class_weight if label not in set(self.classes_.tolist())]
                if unknown:
                    raise InputError(f"{self._where('class_weight')} names {unknown[:5]}, which are not classes "
                                     f"of y ({self.classes_.tolist()[:10]}); key it by the labels of y")
            try:
                table = (self.class_weight if isinstance(self.class_weight, str)
                         else {i: self.class_weight.get(label, 1.0) for i, label in enumerate(self.classes_)})
                weights = weights * compute_sample_weight(table, codes)
            except ValueError as error:
                raise InputError(f"{self._where('class_weight')}: {error}") from None
        return weights

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, one column per class of `classes_`, rows summing to 1."""
        proba = self._outputs(X)
        total: np.ndarray = proba.sum(axis=1, keepdims=True)
        normalized: np.ndarray = proba / total  # float32 softmax rows, summed again in float64
        return normalized

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log of `predict_proba`."""
        with np.errstate(divide="ignore"):
            logs: np.ndarray = np.log(self.predict_proba(X))
        return logs

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sample, as a label of `classes_`."""
        best = np.argmax(self._outputs(X), axis=1)
        labels: np.ndarray = self.classes_[best]
        return labels


class NeuralNetRegressor(RegressorMixin, _NeuralNet):  # type: ignore[misc]
    """A trainlab network as a scikit-learn regressor (one or several targets).

    The network is the hidden layers followed by a linear Dense layer with one
    unit per target, trained with `loss` (mean squared error by default). The
    parameters are those of `NeuralNetClassifier`, without `class_weight` and
    with `loss`: a loss name or table (`trainlab catalog loss`: "mse", "mae",
    "huber", ...), None for mse. Targets are used as given; put a
    `TransformedTargetRegressor` around it to scale them.
    """

    def __init__(self, *, layers: Sequence[Any] | None = None, units: int | Sequence[int] = (64,),
                 activation: str = "relu", kernel_initializer: str | None = None, dropout: float = 0.0,
                 optimizer: Any = "adam", lr: float | None = None, schedule: Any = None,
                 loss: Any = None, batch_size: int = 32, epochs: int = 100,
                 early_stopping: bool | Mapping[str, Any] = False, validation_split: float | None = None,
                 scaling: str | None = "auto", random_state: int | np.random.RandomState | None = None,
                 device: str = "auto", verbose: int = 0) -> None:
        super().__init__(layers=layers, units=units, activation=activation,
                         kernel_initializer=kernel_initializer, dropout=dropout, optimizer=optimizer, lr=lr,
                         schedule=schedule, batch_size=batch_size, epochs=epochs,
                         early_stopping=early_stopping, validation_split=validation_split, scaling=scaling,
                         random_state=random_state, device=device, verbose=verbose)
        self.loss = loss

    def _loss(self) -> Any:
        return self.loss

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> NeuralNetRegressor:
        """Train a fresh network on (X, y); y of shape (n,) or (n, targets).

        Returns:
            self, fitted.
        """
        x, y = validate_data(self, X, y, dtype=np.float32, y_numeric=True, multi_output=True)
        targets = self._targets(y)
        weights = _check_sample_weight(sample_weight, x, dtype=np.float64)
        self._train(x, targets, weights, task="regression", num_classes=None, num_outputs=targets.shape[1])
        self._partial_seed = self._seed()
        return self

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> NeuralNetRegressor:
        """One epoch on (X, y), continuing from the current weights and optimizer state (see
        `NeuralNetClassifier.partial_fit`)."""
        first = not hasattr(self, "model_")
        x, y = validate_data(self, X, y, dtype=np.float32, y_numeric=True, multi_output=True, reset=first)
        targets = self._targets(y, reset=first)
        weights = _check_sample_weight(sample_weight, x, dtype=np.float64)
        if first:
            self._train(x, targets, weights, task="regression", num_classes=None, num_outputs=targets.shape[1],
                        partial=True)
            self._partial_seed = self._seed()
        else:
            self._train_more(x, targets, weights, task="regression", num_classes=None)
        return self

    def _targets(self, y: np.ndarray, *, reset: bool = True) -> torch.Tensor:
        values = np.asarray(y, dtype=np.float32)
        two_d = values.ndim == 2
        values = values.reshape(len(values), -1)
        if reset:
            self._two_d_targets = two_d
        elif values.shape[1] != self.model_.layers[-1].units:
            raise InputError(f"y has {values.shape[1]} targets per sample but the network was built for "
                             f"{self.model_.layers[-1].units} on the first partial_fit")
        return torch.from_numpy(np.ascontiguousarray(values))

    def predict(self, X: Any) -> np.ndarray:
        """The predicted targets: shape (n,) when fit got 1-D y, else (n, targets)."""
        out = self._outputs(X)
        return out if self._two_d_targets else out[:, 0]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


class _LayerConfig:
    """A trainlab layer of the `layers` parameter, in pickle: its config (see `__getstate__`)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config


class _PickledModel:
    """A trained `trainlab.Sequential` as pickle can carry it: each trainlab layer as its config (its
    initializer functions cannot be pickled), any other torch module as it is, the weights, the scaler's
    statistics and the optimizer's state (so that partial_fit continues with the same moments)."""

    def __init__(self, model: Any, input_shape: tuple[int, ...]) -> None:
        from trainlab.layers import Layer, layer_config

        self.name = model.name
        self.layers = [("config", layer_config(layer)) if isinstance(layer, Layer) else ("module", layer)
                       for layer in model.layers]
        self.input_shape = input_shape
        self.weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        self.scaler = model.scaler.to_dict() if model.scaler is not None else None
        held = getattr(model.optimizer, "torch_optimizer", None)
        self.optimizer = None if held is None else (type(held), dict(held.defaults), held.state_dict())

    def rebuild(self) -> Any:
        from trainlab.data import scaler_from_dict
        from trainlab.layers import layer_from_config
        from trainlab.models import Sequential
        from trainlab.optimizers import Optimizer

        with torch.random.fork_rng(devices=[]):  # building draws initial weights, replaced below
            model = Sequential([layer_from_config(item) if kind == "config" else item for kind, item in self.layers],
                               name=self.name)
            model.build(self.input_shape)
        model.load_state_dict(self.weights)
        model.scaler = scaler_from_dict(self.scaler) if self.scaler is not None else None
        if self.optimizer is not None:
            kind, defaults, state = self.optimizer
            held = kind([p for p in model.parameters() if p.requires_grad], **defaults)
            held.load_state_dict(state)
            model.optimizer = Optimizer(held)
        return model


def _warn_if_diverged(estimator: Any, stop_reason: str | None) -> None:
    """scikit-learn's ConvergenceWarning when the loss blew up (the weights from before it are kept)."""
    if stop_reason is not None and stop_reason.startswith("training diverged"):
        warnings.warn(f"{type(estimator).__name__}: {stop_reason}", ConvergenceWarning, stacklevel=3)


def _relative(weights: np.ndarray) -> np.ndarray:
    """Sample weights rescaled to mean 1: only their ratios count, so AdaBoost's weights (summing to
    1) train at the recipe's learning rate. The engine's loss is Keras's sum_i w_i * loss_i / batch size."""
    if (weights < 0).any():
        raise InputError("sample_weight holds negative values; weights are >= 0 (0 leaves a sample out of the "
                         "loss). Check how they were computed.")
    total = float(weights.sum())
    if not total > 0:
        raise InputError("sample_weight sums to 0: at least one sample needs a weight > 0 to train on")
    return weights * (len(weights) / total)


def _same(value: Any, default: Any) -> bool:
    return type(value) is type(default) and bool(value == default)


def _check_int(field: str, value: Any, low: int, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise InputError(f"{field} must be an int >= {low}, got {value!r}. {hint}")


__all__ = ["NESTED_PREFIXES", "NeuralNetClassifier", "NeuralNetRegressor"]
