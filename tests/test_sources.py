"""The table of data sources: every part asks it, and what it promises its module does."""

from __future__ import annotations

from pathlib import Path

import pytest
from uproot.source.fsspec import FSSpecSource

import analysis
from analysis.errors import InputError
from analysis.inputs.sources import SOURCES, is_remote, source_for
from cluster.access.http import Reader
from cluster.access.reading import reader_class
from cluster.access.remote import access
from cluster.cli import main


@pytest.mark.parametrize(
    ("location", "source", "remote"),
    [
        ("/data/4lep", "local", False),
        ("relative/dir", "local", False),
        ("file:///data/4lep", "local", False),
        ("https://opendata.cern.ch/x/", "http", True),
        ("HTTP://127.0.0.1:8080/x/", "http", True),
        ("root://eospublic.cern.ch//eos/x/", "XRootD", True),
    ],
)
def test_each_location_has_its_source(location: str, source: str, remote: bool) -> None:
    assert source_for(location).name == source
    assert is_remote(location) is remote


@pytest.mark.parametrize("location", ["s3://bucket/4lep/", "gs://b/x", "ftp://user:secret@h/x"])
def test_a_scheme_no_source_reads_is_an_input_error_naming_the_url(location: str) -> None:
    with pytest.raises(InputError) as raised:
        is_remote(location)
    shown = location.replace("secret", "***")
    assert str(raised.value).startswith(f"{shown}: no data source reads")
    assert "secret" not in str(raised.value)
    with pytest.raises(InputError, match="no data source reads"):
        analysis.inspect(data=location)


def test_hzz_run_refuses_an_unknown_scheme_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--data", "s3://bucket/4lep/", "--out", str(tmp_path / "out")])
    assert code == 2
    assert "--data s3://bucket/4lep/: no data source reads s3:// URLs" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_what_a_source_promises_its_module_provides() -> None:
    for source in SOURCES:
        if not (source.checked or source.retried or source.cached or source.downloadable):
            assert source.access is None, source.name
            continue
        module = access(source)
        if source.checked:
            assert callable(module.head), source.name
        if source.retried:
            assert issubclass(module.Reader, FSSpecSource), source.name
        if source.cached or source.downloadable:
            assert callable(module.get), source.name


def test_uproot_reads_each_path_with_its_sources_reader() -> None:
    assert reader_class("https://host/x.root") is Reader
    assert reader_class("/data/x.root") is FSSpecSource
    assert reader_class("root://host//x.root") is FSSpecSource
