"""RunFolder: one lifecycle for every run folder (refusal, resume, force, failure, result files)."""

from __future__ import annotations

import json

import pytest

from fedhar.config import derive, load_config
from fedhar.exceptions import ConfigError, DataError
from fedhar.reporting import RunFolder, config_hash, resolve_config

SMOKE = "configs/smoke.yaml"


@pytest.fixture
def cfg(smoke_config):
    return smoke_config()


def results(path):
    return json.loads((path / "results.json").read_text())


def test_open_writes_config_and_a_running_status(tmp_path, cfg):
    folder = RunFolder.open(cfg, tmp_path / "run", kind="demo")
    r = results(folder.path)
    assert r["status"] == "running" and r["complete"] is False and r["kind"] == "demo"
    assert r["config_hash"] == config_hash(cfg) == folder.hash and not folder.resumed
    saved = load_config(folder.path / "config.yaml")
    assert config_hash(saved) == config_hash(cfg)
    assert (folder.path / "config.yaml").read_text().startswith("# fedhar_version:")


def test_hash_changes_with_the_config(cfg):
    assert config_hash(cfg) != config_hash(derive(cfg, {"train.lr": 0.5}))


def test_an_existing_run_is_refused_without_resume_or_force(tmp_path, cfg):
    RunFolder.open(cfg, tmp_path)
    with pytest.raises(ConfigError, match="already holds a run") as err:
        RunFolder.open(cfg, tmp_path)
    assert "--force" in err.value.reason and "--resume" in err.value.reason


def test_a_folder_without_a_run_is_used(tmp_path, cfg):
    (tmp_path / "notes.txt").write_text("mine")
    RunFolder.open(cfg, tmp_path, force=True)  # force wipes only a folder that holds a run
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_force_starts_anew(tmp_path, cfg):
    first = RunFolder.open(cfg, tmp_path)
    first.record("a", value=1)
    (tmp_path / "checkpoint").mkdir()
    again = RunFolder.open(derive(cfg, {"train.lr": 0.5}), tmp_path, force=True)
    assert not again.done("a") and not (tmp_path / "checkpoint").exists()
    assert load_config(tmp_path / "config.yaml").train.lr == 0.5


def test_resume_keeps_finished_cells_and_adds_up_seconds(tmp_path, cfg):
    first = RunFolder.open(cfg, tmp_path)
    first.record("lodo", "wisdm", value={"f1": 0.5})
    first.results["seconds_probe"] = True
    first.seconds_before = 100.0
    first.save()
    again = RunFolder.open(cfg, tmp_path, resume=True)
    assert again.resumed and again.done("lodo", "wisdm") and not again.done("lodo", "hhar")
    assert again.cell("lodo", "wisdm") == {"f1": 0.5} and again.results["seconds_probe"]
    assert again.seconds >= 100.0 and results(tmp_path)["status"] == "running"


def test_resume_with_a_different_config_names_the_keys(tmp_path, cfg):
    RunFolder.open(cfg, tmp_path)
    other = derive(cfg, {"train.lr": 0.5, "federated.rounds": 4})
    with pytest.raises(ConfigError) as err:
        RunFolder.open(other, tmp_path, resume=True)
    assert "`train.lr`" in err.value.reason and "`federated.rounds`" in err.value.reason
    assert "`seed`" not in err.value.reason
    assert load_config(tmp_path / "config.yaml").train.lr == cfg.train.lr  # the saved config is untouched


def test_resume_needs_a_run_and_contradicts_force(tmp_path, cfg):
    with pytest.raises(ConfigError, match="no config.yaml"):
        RunFolder.open(cfg, tmp_path / "none", resume=True)
    with pytest.raises(ConfigError, match="contradict"):
        RunFolder.open(cfg, tmp_path, resume=True, force=True)


def test_a_failing_body_marks_the_run_failed_and_resume_clears_it(tmp_path, cfg):
    with pytest.raises(DataError):
        with RunFolder.open(cfg, tmp_path) as folder:
            folder.record("a")
            raise DataError("the windows are gone")
    r = results(tmp_path)
    assert r["status"] == "failed" and r["complete"] is False and "the windows are gone" in r["error"]
    again = RunFolder.open(cfg, tmp_path, resume=True)
    assert again.done("a") and "error" not in results(tmp_path)
    done = again.complete(score=1.0)
    assert done["run_dir"] == str(tmp_path) and results(tmp_path)["status"] == "complete"
    assert results(tmp_path)["complete"] is True and results(tmp_path)["score"] == 1.0


def test_files_metrics_report_and_plots(tmp_path, cfg):
    folder = RunFolder.open(cfg, tmp_path)
    folder.write_metrics([{"a": 1, "b": [1, 2]}, {"a": 2, "c": float("nan")}])
    assert (tmp_path / "metrics.csv").read_text().splitlines() == ["a,c", "1,", "2,nan"]
    folder.write_report("# report\n")
    assert (tmp_path / "report.md").read_text() == "# report\n"
    seen = []
    assert folder.plot("x.png", lambda path, *args, **kw: seen.append((path, args, kw)), 1, 2, title="t") == tmp_path / "x.png"
    assert seen == [(tmp_path / "x.png", (1, 2), {"title": "t"})]

    def broken(path):
        raise ValueError("no axes")

    assert folder.plot("y.png", broken) is None  # a broken plot never loses a finished run
    folder.results["bad"] = float("inf")
    folder.save()
    assert results(tmp_path)["bad"] is None  # non-finite numbers are written as null


def test_resolve_config_uses_the_saved_config_on_resume(tmp_path, cfg):
    RunFolder.open(derive(cfg, {"federated.rounds": 3}), tmp_path)
    assert resolve_config(None, [], str(tmp_path), resume=True).federated.rounds == 3
    assert resolve_config(SMOKE, [], str(tmp_path), resume=True).federated.rounds == 2  # RunFolder.open refuses it
    with pytest.raises(ConfigError, match="needs --out"):
        resolve_config(None, [], None, resume=True)
    with pytest.raises(ConfigError, match="no config.yaml"):
        resolve_config(None, [], str(tmp_path / "none"), resume=True)
    with pytest.raises(ConfigError, match="config file is needed"):
        resolve_config(None, [], str(tmp_path), resume=False)


def test_warn_logs_and_records_each_warning_once(tmp_path, cfg, caplog):
    folder = RunFolder.open(cfg, tmp_path)
    with caplog.at_level("WARNING"):
        folder.warn("min_train_clients lowered")
        folder.warn("min_train_clients lowered")
        folder.warn("another")
    assert results(tmp_path)["warnings"] == ["min_train_clients lowered", "another"]
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"].count("another") == 1
    assert RunFolder.open(cfg, tmp_path, resume=True).results["warnings"] == ["min_train_clients lowered", "another"]


@pytest.fixture
def data_roots(tmp_path, monkeypatch):
    """Two data folders that both hold an (empty) hhar file, and a config naming the dataset."""
    roots = [tmp_path / "data_a", tmp_path / "data_b"]
    for root in roots:
        root.mkdir()
        (root / "hhar_sa_part.npz").write_bytes(b"")
    monkeypatch.setenv("FEDHAR_DATA_DIR", str(roots[0]))
    return roots


def test_config_yaml_records_the_data_folder_used_and_resume_accepts_it(tmp_path, cfg, data_roots, monkeypatch):
    from fedhar.reporting.run_dir import same_config
    from fedhar.studies import with_data_root

    named = derive(cfg, {"data.source": "hhar"})
    assert named.data.root is None
    run = tmp_path / "run"
    RunFolder.open(with_data_root(named), run)
    assert load_config(run / "config.yaml").data.root == str(data_roots[0].resolve())
    same_config(run, with_data_root(named))  # the same config, still leaving the root to FEDHAR_DATA_DIR
    monkeypatch.setenv("FEDHAR_DATA_DIR", str(data_roots[1]))
    with pytest.raises(ConfigError, match="`data.root`"):
        same_config(run, with_data_root(named))  # it now resolves to another folder


def test_synthetic_data_and_old_runs_keep_a_null_root(tmp_path, cfg, data_roots):
    from fedhar.studies import with_data_root

    assert with_data_root(cfg) is cfg and cfg.data.source == "synthetic"
    named = derive(cfg, {"data.source": "hhar"})
    RunFolder.open(named, tmp_path)  # a run folder written before roots were recorded
    assert with_data_root(named, tmp_path).data.root is None
    assert with_data_root(named, tmp_path / "new").data.root == str(data_roots[0].resolve())
