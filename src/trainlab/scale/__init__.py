"""Training past one process, on engines that already do it well: Ray and torch.distributed.

- **Many runs, many machines** (`trainlab.scale.ray`): ``trainlab study SPEC --ray [ADDRESS]``
  trains each group of stackable runs of a study as one Ray task and gathers
  the results into the same study folder, run index and report as a local run.
  Ray is an optional extra: ``pip install 'trainlab[ray]'``.
- **One model, many processes** (`trainlab.scale.distributed`):
  ``torchrun --nproc_per_node 2 -m trainlab fit SPEC`` (or ``trainlab fit SPEC
  --nproc 2``, which starts torchrun) splits every batch of every epoch's
  permutation between the processes and averages their gradients (gloo on the
  CPU, NCCL on GPUs), through the engine's own extension points: a batch
  transform, a gradient hook and a callback. Rank 0 writes the run folder.

Neither is a training loop of its own: every process trains through
`trainlab.engine`.
"""

from __future__ import annotations
