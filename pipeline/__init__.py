"""Pure domain logic of pairforge: records, configs, parsing, ranking, error points, pairs.

Nothing here performs I/O or imports Ray, Docker, FastAPI, vLLM or torch, so every rule
can run in a notebook with canned data. Adapters in ``cluster`` and ``services`` call in.
"""
