"""Training a LAS model: `asr train` and `asr average`.

`config` (`TrainConfig`: every section of a training YAML), `data` (manifests, filters and the
learnability guard into loaders), `learnable` (what the model can learn from an utterance),
`schedule` (the learning rate), `steps` (seeding, bookkeeping, throughput), `loop` (the
`Trainer` and `train`), `validation` (dev metrics and attention plots), `checkpoints` (resume,
best weights, averaging, the exported model directory), `distributed` (torchrun and DDP).

May import everything below it: `asr.data`, `asr.model`, `asr.decoding`, `asr.scoring`,
`asr.checkpoint`, `asr.recognize`, `asr.frontend`. Nothing of inference imports it. This
file imports nothing: `from asr.training.loop import train`.
"""
