"""The function's code asset is the auditor package's ``.py`` files and nothing else, both as
synthesized from the real tree and against a tree full of what an editable install, a test
run or an editor leaves behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = pytest.mark.infra


def staged_files(asset_dir: Path) -> list[str]:
    return sorted(p.relative_to(asset_dir).as_posix() for p in asset_dir.rglob("*") if p.is_file())


def only_package_sources(files: list[str]) -> bool:
    return all(f.startswith("auditor/") and f.endswith(".py") and "__pycache__" not in f for f in files)


def test_synthesized_asset_holds_only_the_auditor_package_sources(default_synth, template):
    outdir = default_synth[3]
    (fn,) = [f["Properties"] for f in template["Resources"].values()
             if f["Type"] == "AWS::Lambda::Function" and f["Properties"].get("Handler") == "auditor.handler.handler"]
    asset = outdir / f"asset.{fn['Code']['S3Key'].split('.')[0]}"
    assert asset.is_dir(), sorted(p.name for p in outdir.iterdir())
    files = staged_files(asset)
    assert files and only_package_sources(files), files
    sources = sorted(p.relative_to(REPO / "functions").as_posix() for p in (REPO / "functions" / "auditor").rglob("*.py")
                     if "__pycache__" not in p.parts)
    assert files == sources  # every source ships


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
    lambda_.Function(stack, "F", runtime=lambda_.Runtime.PYTHON_3_13, handler="auditor.handler.handler", code=function_code(src))
    app.synth()
    (asset,) = [p for p in outdir.iterdir() if p.name.startswith("asset.")]
    assert staged_files(asset) == sorted(rel for rel, kept in planted.items() if kept)
