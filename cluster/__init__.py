"""Ray adapters: samplers, executor actors, the job driver and the shard writer.

The only package that imports Ray and vLLM. Logic lives in ``pipeline`` and ``sandbox``;
this package places it on a cluster.
"""
