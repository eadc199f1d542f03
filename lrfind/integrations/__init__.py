"""Adapters for other people's training objects: they turn those objects into a ``range_test``
call and carry the answer back (``lrfind.integrations.transformers.find_lr`` for a Hugging Face
Trainer, ``lrfind.integrations.accelerate`` for an ``Accelerator``). Their third-party imports
are optional: nothing else in lrfind imports this package."""
