"""The package's metadata (pyproject.toml) loads without setuptools warnings, so `make run`
and `pip install -e .` print none; the `exchange` entry point is declared there."""

from __future__ import annotations

import tomllib
import warnings
from pathlib import Path

from setuptools.config.pyprojecttoml import apply_configuration
from setuptools.dist import Distribution

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_license_is_an_spdx_expression_with_a_setuptools_that_reads_it() -> None:
    pyproject = tomllib.loads(PYPROJECT.read_text())
    assert pyproject["project"]["license"] == "Apache-2.0"
    # License expressions (PEP 639) need setuptools 77 or later to build.
    assert "setuptools>=77" in pyproject["build-system"]["requires"]


def test_metadata_loads_without_setuptools_warnings() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        distribution = apply_configuration(Distribution(), PYPROJECT)
    assert [f"{warning.category.__name__}: {warning.message}" for warning in caught] == []
    assert distribution.metadata.license_expression == "Apache-2.0"
    assert distribution.entry_points["console_scripts"] == ["exchange = clients.cli:main"]
