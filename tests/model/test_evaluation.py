"""``fsclap eval`` / ``index`` / ``search`` end to end on a small trained checkpoint."""

import json
from pathlib import Path

import pandas as pd
import pytest

from fsclap.cli import main as cli
from fsclap.manifest import ClipManifest

TINY = [
    "model.d_model=32",
    "model.embed_dim=32",
    "model.heads=4",
    "model.dropout=0.0",
    "model.audio={dim: 32, blocks: 2, n_mels: 32, max_seconds: 2.0, dropout: 0.1}",
    "freeze_text=true",
    "workers=0",
    "val_rerank_k=3",
    "pair_negatives=2",
    "pair_loss=hard",
    "epochs=2",
    "batch_size=16",
    "grad_accum=1",
    "lr_scratch=2e-3",
]


@pytest.fixture(scope="module")
def trained_run(style_corpus, tmp_path_factory):
    train_m, val_m = style_corpus
    run = tmp_path_factory.mktemp("eval") / "run"
    assert (
        cli(
            [
                "train",
                "--train",
                str(train_m),
                "--val",
                str(val_m),
                "--out",
                str(run),
                *[f"--set={s}" for s in TINY],
            ]
        )
        == 0
    )
    return run


def test_eval_json_contract_matches_validation(trained_run, style_corpus, tmp_path, capsys):
    _, val_m = style_corpus
    out = tmp_path / "m.json"
    assert (
        cli(
            [
                "eval",
                "--checkpoint",
                str(trained_run),
                "--manifest",
                str(val_m),
                "--json",
                str(out),
                "--rerank",
                "3",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "| bi | audio→text |" in printed and "pair re-rank top-3" in printed
    metrics = json.loads(out.read_text())
    assert set(metrics) == {"n", "a2t", "t2a"} and metrics["n"] == 32
    for direction in ("a2t", "t2a"):
        assert set(metrics[direction]) == {"R@1", "R@5", "R@10", "mAP@10"}
        assert all(0.0 <= v <= 100.0 and round(v, 1) == v for v in metrics[direction].values())
    best = json.loads((trained_run / "checkpoints" / "best" / "info.json").read_text())["metrics"]
    assert metrics["a2t"]["mAP@10"] == pytest.approx(best["a2t_mAP@10"], abs=0.15)
    details = json.loads((tmp_path / "m.details.json").read_text())
    assert details["pair_rerank"]["shortlist"] == 3
    assert details["pair_rerank"]["t2a"]["R@1"] == pytest.approx(best["rerank_t2a_R@1"], abs=0.15)


def test_eval_does_not_depend_on_gallery_order_or_batch_size(trained_run, style_corpus, tmp_path):
    _, val_m = style_corpus
    frame = pd.read_csv(val_m)
    frame["wav_fp"] = [str(val_m.parent / p) for p in frame["wav_fp"]]
    shuffled = tmp_path / "shuffled.csv"
    frame.sample(frac=1.0, random_state=3).to_csv(shuffled, index=False)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert (
        cli(
            [
                "eval",
                "--checkpoint",
                str(trained_run),
                "--manifest",
                str(val_m),
                "--json",
                str(a),
                "--batch-size",
                "32",
            ]
        )
        == 0
    )
    assert (
        cli(
            [
                "eval",
                "--checkpoint",
                str(trained_run),
                "--manifest",
                str(shuffled),
                "--json",
                str(b),
                "--batch-size",
                "5",
            ]
        )
        == 0
    )
    assert json.loads(a.read_text()) == json.loads(b.read_text())


def test_eval_refuses_missing_files_and_empty_captions(trained_run, style_corpus, tmp_path, capsys):
    _, val_m = style_corpus
    frame = pd.read_csv(val_m)
    frame["wav_fp"] = [str(val_m.parent / p) for p in frame["wav_fp"]]
    frame.loc[0, "wav_fp"] = str(tmp_path / "gone.wav")
    frame.loc[1, "style_prompt"] = ""
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    assert cli(["eval", "--checkpoint", str(trained_run), "--manifest", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("error: 2 of 32 manifest rows cannot be used")
        and "gone.wav" in err
        and "\n" not in err
    )
    assert (
        cli(
            [
                "eval",
                "--checkpoint",
                str(trained_run),
                "--manifest",
                str(bad),
                "--skip-missing",
                "--json",
                str(tmp_path / "s.json"),
            ]
        )
        == 3  # finished, but two rows were left out: recorded in the details
    )
    assert json.loads((tmp_path / "s.json").read_text())["n"] == 30
    details = json.loads((tmp_path / "s.details.json").read_text())
    assert len(details["info"]["left_out"]) == 2
    assert "finished with 2 failed item(s): see info.left_out in" in capsys.readouterr().err
    ix = tmp_path / "ix"
    args = ["index", "--checkpoint", str(trained_run), "--manifest", str(bad), "--out", str(ix)]
    assert cli([*args, "--skip-missing"]) == 3
    assert len(pd.read_csv(ix / "left_out.csv")) == 2
    assert f"see {ix / 'left_out.csv'}" in capsys.readouterr().err


def test_index_and_search_on_generated_speech(trained_run, tmp_path, capsys):
    from pipeline.synth import generate_style_corpus

    corpus = generate_style_corpus(tmp_path / "style", n=16, seed=5, workers=1)
    manifest = corpus.manifest_path
    first = ClipManifest.read(manifest).frame.iloc[:10].copy()
    part = tmp_path / "part.parquet"
    first.to_parquet(part)
    ix = tmp_path / "ix"
    assert (
        cli(["index", "--checkpoint", str(trained_run), "--manifest", str(part), "--out", str(ix)])
        == 0
    )
    assert "10 clips (10 added)" in capsys.readouterr().out
    # incremental: only the 6 new clips are embedded
    assert (
        cli(
            [
                "index",
                "--checkpoint",
                str(trained_run),
                "--manifest",
                str(manifest),
                "--out",
                str(ix),
            ]
        )
        == 0
    )
    assert "16 clips (6 added)" in capsys.readouterr().out

    assert (
        cli(["search", "--index", str(ix), "a woman speaking fast and loudly", "-k", "5", "--json"])
        == 0
    )
    results = json.loads(capsys.readouterr().out)["results"]
    assert len(results) == 5 and [r["rank"] for r in results] == [1, 2, 3, 4, 5]
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert all(Path(r["audio_path"]).is_file() and r["caption"] for r in results)

    clip = ClipManifest.read(manifest).frame.iloc[3]
    assert cli(["search", "--index", str(ix), str(clip["audio_path"]), "-k", "3", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["kind"] == "audio"
    assert answer["similar_clips"][0]["clip_id"] == clip["clip_id"]
    assert answer["similar_clips"][0]["score"] == pytest.approx(1.0, abs=1e-3)
    assert len({c["caption"] for c in answer["captions"]}) == len(answer["captions"]) == 3

    assert cli(["search", "--index", str(ix), "a calm man", "--rerank", "4", "-k", "2"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2

    # an HNSW index over the same clips: its stored search breadth, and a per-query override
    hnsw = tmp_path / "hnsw"
    assert (
        cli(
            [
                "index",
                "--checkpoint",
                str(trained_run),
                "--manifest",
                str(manifest),
                "--out",
                str(hnsw),
                "--kind",
                "hnsw",
                "--ef-search",
                "32",
            ]
        )
        == 0
    )
    assert "hnsw search" in capsys.readouterr().out
    assert json.loads((hnsw / "index.json").read_text())["ef_search"] == 32
    assert (
        cli(
            [
                "search",
                "--index",
                str(hnsw),
                "a woman speaking fast and loudly",
                "-k",
                "5",
                "--json",
                "--ef-search",
                "64",
            ]
        )
        == 0
    )
    approx = json.loads(capsys.readouterr().out)["results"]  # 16 clips: HNSW finds the exact top 5
    assert [r["clip_id"] for r in approx] == [r["clip_id"] for r in results]
    assert [r["score"] for r in approx] == pytest.approx(scores, abs=2e-4)


def test_search_refuses_an_index_from_another_checkpoint(
    trained_run, style_corpus, tmp_path, capsys
):
    import shutil

    _, val_m = style_corpus
    ix = tmp_path / "ix"
    assert (
        cli(["index", "--checkpoint", str(trained_run), "--manifest", str(val_m), "--out", str(ix)])
        == 0
    )
    other = tmp_path / "other"
    shutil.copytree(trained_run / "checkpoints" / "best", other)
    from safetensors.torch import load_file, save_file

    weights = load_file(other / "model.safetensors")
    name = next(iter(weights))
    weights[name] = weights[name] + 0.01
    save_file(weights, other / "model.safetensors", metadata={"format": "pt"})
    capsys.readouterr()
    assert cli(["search", "--index", str(ix), "--checkpoint", str(other), "a sad voice"]) == 2
    assert "was built with checkpoint" in capsys.readouterr().err
    assert (
        cli(["index", "--checkpoint", str(other), "--manifest", str(val_m), "--out", str(ix)]) == 2
    )
    assert cli(["search", "--index", str(tmp_path / "nothing"), "x"]) == 2


def test_ablation_runner_writes_table3(style_corpus, tmp_path, capsys):
    from model.ablation import AblationRow, run_ablation

    train_m, val_m = style_corpus
    rows = (AblationRow(False, False, False), AblationRow(True, True, True))
    sets = [s for s in TINY if not s.startswith("epochs")] + ["epochs=1"]
    table = run_ablation(train_m, val_m, val_m, tmp_path / "abl", overrides=sets, rows=rows)
    lines = table.splitlines()
    assert lines[2].startswith("| FU | SE | HN | A→T mAP@10")
    assert lines[4].startswith("| × | × | × |") and lines[5].startswith("| ✓ | ✓ | ✓ |")
    assert (tmp_path / "abl" / "table3.md").read_text().strip() == table
    # a second call re-uses finished rows and cached test metrics
    mtime = (tmp_path / "abl" / "fu1-se1-hn1" / "test_metrics.json").stat().st_mtime
    assert run_ablation(train_m, val_m, val_m, tmp_path / "abl", overrides=sets, rows=rows) == table
    assert (tmp_path / "abl" / "fu1-se1-hn1" / "test_metrics.json").stat().st_mtime == mtime


def test_ablation_markdown_bolds_best_per_column():
    from model.ablation import AblationRow, ablation_markdown

    m = lambda a, b: {"a2t": {"mAP@10": a, "R@1": b}, "t2a": {"mAP@10": a, "R@1": b}}  # noqa: E731
    table = ablation_markdown(
        {
            AblationRow(False, False, False): m(36.6, 19.6),
            AblationRow(True, True, True): m(43.4, 28.6),
        },
        n=10,
    )
    assert "| ✓ | ✓ | ✓ | **43.4** | **28.6** | **43.4** | **28.6** |" in table
    assert "| × | × | × | 36.6 | 19.6 | 36.6 | 19.6 |" in table


def test_agreement_reads_the_per_attribute_breakdown():
    import torch

    from model.evaluation import EvalReport
    from model.metrics import evaluate_embeddings

    # two clips per level; the audio embedding of each clip points at the *other* clip's caption
    torch.manual_seed(0)
    text = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    audio = text[[1, 0, 3, 2]]
    captions = ["a", "b", "c", "d"]
    bi = evaluate_embeddings(audio, text, captions)
    from model.analysis import attribute_breakdown

    frame = pd.DataFrame(
        {"pitch": ["low", "low", "high", "high"], "speed": ["slow", "fast", "slow", "fast"]}
    )
    report = EvalReport(n=4, bi=bi, attributes=attribute_breakdown(bi, frame))
    # top-1 is the neighbour clip: same pitch level always, same speed level never
    assert report.agreement("t2a") == {"pitch": 100.0, "speed": 0.0}
    assert report.agreement("a2t") == {"pitch": 100.0, "speed": 0.0}
