"""A stand-in for ``deploy/training/train.py`` that keeps its contract and trains nothing.

``python stand_in.py MANIFEST CONFIG.yaml``: reads the manifest (JSON) and the config
(YAML: ``output_dir``, optional ``exit_code``), writes ``training_summary.json`` with what
it was given (argv, working directory, the manifest's job id) to ``output_dir``, prints a
line, and exits with ``exit_code`` (0 by default); a missing manifest exits 2 naming it.
"""

from __future__ import annotations

from pathlib import Path

SOURCE = """
import json, os, sys
import yaml

manifest_path, config_path = sys.argv[1], sys.argv[2]
config = yaml.safe_load(open(config_path, encoding="utf-8"))
try:
    manifest = json.load(open(manifest_path, encoding="utf-8"))
except OSError as exc:
    print(f"train: cannot read manifest {manifest_path}: {exc}", file=sys.stderr)
    sys.exit(2)
out = config["output_dir"]
os.makedirs(out, exist_ok=True)
summary = {"argv": sys.argv[1:], "cwd": os.getcwd(), "job_id": manifest.get("job_id")}
with open(os.path.join(out, "training_summary.json"), "w", encoding="utf-8") as f:
    json.dump(summary, f)
print(f"stand-in trained on {manifest_path}", flush=True)
sys.exit(int(config.get("exit_code", 0)))
"""


def write_stand_in(directory: Path) -> Path:
    """The stand-in script, written to ``directory``."""
    path = directory / "stand_in_train.py"
    path.write_text(SOURCE, encoding="utf-8")
    return path
