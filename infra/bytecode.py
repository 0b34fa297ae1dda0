"""The function's code as it ships: the ``auditor`` package's ``.py`` files, compiled to bytecode
for the runtime's Python when an interpreter of that version is at hand.

Lambda's ``/var/task`` is read-only: without ``__pycache__`` in the asset, every cold start
compiles the whole package before the first event (about 50 ms here, ~10 % of a cold start;
bench: cold_start_vs_boto3_publish). Bytecode only helps when it was compiled by the runtime's
own minor version (``cpython-313`` files for Python 3.13; any other version's are ignored), so
it is built by an interpreter of that version: the one running the CDK app, or ``python3.13``
on the PATH. Without one, the asset holds the sources only and the synthesis says so.

The ``.pyc`` files are *unchecked-hash* based (PEP 552): no timestamps (the asset is the same
bytes whenever it is built, so its hash only changes when the code does) and no check against
the source at import (the asset never changes once deployed).

No CDK import here: the benchmark builds its copy of the asset with this module too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

PACKAGE = "auditor"
#: The command line's subpackage: never shipped in the function.
CLI = "cli"
#: Where Lambda unpacks the function's code.
LAMBDA_TASK_ROOT = "/var/task"


def sources(directory: Path) -> list[Path]:
    """The package's ``.py`` files under ``directory`` (relative paths): nothing an editable
    install, a test run or an editor leaves beside them (caches, ``*.egg-info``, swap files),
    and not the command line (``auditor/cli/``: its readers of files, S3 and LookupEvents never
    run in the function, and tests/unit/test_layers.py checks that the handler imports none of it)."""
    root = directory / PACKAGE
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(directory)
        if relative.parts[:2] == (PACKAGE, CLI):
            continue
        if path.is_file() and not any(part == "__pycache__" or part.endswith(".egg-info") or part.startswith(".")
                                      for part in relative.parts):
            found.append(relative)
    return found


def version_of(interpreter: str) -> Optional[str]:
    """``"3.13"`` for a Python 3.13 interpreter, None when it cannot be run."""
    if Path(interpreter).resolve() == Path(sys.executable).resolve():
        return f"{sys.version_info[0]}.{sys.version_info[1]}"
    try:
        done = subprocess.run([interpreter, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def interpreter_for(version: str) -> Optional[str]:
    """A Python interpreter of ``version`` ("3.13"): the one running this, else ``python<version>``
    on the PATH; None when there is none."""
    for candidate in (sys.executable, shutil.which(f"python{version}")):
        if candidate and version_of(candidate) == version:
            return candidate
    return None


def build(directory: Path, output: Path, interpreter: Optional[str]) -> bool:
    """Copy the package's sources from ``directory`` into ``output`` and, with ``interpreter``,
    compile them there. Returns whether the asset holds bytecode. Raises when the compiler fails
    (a syntax error must fail the synthesis, not the first cold start)."""
    for relative in sources(directory):
        target = output / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(directory / relative, target)
    if interpreter is None:
        return False
    # -s/-p: the file names compiled in are Lambda's (/var/task/auditor/...), not this build's
    # temporary folder, so the bytes (and the asset hash) do not depend on where it was built.
    # PYTHONHASHSEED fixed: the order a set of constants is written in must not vary between builds.
    done = subprocess.run([interpreter, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash",
                           "-s", str(output), "-p", LAMBDA_TASK_ROOT, str(output / PACKAGE)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONHASHSEED": "0"})
    if done.returncode != 0:
        raise RuntimeError(f"compiling the function's package with {interpreter} failed:\n{done.stdout}{done.stderr}")
    return True
