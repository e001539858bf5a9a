"""The command line starts at once: --help of every command, `backbones` and `layers` of a built-in entry
import no torch (issue 13, item 6), and the static catalog they read can never drift from the live registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import typer

from transferlab.backbones import catalog
from transferlab.cli.main import app

HEAVY = ("torch", "torchvision", "sklearn", "timm", "matplotlib", "scipy")

# Runs the CLI in a fresh interpreter once per argument list (stdout kept, one separator line between runs) and
# prints, on the last line of stderr, each run's exit code and the heavy modules imported so far.
PROBE = r"""
import json, sys
runs, report = json.loads(sys.argv[1]), []
if sys.argv[2] == "live":  # the live registry answers everything: what the catalog stands in for
    import transferlab.backbones.catalog as catalog
    catalog.catalog = lambda: None
from transferlab.cli.main import main
for args in runs:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code
    print("=" * 20, flush=True)
    report.append([code, [m for m in HEAVY if m in sys.modules]])
print(json.dumps(report), file=sys.stderr)
"""


def probe(runs: list[list[str]], mode: str = "catalog") -> tuple[str, list]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-c", f"HEAVY = {HEAVY!r}\n" + PROBE, json.dumps(runs), mode],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, json.loads(proc.stderr.strip().splitlines()[-1])


def command_paths(command=None, path=()) -> list[tuple[str, ...]]:
    """Every command and group of the app, as argument prefixes."""
    command = command or typer.main.get_command(app)
    paths = [path]
    if getattr(command, "commands", None):  # a group (typer's own click or click's)
        for name, sub in command.commands.items():
            paths += command_paths(sub, (*path, name))
    return paths


def test_help_of_every_command_imports_no_torch():
    paths = command_paths()
    assert len(paths) > 30 and ("study", "layers") in paths and ("explain", "gradcam") in paths
    _, report = probe([[*path, "--help"] for path in paths])
    for path, (code, heavy) in zip(paths, report):
        assert code == 0, path
        assert heavy == [], f"`transferlab {' '.join(path)} --help` imported {heavy}"


LISTINGS = [["backbones"], ["backbones", "--weights"], ["layers", "vgg16"], ["layers", "digits_cnn"],
            ["layers", "vit_b_16"], ["layers", "efficientnet_lite0"]]


def test_backbones_and_layers_import_no_torch_and_print_what_the_live_registry_prints():
    fast, report = probe(LISTINGS)
    assert report == [[0, []]] * len(LISTINGS)
    live, report = probe(LISTINGS, "live")
    assert [code for code, _ in report] == [0] * len(LISTINGS) and "torch" in report[-1][1]
    assert fast == live
    assert "│ relu7      │ classifier.4 │ (4096,)" in fast and "IMAGENET1K_SWAG_E2E_V1" in fast


def test_the_catalog_matches_the_live_registry():
    stamp, entries = catalog.stored()
    fresh_stamp, fresh = catalog.generate()
    message = f"the backbone catalog is out of date: regenerate it with `.venv/bin/python -m {catalog.__name__}`"
    assert [e["name"] for e in entries] == [e["name"] for e in fresh], message
    for old, new in zip(entries, fresh):
        assert old == new, f"{message} ({old['name']} differs)"
    assert stamp == fresh_stamp, f"{message} (generated with {stamp}, installed: {fresh_stamp})"


def test_the_catalog_is_ignored_with_other_library_versions(monkeypatch):
    monkeypatch.setattr(catalog, "_CURRENT", {})
    monkeypatch.setattr(catalog, "fingerprint", lambda: "torch=0.0 torchvision=0.0 timm=None")
    assert catalog.catalog() is None and catalog.layers_of("vgg16") is None
    assert [i.name for i in catalog.listing()] == [e["name"] for e in catalog.stored()[1]]


def test_the_listing_and_a_lookup_agree_with_the_catalog():
    from transferlab.backbones import get_spec, list_backbones

    get_spec("efficientnet_lite0")
    assert list_backbones() == [e.name for e in catalog.catalog()]
    assert catalog.layers_of("timm/resnet18") is None and catalog.layers_of("vgg61") is None


def test_import_transferlab_is_lazy_and_every_public_name_resolves():
    code = ("import sys, transferlab as tl, transferlab.backbones as b, transferlab.cli.main\n"
            f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
            "assert heavy == [], heavy\n"
            "assert set(tl.__all__) <= set(dir(tl)) and set(b.__all__) <= set(dir(b))\n"
            "missing = [n for n in tl.__all__ if getattr(tl, n, None) is None]\n"
            "missing += [n for n in b.__all__ if getattr(b, n, None) is None]\n"
            "assert missing == [], missing\n"
            "assert tl.fit.__module__.startswith('transferlab.classify') and 'torch' in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        import transferlab

        transferlab.nope  # noqa: B018


def test_builtins_register_in_one_order_whatever_module_is_imported_first():
    code = ("import transferlab.backbones.torchvision_zoo, transferlab.backbones.digits_cnn\n"
            "from transferlab.backbones.registry import list_backbones\n"
            "print(list_backbones())\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str([e.name for e in catalog.catalog()])


def test_the_cli_max_pixels_default_is_the_library_s():
    from transferlab.cli import options
    from transferlab.data import DEFAULT_MAX_PIXELS

    assert options.DEFAULT_MAX_PIXELS == DEFAULT_MAX_PIXELS
