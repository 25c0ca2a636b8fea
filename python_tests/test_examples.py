"""The examples run: a plain DCGAN script and the same script converted to M-BGAN (a few steps)."""

import difflib
import importlib.util
import os

import pytest

pytest.importorskip("sklearn", reason="the examples' data is scikit-learn's digits (the train extra)")

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def _load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["dcgan", "dcgan_mbgan"])
def test_example_trains_and_reports_the_metrics(name, digit_classifier, monkeypatch, capsys):
    example = _load(name)
    monkeypatch.setattr(example, "load_digit_classifier", lambda: digit_classifier[0])
    example.main(["--steps", "3", "--batch-size", "32", "--width", "8", "--eval-samples", "300"])
    out = capsys.readouterr().out
    assert "step     3" in out and "modes covered" in out and "of 1000" in out


def test_the_conversion_to_mbgan_changes_a_few_lines():
    """The README shows this diff; the issue asks for at most 10 changed lines."""
    with open(os.path.join(EXAMPLES, "dcgan.py")) as f:
        plain = f.read().splitlines()
    with open(os.path.join(EXAMPLES, "dcgan_mbgan.py")) as f:
        converted = f.read().splitlines()
    changed = [line for line in difflib.unified_diff(plain, converted, lineterm="", n=0) if line[:1] in "+-"]
    changed = [line for line in changed if not line.startswith(("+++", "---"))]
    assert 0 < len(changed) <= 10, changed
