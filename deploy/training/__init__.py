"""The DPO training job that consumes a pairforge dataset (DESIGN.md §7).

Reads a build's ``manifest.json``, verifies its ``pairs`` shards, turns the stored
character spans into per-token weights (Focused-DPO, ALGORITHMS.md §1.8; Target-DPO,
§2.4) and trains with a TRL ``DPOTrainer`` subclass, on one CPU or under
``accelerate launch`` with DeepSpeed ZeRO-3. It stands alone: it imports ``pipeline``'s
manifest model and nothing of ``cluster`` or ``services``. Entry point: ``train.py``.
"""
