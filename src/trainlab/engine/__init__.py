"""THE training loop (see `trainlab.engine.driver`): one driver for K >= 1 members.

    config      what the loop is told: LoopConfig, TrainData, Technique, BatchTransform, GradientHook
    driver      the loop over K members: order, lr per member per step, hooks, logs, validation,
                divergence, stop, checkpoints
    state       per-member run state; checkpoint snapshot and restore
    step        the Step protocol; the one backward call
    solo        SoloStep: any nn.Module with any torch.optim optimizer
    stacked     StackedStep: K members of one architecture in one pass
    plan        which executor runs which members, decided from the model, the members and the device
    evaluate    evaluate / predict for one model or K members
    streams     counter-based random streams for random layers
    source      streamed batches (DataLoader, generator): Keras's epoch semantics, exact resume
"""

from trainlab.engine.config import (
    BatchTransform,
    ClipGradNorm,
    ClipGradValue,
    GradientHook,
    LoopConfig,
    Technique,
    TrainData,
)
from trainlab.engine.driver import (
    _diverged,
    _divergence_reason,
    auto_loss,
    output_activation,
    probe_outputs,
    resolve_device,
    resolve_loss,
    train,
)
from trainlab.engine.evaluate import (
    evaluate_tensors,
    make_metrics,
    predict_members,
    predict_tensors,
    targets,
)
from trainlab.engine.source import BatchSource, StreamData, TensorBatches

# Names other modules of trainlab used before the loop became a package.
_targets = targets
_metrics = make_metrics

__all__ = [
    "_divergence_reason", "_diverged", "make_metrics", "targets",
    "BatchTransform", "ClipGradNorm", "ClipGradValue", "GradientHook", "LoopConfig", "Technique", "TrainData",
    "auto_loss", "evaluate_tensors", "output_activation", "predict_members", "predict_tensors", "probe_outputs",
    "resolve_device", "resolve_loss", "train",
    "BatchSource", "StreamData", "TensorBatches",
]
