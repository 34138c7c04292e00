"""Studies on a Ray cluster: one Ray task per group of stackable runs.

    trainlab study examples/optimizers.toml --ray                 # a local Ray (or the one RAY_ADDRESS names)
    trainlab study examples/optimizers.toml --ray 10.0.0.5:6379   # the cluster whose head node is there

`RayExecutor` is a `trainlab.study.runner.GroupExecutor`: the study runner
groups its runs as it always does (`group_runs`), and each group becomes one
task that calls the same `train_group` a local study calls, on whichever node
Ray schedules it. The trained runs come back to this process, which writes
their folders, the run index and the report exactly as for a local study; the
results are the same, bit for bit, because the task runs the same code on the
same data with the same seeds. The data set travels with the tasks (one copy
in Ray's object store), so a CSV file needs to exist only here; trainlab
itself must be installed on every node (``pip install 'trainlab[ray]'``).

Ray's object store carries the trained models between trainlab's own
processes; nothing a user loads later is pickled: run folders hold
safetensors and JSON as always.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from trainlab.callbacks import History
from trainlab.data import Dataset
from trainlab.errors import InputError
from trainlab.study.runner import StudyProgress, Trained, train_group
from trainlab.study.spec import PlannedRun

__all__ = ["CONNECT_TIMEOUT", "RayExecutor", "check_reachable", "require_ray"]

#: Seconds to wait for a cluster's head node to answer before the address counts as unreachable.
CONNECT_TIMEOUT = 10.0


def require_ray() -> ModuleType:
    """The `ray` module, or an InputError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError(
            "--ray needs Ray, which is an optional extra of trainlab and is not installed here. Install it with "
            "pip install 'trainlab[ray]' (or pip install ray) on this machine and on every node of the cluster, "
            "then run the study again; without --ray the study trains on this machine.") from None
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of a concrete cluster address; None for Ray's own words ("auto", "local")."""
    rest = address.split("://", 1)[1] if "://" in address else address
    if rest in ("auto", "local"):
        return None
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(
            f"--ray: '{address}' is not a Ray cluster address. Give the head node as HOST:PORT (e.g. "
            "10.0.0.5:6379, the address `ray start --head` prints), ray://HOST:10001 for Ray Client, or 'auto' "
            "for the cluster this machine belongs to; leave it out for a local Ray.")
    return host.strip("[]"), int(port)


def check_reachable(address: str | None, *, timeout: float = CONNECT_TIMEOUT) -> None:
    """Refuse, within `timeout` seconds, a cluster address whose head node does not answer."""
    if address is None:
        return
    found = _host_port(address)
    if found is None:
        return
    start = time.monotonic()
    try:
        with socket.create_connection(found, timeout=timeout):
            return
    except OSError as error:
        reason = "no answer" if isinstance(error, TimeoutError) else (error.strerror or str(error))
        raise InputError(
            f"--ray: the Ray cluster at '{address}' cannot be reached ({reason}, after "
            f"{time.monotonic() - start:.1f} s). Check that its head node is running (`ray status` there), that "
            "the address is the one `ray start --head` printed (port 6379 by default; 10001 for ray://), and "
            "that no firewall blocks the port; or leave the address out to train on a local Ray.") from None


def _train_group_task(group: list[PlannedRun], dataset: Dataset, cv: int | None = None) -> list[tuple[str, Trained]]:
    """The body of one Ray task: the study runner's own `train_group`, its results sent back."""
    results: list[tuple[str, Trained]] = []

    def collect(run: PlannedRun, trained: Trained) -> None:
        results.append((run.run_id, Trained(history=_portable(trained.history), model=trained.model,
                                            seconds=trained.seconds, shared_by=trained.shared_by)))

    train_group(group, dataset, done=collect, cv=cv)
    return results


def _portable(history: History) -> History:
    """The History's record without its ties to the loop (run state, callbacks, optimizer)."""
    copy = History()
    for key in ("history", "epoch", "steps", "stop_reason", "seed", "params", "recipe", "scaler", "dataset",
                "version"):
        setattr(copy, key, getattr(history, key))
    return copy


class RayExecutor:
    """Train a study's groups of runs as Ray tasks (see the module docstring).

    Args:
        address: the cluster (``HOST:PORT``, ``ray://HOST:PORT``, ``"auto"`` for the one this machine
            belongs to); None: the cluster ``RAY_ADDRESS`` names, else a new local Ray. When Ray is
            already initialized in this process, that instance is used and left running.
        num_cpus: CPUs Ray reserves for each task.
    """

    def __init__(self, address: str | None = None, *, num_cpus: float = 1.0) -> None:
        # Before the study writes anything: Ray is installed, the address is one, and its head node answers.
        self.ray = require_ray()
        self.address = address
        self.num_cpus = num_cpus
        check_reachable(address if address is not None else os.environ.get("RAY_ADDRESS") or None)

    def __call__(self, groups: Sequence[tuple[list[PlannedRun], Dataset]], *,
                 begin: Callable[[Sequence[PlannedRun]], None], done: Callable[[PlannedRun, Trained], None],
                 progress: StudyProgress, cv: int | None = None) -> None:
        if not groups:
            return
        ray = self.ray
        started = self._connect(ray)
        pending: dict[Any, list[PlannedRun]] = {}
        try:
            task = ray.remote(num_cpus=self.num_cpus, max_retries=0)(_train_group_task)
            stored: dict[int, Any] = {}
            for group, dataset in groups:
                ref = stored.setdefault(id(dataset), ray.put(dataset))
                begin(group)
                for run in group:
                    progress.run_begin(run)
                pending[task.remote(group, ref, cv)] = group
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                group = pending.pop(ready[0])
                by_id = {run.run_id: run for run in group}
                for run_id, trained in self._get(ray, ready[0]):
                    run, logs = by_id[run_id], trained.history.history
                    for epoch in range(len(logs.get("loss", []))):  # the epochs, told now that they are known
                        progress.epoch_end(run, epoch, {k: v[epoch] for k, v in logs.items() if epoch < len(v)})
                    trained.history.model = trained.model
                    done(run, trained)
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            if started:
                ray.shutdown()

    def _connect(self, ray: ModuleType) -> bool:
        """Join the cluster (or start a local Ray); whether this call started the connection."""
        if ray.is_initialized():
            return False
        address = self.address if self.address is not None else os.environ.get("RAY_ADDRESS") or "local"
        options: dict[str, Any] = {"logging_level": "ERROR", "log_to_driver": False}
        if address == "local":
            # Ray runs its workers at niceness 15 by default; these workers are the study's training, which
            # the user asked for, so they get the priority the local study would have.
            options.update(include_dashboard=False, _system_config={"worker_niceness": 0})
        try:
            ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as error:
            where = f"the Ray cluster at '{self.address}'" if self.address else "a Ray instance"
            raise InputError(
                f"--ray: could not connect to {where}: {str(error).splitlines()[0] if str(error) else type(error).__name__}. "
                "Check the address (the one `ray start --head` printed), that the cluster is running "
                "(`ray status`), and that it runs the same Ray version as this machine.") from None
        return True

    def map(self, function: Callable[..., Any], arguments: Sequence[tuple[Any, ...]], *,
            poll: Callable[[], None] | None = None, interval: float = 0.5) -> list[Any]:
        """``function(*args)`` for each of `arguments`, each as one Ray task; the results in that order.

        The worker processes of a search (`trainlab.search.run_search`) run this way: the same worker
        function a local search starts as a process, on whichever node Ray schedules it. `poll` is
        called every `interval` seconds while tasks run (a progress display reads the shared storage).
        An InputError raised in a task is raised here as one; a task that fails cancels the others.
        """
        if not arguments:
            return []
        ray = self.ray
        started = self._connect(ray)
        refs: list[Any] = []
        waiting: list[Any] = []
        try:
            task = ray.remote(num_cpus=self.num_cpus, max_retries=0)(function)
            refs = [task.remote(*args) for args in arguments]
            waiting = list(refs)
            while waiting:
                ready, waiting = ray.wait(waiting, num_returns=len(waiting), timeout=interval)
                for ref in ready:
                    self._get(ray, ref)  # a failed task stops the others now, not after they end
                if poll is not None:
                    poll()
            return [self._get(ray, ref) for ref in refs]
        finally:
            for ref in waiting:
                ray.cancel(ref, force=True)
            if started:
                ray.shutdown()

    @staticmethod
    def _get(ray: ModuleType, ref: Any) -> Any:
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as error:
            cause = getattr(error, "cause", None)
            if isinstance(cause, InputError):
                raise InputError(str(cause)) from None
            raise
