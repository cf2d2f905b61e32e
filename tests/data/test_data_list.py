"""``list_sources``: every known name, what it reads, and found exactly where loading would look."""

import numpy as np
import pytest

from fedhar.data.sources import ENV_ROOT, KNOWN_SOURCES, SOURCE_FORMATS, data_root, list_sources, resolve_source


def _fake_hhar(root):
    np.savez(root / "hhar_sa_part.npz", X=np.zeros((4, 3, 8), np.float32), y=np.arange(4) % 2)


def test_every_known_source_is_listed_with_what_it_reads(tmp_path):
    rows = list_sources(str(tmp_path))
    assert [r["name"] for r in rows] == [*KNOWN_SOURCES, "synthetic"]
    assert all(r["reads"] == SOURCE_FORMATS[r["name"]] and r["reads"] for r in rows)


def test_found_follows_the_loader_resolution(tmp_path):
    _fake_hhar(tmp_path)
    rows = {r["name"]: r for r in list_sources(str(tmp_path))}
    assert rows["hhar"]["found"] and rows["hhar"]["path"] == str(tmp_path / "hhar_sa_part.npz")
    assert rows["hhar"]["path"] == resolve_source("hhar", str(tmp_path))
    assert rows["synthetic"]["found"]
    for name in ("uci_har", "hapt", "wisdm", "limu_uci", "smarthome"):
        assert not rows[name]["found"] and rows[name]["path"] is None
        assert f"`{name}` not found in {tmp_path}" in rows[name]["problem"]


def test_no_data_folder_set_finds_no_known_name(monkeypatch):
    monkeypatch.delenv(ENV_ROOT, raising=False)
    assert data_root(None) is None
    rows = {r["name"]: r for r in list_sources(None)}
    assert not rows["uci_har"]["found"] and ENV_ROOT in rows["uci_har"]["problem"]
    assert rows["synthetic"]["found"]


def test_environment_root_is_used_when_none_is_given(tmp_path, monkeypatch):
    _fake_hhar(tmp_path)
    monkeypatch.setenv(ENV_ROOT, str(tmp_path))
    assert data_root(None) == tmp_path
    assert {r["name"] for r in list_sources() if r["found"]} == {"hhar", "synthetic"}


def test_real_data_folder(real_data):
    rows = {r["name"]: r for r in list_sources(str(real_data))}
    assert rows["uci_har"]["found"] and rows["uci_har"]["path"] == resolve_source("uci_har", str(real_data))


@pytest.mark.parametrize("name", [*KNOWN_SOURCES, "synthetic"])
def test_each_description_fits_one_line(name):
    assert "\n" not in SOURCE_FORMATS[name] and len(SOURCE_FORMATS[name]) <= 80
