"""Problem synthesis from open-source code (Focused-DPO step 1, ALGORITHMS.md §1.1).

Pure domain logic; ``cluster.synthesis`` reads the files and calls the model::

    picked = pick_functions(source_text, "json/decoder.py")          # seeds.py
    prompt = synthesis_prompt(picked.seeds[0])                       # prompt.py
    screened = screen_answers([(seed, answer_text), ...],            # screening.py:
                              benchmark=BenchmarkIndex(prompts))     #   answer.py, dedup.py,
                                                                     #   decontamination.py
Nothing here imports datasketch until deduplication is used (``pipeline.synthesis.dedup``).
"""

from __future__ import annotations

from pipeline.synthesis.answer import DropReason, read_answer
from pipeline.synthesis.decontamination import BenchmarkIndex, load_benchmark_prompts
from pipeline.synthesis.prompt import synthesis_prompt
from pipeline.synthesis.report import SynthesisReport
from pipeline.synthesis.seeds import FilePick, SeedFunction, is_test_file, pick_functions

__all__ = [
    "BenchmarkIndex",
    "DropReason",
    "FilePick",
    "SeedFunction",
    "SynthesisReport",
    "is_test_file",
    "load_benchmark_prompts",
    "pick_functions",
    "read_answer",
    "synthesis_prompt",
]
