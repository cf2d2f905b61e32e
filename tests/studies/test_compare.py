"""fedhar compare: finished run folders (fabricated here, as the studies save them) in one table."""

from __future__ import annotations

import csv
import json
import math

import pytest
import yaml
from scipy import stats as st

from fedhar.cli import main
from fedhar.exceptions import ConfigError
from fedhar.studies.compare import collect, flatten, load_run
from fedhar.studies.compare import compare as run_compare

# macro_f1 per seed 0..3 of two multi-seed train runs; d = pre - none = [0.02, 0.05, 0.04, 0.01]
PRE = [0.80, 0.85, 0.90, 0.88]
NONE = [0.78, 0.80, 0.86, 0.87]
# mean(d) = 0.03; squares of deviations 0.001 -> sd sqrt(0.001 / 3); t = 0.03 / (sd / 2) = 3.286335, df 3
T_HAND = 0.03 / (math.sqrt(0.001 / 3) / 2)
P_HAND = 2 * st.t.sf(T_HAND, 3)  # 0.0462


def config(name, backbone="tiny-llama", seed=0, seeds=None, **extra):
    cfg = {"name": name, "seed": seed, "seeds": seeds, "stats": {"test": "ttest", "alpha": 0.05, "confidence": 0.95},
           "model": {"backbone": {"name": backbone, "layers": 2}}, "train": {"epochs": 2, "lr": 0.003}}
    for key, value in extra.items():
        *parents, last = key.split("__")
        node = cfg
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return cfg


def write(folder, cfg, results):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text("# fedhar_version: 0.1.0\n" + yaml.safe_dump(cfg, sort_keys=False))
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def train_results(seed, f1, **extra):
    return {"name": "x", "seed": seed, "status": "complete", "complete": True, "kind": "train", "study": "train",
            "final": {"accuracy": f1 + 0.05, "macro_f1": f1, "loss": 1 - f1}, "seconds": 3.0, **extra}


def multi_seed(folder, f1s, study="train", rows=None, seeds=None, **cfg):
    """A multi-seed run: the parent config (with seeds) and results, one complete run per seed_<s>/."""
    seeds = seeds or list(range(len(f1s or rows)))
    for i, s in enumerate(seeds):
        sub_cfg = {**config(folder.name, seed=s, **cfg)}
        res = train_results(s, f1s[i]) if f1s else {"seed": s, "complete": True, "status": "complete", "kind": study,
                                                      "study": study, "rows": rows[i]}
        write(folder / f"seed_{s}", sub_cfg, res)
    parent = {"name": folder.name, "seed": seeds[0], "status": "complete", "complete": True, "kind": study,
              "study": study, "seeds": seeds, "multi_seed": True,
              "seed_runs": {str(s): {"folder": f"seed_{s}", "status": "complete"} for s in seeds}}
    return write(folder, config(folder.name, seed=seeds[0], seeds=seeds, **cfg), parent)


def single(folder, seed, f1, legacy=False, **cfg):
    res = train_results(seed, f1)
    if legacy:  # folders older than the `study` field
        res.pop("study")
    return write(folder, config(folder.name, seed=seed, **cfg), res)


def compare(capsys, *argv):
    rc = main(["compare", *map(str, argv)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def table(out):
    """The markdown table's lines as lists of cells (header first, separator dropped)."""
    lines = [ln for ln in out.splitlines() if ln.startswith("| ")]
    return [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines]


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    multi_seed(root / "central_uci_pretrained", PRE)
    multi_seed(root / "central_uci_none", NONE, backbone="none")
    single(root / "central_uci_single", 0, 0.81, legacy=True, backbone="none")
    return root


def test_baseline_gives_paired_differences_with_the_hand_computed_p(runs, tmp_path, capsys):
    out_dir = tmp_path / "cmp"
    paths = sorted(runs.glob("central_uci_*"))  # the glob matches the baseline too
    rc, out, err = compare(capsys, *paths, "--baseline", runs / "central_uci_none", "--out", out_dir)
    assert rc == 0, err
    rows = table(out)
    head, body = rows[0], {r[0]: dict(zip(rows[0], r)) for r in rows[1:]}
    assert head[:3] == ["run", "seeds", "model.backbone.name"]  # the one config key that differs (name, seeds ignored)
    assert "train.lr" not in head and "name" not in head
    # the baseline once, first, marked, with no p against itself
    assert list(body) == ["central_uci_none (baseline)", "central_uci_pretrained", "central_uci_single"]
    base = body["central_uci_none (baseline)"]
    assert base["Δ macro_f1 vs baseline"] == "baseline" and base["p"] == "" and base["model.backbone.name"] == "none"
    pre = body["central_uci_pretrained"]
    assert pre["model.backbone.name"] == "tiny-llama" and pre["seeds"] == "0,1,2,3"
    # mean of PRE = 3.43 / 4 = 0.8575 (in binary 0.857499..., shown 0.857); deviations -0.0575, -0.0075, 0.0425,
    # 0.0225 -> squares 0.005675 -> std sqrt(0.005675 / 3) = 0.043493; accuracy = f1 + 0.05 (0.9075000...1)
    assert pre["macro_f1 (n)"] == "0.857 ± 0.043 (4)" and pre["accuracy (n)"] == "0.908 ± 0.043 (4)"
    # d: mean 0.03; sd sqrt(0.001 / 3) = 0.018257; p from t = 3.286335 (df 3)
    assert pre["Δ macro_f1 vs baseline"] == "+0.030 ± 0.018" and pre["pairs"] == "4"
    assert pre["p"] == f"{P_HAND:.3g} *" == "0.0462 *"
    # a single run shares one seed with the baseline: a difference, but no p from one pair
    one = body["central_uci_single"]
    assert one["seeds"] == "0" and one["macro_f1 (n)"] == "0.810 (1)"
    assert one["Δ macro_f1 vs baseline"] == "+0.030" and one["p"] == "n/a (1 pair)"
    assert "paired t-test" in out and f"compare files: {out_dir}" in out

    # the files: markdown as printed, one csv line per run and cell, json with the numbers
    assert (out_dir / "compare.md").read_text() in out
    with open(out_dir / "compare.csv") as fh:
        lines = list(csv.DictReader(fh))
    assert [ln["run"] for ln in lines] == ["central_uci_none", "central_uci_pretrained", "central_uci_single"]
    assert {"mean", "std", "n", "ci_low", "ci_high", "diff", "p", "significant", "model.backbone.name"} <= set(lines[0])
    assert float(lines[1]["p"]) == pytest.approx(P_HAND, rel=1e-6) and lines[1]["significant"] == "True"
    assert float(lines[1]["diff"]) == pytest.approx(0.03) and lines[0]["p"] == "" and lines[0]["baseline"] == "True"
    assert float(lines[1]["ci_low"]) < float(lines[1]["mean"]) < float(lines[1]["ci_high"])
    saved = json.loads((out_dir / "compare.json").read_text())
    assert saved["baseline"] == "central_uci_none" and saved["differing_keys"] == ["model.backbone.name"]
    [cell] = saved["cells"]
    vs = cell["runs"]["central_uci_pretrained"]["vs_baseline"]
    assert vs["p"] == pytest.approx(P_HAND, rel=1e-6) and vs["n"] == 4 and vs["significant"] is True


def test_without_baseline_the_leader_and_its_verdict(runs, tmp_path, capsys):
    rc, out, err = compare(capsys, runs / "central_uci_pretrained", runs / "central_uci_none", "--out", tmp_path / "c")
    assert rc == 0, err
    assert "vs baseline" not in out and "p:" not in out.split("|")[0]
    body = {r[0]: r for r in table(out)[1:]}
    assert body["central_uci_pretrained"][-1] == "best" and body["central_uci_none"][-1] == ""
    assert f"best: **central_uci_pretrained** (p={P_HAND:.3g} against central_uci_none)" in out


def test_a_stricter_alpha_in_the_baseline_config_makes_it_a_tie(runs, tmp_path, capsys):
    base = multi_seed(tmp_path / "strict", NONE, backbone="none", stats__alpha=0.01)
    rc, out, _ = compare(capsys, runs / "central_uci_pretrained", "--baseline", base, "--out", tmp_path / "c")
    assert rc == 0
    pre = dict(zip(table(out)[0], table(out)[2]))
    assert pre["p"] == "0.0462" and pre["verdict"] == "tie (leader)"
    assert "tie: central_uci_pretrained, strict" in out and "p < 0.01" in out


def test_different_studies_side_by_side_pairs_on_seed_and_unit(tmp_path, capsys):
    """Two LODO runs (older folders: kind "lodo", no study) and a train run: cells meet by their key
    columns; differences pair (seed, held_out); cells a run lacks are empty."""
    def rows(base, shift):
        return [[{"held_out": h, "variant": "pretrained LLM", "mode": "head", "budget": "k1",
                  "macro_f1": base[h][s] + shift[h][s]} for h in ("uci", "wisdm")] for s in range(3)]
    f1 = {"uci": [0.80, 0.82, 0.84], "wisdm": [0.60, 0.62, 0.64]}
    zero = {"uci": [0, 0, 0], "wisdm": [0, 0, 0]}
    gain = {"uci": [0.10, 0.11, 0.09], "wisdm": [0.10, 0.10, 0.11]}
    a = multi_seed(tmp_path / "lodo_a", None, study="lodo", rows=rows(f1, zero))
    b = multi_seed(tmp_path / "lodo_b", None, study="lodo", rows=rows(f1, gain), lodo__rate_hz=50.0)
    for folder in (a, b):
        for res in [folder / "results.json", *folder.glob("seed_*/results.json")]:
            r = json.loads(res.read_text())
            r.pop("study")
            res.write_text(json.dumps(r))
    t = single(tmp_path / "train_run", 0, 0.7)
    rc, out, err = compare(capsys, b, t, "--baseline", a, "--out", tmp_path / "c")
    assert rc == 0, err
    head, *body = table(out)
    assert head[:5] == ["run", "study", "seeds", "lodo.rate_hz", "cell"]
    by = {(r[0], r[4]): dict(zip(head, r)) for r in body}
    cell = "variant=pretrained LLM, mode=head, budget=k1"
    lb = by[("lodo_b", cell)]
    # pairs (seed, held_out): d = 0.10, 0.11, 0.09, 0.10, 0.10, 0.11 -> mean 0.1016667, sd 0.0075277,
    # t = 0.1016667 / (0.0075277 / sqrt(6)) = 33.08 (df 5)
    t_hand = (0.61 / 6) / (math.sqrt(2.83333333e-4 / 5) / math.sqrt(6))
    assert lb["pairs"] == "6" and lb["Δ macro_f1 vs baseline"] == "+0.102 ± 0.008"
    assert lb["p"] == f"{2 * st.t.sf(t_hand, 5):.3g} *"
    assert lb["study"] == "cross_dataset" and lb["lodo.rate_hz"] == "50.0"
    # pooled over held_out per seed, baseline: 0.70, 0.72, 0.74
    assert by[("lodo_a (baseline)", cell)]["macro_f1 (n)"] == "0.720 ± 0.020 (3)"
    assert by[("train_run", cell)]["macro_f1 (n)"] == "" and by[("train_run", "all")]["macro_f1 (n)"] == "0.700 (1)"
    assert by[("lodo_b", "all")]["macro_f1 (n)"] == "" and by[("train_run", "all")]["p"] == "n/a"
    assert by[("train_run", "all")]["Δ macro_f1 vs baseline"] == "n/a (the baseline lacks this cell)"
    assert by[("train_run", "all")]["lodo.rate_hz"] == "—"
    # runs of one study: the cell column is named by the key columns
    rc, out, _ = compare(capsys, a, b, "--out", tmp_path / "c2")
    assert table(out)[0][:4] == ["run", "seeds", "lodo.rate_hz", "variant / mode / budget"]
    assert table(out)[2][3] == "pretrained LLM / head / k1" and table(out)[2][-1] == "best"


def test_many_differing_keys_go_into_one_column(runs, tmp_path, capsys):
    other = multi_seed(tmp_path / "other", NONE, backbone="none", train__lr=0.1, train__epochs=5,
                       model__backbone__layers=4, data__source="wisdm")
    rc, out, _ = compare(capsys, runs / "central_uci_pretrained", other, "--out", tmp_path / "c")
    assert rc == 0
    head, first, second = table(out)[:3]
    assert "differs" in head
    row = dict(zip(head, second))
    assert row["differs"] == ("model.backbone.name=none; model.backbone.layers=4; train.epochs=5; train.lr=0.1; "
                              "data.source=wisdm")
    assert dict(zip(head, first))["differs"].startswith("model.backbone.name=tiny-llama;")
    assert "data.source=—" in dict(zip(head, first))["differs"]


def test_a_folder_of_seed_runs_without_a_parent_results_file(tmp_path, capsys):
    """Seeds run one by one (``--out RUN/seed_<s> --set seed=<s>``) form one run."""
    for s, f1 in enumerate(PRE):
        single(tmp_path / "loose" / f"seed_{s}", s, f1)
    run = load_run(tmp_path / "loose")
    assert run.study == "train" and run.seeds == [0, 1, 2, 3]
    assert run.per_seed[2] == [{"accuracy": pytest.approx(0.95), "macro_f1": 0.90, "loss": pytest.approx(0.10),
                                "seconds": 3.0}]
    multi_seed(tmp_path / "none", NONE, backbone="none")
    rc, out, _ = compare(capsys, tmp_path / "loose", "--baseline", tmp_path / "none", "--out", tmp_path / "c")
    assert rc == 0 and "| loose | 0,1,2,3 | tiny-llama | 0.857 ± 0.043 (4) |" in out and "0.0462 *" in out


def refusal(*paths, **options) -> str:
    with pytest.raises(ConfigError) as exc:
        run_compare(paths, **options)
    return exc.value.reason


def test_refusals_name_the_folder_and_the_way_out(runs, tmp_path, capsys):
    unfinished = multi_seed(tmp_path / "half", PRE)
    r = json.loads((unfinished / "results.json").read_text())
    (unfinished / "results.json").write_text(json.dumps({**r, "status": "running", "complete": False}))
    rc, out, err = compare(capsys, runs / "central_uci_none", unfinished, "--out", tmp_path / "c")
    assert rc == 2 and err.startswith("fedhar: error: ") and "not complete" in err and out == ""
    reason = refusal(runs / "central_uci_none", unfinished, out=tmp_path / "c")
    assert reason.startswith(f"{unfinished}: the run is not complete (status: running)")
    assert f"finish it with `fedhar train --out {unfinished} --resume`" in reason

    assert refusal(tmp_path / "nowhere") == f"{tmp_path / 'nowhere'}: no such run folder."
    (tmp_path / "empty").mkdir()
    assert "no results.json there" in refusal(tmp_path / "empty")
    study = single(tmp_path / "odd", 0, 0.8)
    r = json.loads((study / "results.json").read_text())
    (study / "results.json").write_text(json.dumps({**r, "study": "astrology"}))
    assert "unknown study 'astrology'" in refusal(study)
    reason = refusal(runs / "central_uci_none", metric="nope", out=tmp_path / "c")
    assert "'nope'" in reason and "macro_f1" in reason and "--metric" in reason
    assert not (tmp_path / "c").exists()


def test_an_unfinished_seed_of_a_seed_folder_is_refused(tmp_path):
    single(tmp_path / "loose" / "seed_0", 0, 0.8)
    res = single(tmp_path / "loose" / "seed_1", 1, 0.8) / "results.json"
    res.write_text(json.dumps({**json.loads(res.read_text()), "status": "failed", "complete": False, "error": "boom"}))
    with pytest.raises(ConfigError, match=r"seed_1: the run is not complete \(status: failed \(boom\)\)"):
        load_run(tmp_path / "loose")


def test_helpers_flatten_and_labels(tmp_path):
    assert flatten({"a": {"b": {"c": 1}, "d": [1, 2]}, "e": None, "f": {}}) == {"a.b.c": 1, "a.d": [1, 2], "e": None,
                                                                                "f": {}}
    single(tmp_path / "day1" / "run", 0, 0.8)
    single(tmp_path / "day2" / "run", 0, 0.8, federated__state_dir=str(tmp_path / "day2" / "run" / "clients"))
    runs = collect([tmp_path / "day1" / "run", tmp_path / "day2" / "run", tmp_path / "day1" / "run"])
    assert [r.label for r in runs] == ["day1/run", "day2/run"]  # equal names told apart; the repeat dropped
    assert runs[1].flat["federated.state_dir"] == "<run>/clients"


def test_end_to_end_two_smoke_runs(tmp_path, capsys):
    a, b = tmp_path / "pretrained", tmp_path / "none"
    fast = ["--seeds", "0,1", "--set", "train.epochs=1"]
    assert main(["train", "configs/smoke.yaml", *fast, "--out", str(a)]) == 0
    assert main(["train", "configs/smoke.yaml", *fast, "--set", "model.backbone.name=none", "--out", str(b)]) == 0
    capsys.readouterr()
    rc, out, err = compare(capsys, a, b, "--baseline", b, "--out", tmp_path / "cmp")
    assert rc == 0, err
    head, base, pre = table(out)
    assert "model.backbone.name" in head and base[0] == "none (baseline)" and pre[0] == "pretrained"
    row = dict(zip(head, pre))
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    vs = saved["cells"][0]["runs"]["pretrained"]["vs_baseline"]
    assert row["pairs"] == "2" and vs["n"] == 2
    f1 = {name: [json.loads((folder / f"seed_{s}" / "results.json").read_text())["final"]["macro_f1"] for s in (0, 1)]
          for name, folder in (("a", a), ("b", b))}
    assert vs["mean_diff"] == pytest.approx((f1["a"][0] - f1["b"][0] + f1["a"][1] - f1["b"][1]) / 2)
