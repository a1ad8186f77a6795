"""Where gradleak's files are written and read: one JSON encoder, one artefact writer, and the
run-folder format.

* :mod:`gradleak.persistence.jsonio`: :func:`to_jsonable` / :func:`dumps`, the one JSON
  encoding (tensors to lists, non-finite floats to ``"inf"``/``"-inf"``/``"nan"``).
* :mod:`gradleak.persistence.files`: :func:`write_artifact`, the one function every report,
  demo and experiment file goes through.
* :mod:`gradleak.persistence.runs`: a run folder's raw files (``reconstruction.safetensors``,
  ``trace.json``, ``metrics.json``, ``config.json``) and :func:`load_run`.

``Observation.save`` / ``Observation.load`` (in :mod:`gradleak.types`) are the observation's
format.
"""

from gradleak.persistence.files import write_artifact, write_json
from gradleak.persistence.jsonio import dumps, to_jsonable
from gradleak.persistence.runs import RunData, load_run, save_run_data

__all__ = ["RunData", "dumps", "load_run", "save_run_data", "to_jsonable", "write_artifact",
           "write_json"]
