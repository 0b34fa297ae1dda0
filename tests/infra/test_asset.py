"""The function's code asset is the auditor package's ``.py`` files and their bytecode for the
runtime's Python (when an interpreter of that version is at hand), and nothing else: both as
synthesized from the real tree and against a tree full of what an editable install, a test run
or an editor leaves behind."""

from __future__ import annotations

from pathlib import Path

import json
import subprocess
import sys

import pytest

from .conftest import REPO

pytestmark = pytest.mark.infra


def staged_files(asset_dir: Path) -> list[str]:
    return sorted(p.relative_to(asset_dir).as_posix() for p in asset_dir.rglob("*") if p.is_file())


def test_synthesized_asset_holds_the_auditor_package_sources(default_synth, template):
    outdir = default_synth[3]
    (fn,) = [f["Properties"] for f in template["Resources"].values()
             if f["Type"] == "AWS::Lambda::Function" and f["Properties"].get("Handler") == "auditor.handler.handler"]
    asset = outdir / f"asset.{fn['Code']['S3Key'].split('.')[0]}"
    assert asset.is_dir(), sorted(p.name for p in outdir.iterdir())
    from infra.bytecode import interpreter_for
    from infra.function import RUNTIME

    files = staged_files(asset)
    sources = sorted(p.relative_to(REPO / "functions").as_posix() for p in (REPO / "functions" / "auditor").rglob("*.py")
                     if "__pycache__" not in p.parts and "cli" not in p.relative_to(REPO / "functions" / "auditor").parts[:1])
    assert not any(f.startswith("auditor/cli/") for f in files)  # the command line never ships in the function
    if interpreter_for(RUNTIME.name.removeprefix("python")) is None:  # this machine: sources only, and a warning
        assert files == sources  # every source ships
        warnings = [e["data"] for path in outdir.glob("*.metadata.json") for entries in json.loads(path.read_text()).values()
                    for e in entries if e["type"] == "aws:cdk:warning"]
        assert any("each cold start compiles them" in w for w in warnings), warnings
    else:
        assert sorted(f for f in files if f.endswith(".py")) == sources


def test_exclusions_hold_against_a_tree_of_leftovers(tmp_path):
    """Synthesizes a one-function app over a planted tree with the stack's own asset settings."""
    import aws_cdk as cdk
    from aws_cdk import aws_lambda as lambda_

    from infra.function import function_code

    src = tmp_path / "functions"
    planted = {
        "auditor/__init__.py": True,
        "auditor/handler.py": True,
        "auditor/causes/__init__.py": True,
        "auditor/causes/deep/rule.py": True,
        "auditor/cli/__init__.py": False,  # the command line: never in the function
        "auditor/cli/sources.py": False,
        "auditor/__pycache__/handler.cpython-313.pyc": False,
        "auditor/causes/__pycache__/x.cpython-313.pyc": False,
        "auditor/stale.pyc": False,
        "auditor/notes.md": False,
        "auditor/data.json": False,
        "auditor/README": False,
        "auditor/.handler.py.swp": False,
        "secrets_kms_failure_auditor.egg-info/PKG-INFO": False,
        "auditor.egg-info/SOURCES.txt": False,
        "conftest.py": False,
        "tests/test_x.py": False,
        "other/auditor/__init__.py": False,
    }
    for rel in planted:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text("# planted\n")
    outdir = tmp_path / "out"
    app = cdk.App(outdir=str(outdir))
    stack = cdk.Stack(app, "AssetOnly")
    lambda_.Function(stack, "F", runtime=lambda_.Runtime.PYTHON_3_13, handler="auditor.handler.handler",
                     code=function_code(src, interpreter=sys.executable))
    app.synth()
    (asset,) = [p for p in outdir.iterdir() if p.name.startswith("asset.")]
    kept = sorted(rel for rel, kept in planted.items() if kept)
    files = staged_files(asset)
    assert sorted(f for f in files if not f.endswith(".pyc")) == kept
    # bytecode only for what ships, freshly built (the planted cpython-313 files are not copied)
    tag = sys.implementation.cache_tag
    assert sorted(f for f in files if f.endswith(".pyc")) == sorted(
        f"{rel.rsplit('/', 1)[0]}/__pycache__/{rel.rsplit('/', 1)[1][:-3]}.{tag}.pyc" for rel in kept)


def synth_asset(src: Path, outdir: Path, interpreter) -> Path:
    import aws_cdk as cdk
    from aws_cdk import aws_lambda as lambda_

    from infra.function import function_code

    app = cdk.App(outdir=str(outdir))
    stack = cdk.Stack(app, "AssetOnly")
    lambda_.Function(stack, "F", runtime=lambda_.Runtime.PYTHON_3_13, handler="auditor.handler.handler",
                     code=function_code(src, interpreter=interpreter, scope=stack))
    assembly = app.synth()
    (asset,) = [p for p in outdir.iterdir() if p.name.startswith("asset.")]
    return asset, assembly


def test_with_an_interpreter_of_the_runtime_version_every_module_ships_its_unchecked_bytecode(tmp_path):
    """Here the interpreter running the tests stands in for the runtime's: every module gets a
    ``__pycache__/<module>.<tag>.pyc`` that this interpreter imports without the source's mtime
    (unchecked-hash, PEP 552), and building twice gives the same asset (same hash, no redeploy)."""
    tag = sys.implementation.cache_tag
    first, _ = synth_asset(REPO / "functions", tmp_path / "one", sys.executable)
    files = staged_files(first)
    sources = [f for f in files if f.endswith(".py")]
    assert sources and all(f.startswith("auditor/") for f in files)
    for source in sources:
        folder, name = source.rsplit("/", 1)
        compiled = first / folder / "__pycache__" / f"{name[:-3]}.{tag}.pyc"
        assert compiled.is_file(), source
        flags = int.from_bytes(compiled.read_bytes()[4:8], "little")
        assert flags == 0b01, (source, flags)  # hash-based, not checked against the source
    assert len(files) == 2 * len(sources)
    second, _ = synth_asset(REPO / "functions", tmp_path / "two", sys.executable)
    assert second.name == first.name  # the asset hash is its content's, and the content is reproducible
    # and the copy imports from its bytecode: a source edited after the build is not read
    (first / "auditor" / "contract.py").write_text("raise SystemExit('the source was compiled at import')\n")
    done = subprocess.run([sys.executable, "-c", "import auditor.contract as c; print(c.NAMESPACE)"], cwd=first,
                          env={"PYTHONPATH": str(first), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip(), done.stderr


def test_without_an_interpreter_of_the_runtime_version_the_synthesis_warns(tmp_path, monkeypatch):
    from infra import bytecode

    monkeypatch.setattr(bytecode, "interpreter_for", lambda version: None)
    asset, assembly = synth_asset(REPO / "functions", tmp_path / "out", None)
    assert not [f for f in staged_files(asset) if not f.endswith(".py")]
    warnings = [m.entry.data for m in assembly.get_stack_by_name("AssetOnly").messages if m.entry.type == "aws:cdk:warning"]
    assert any("Python 3.13" in w and "each cold start compiles them" in w for w in warnings), warnings


def test_a_syntax_error_fails_the_synthesis_not_the_first_cold_start(tmp_path):
    from infra.bytecode import build

    (tmp_path / "src" / "auditor").mkdir(parents=True)
    (tmp_path / "src" / "auditor" / "__init__.py").write_text("def broken(:\n")
    with pytest.raises(RuntimeError, match="compiling the function's package"):
        build(tmp_path / "src", tmp_path / "out", sys.executable)
