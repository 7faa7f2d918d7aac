"""Sources file validation and episode discovery (local folders, direct URLs, feeds via yt-dlp)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fsclap.testing.media import LoopbackServer, closed_port
from pipeline.acquire import AcquireConfig, YtdlpClient
from pipeline.sources import SourcesError, discover, episode_id_for, load_sources


def write_yaml(path: Path, obj) -> Path:
    path.write_text(yaml.safe_dump(obj, allow_unicode=True), encoding="utf-8")
    return path


def drama(i="a", urls=("http://h/e1.mp4",), **kw):
    return {"id": i, "title": f"Drama {i}", "language": "zh", "urls": list(urls), **kw}


def test_valid_file_and_defaults(tmp_path):
    sources = load_sources(
        write_yaml(tmp_path / "s.yaml", {"dramas": [drama(licence="CC-BY", notes="n")]})
    )
    assert sources.min_episodes == 50
    assert sources.dramas[0].licence == "CC-BY"
    assert sources.base_dir == tmp_path.resolve()


@pytest.mark.parametrize(
    "content, message",
    [
        ("dramas: [\n  {id: a, title: x\n", r"not valid YAML at line \d+"),
        ("- just\n- a list\n", "expected a mapping"),
        ("min_episodes: 5\n", "'dramas' must be a non-empty list"),
        (
            "dramas:\n  - id: a\n    title: t\n    language: zh\n    urls: [u]\n  - id: b\n    title: t\n    language: zh\n",
            r"dramas\[1\] \(id 'b'\): urls: Field required",
        ),
        (
            "dramas:\n  - {id: '../evil', title: t, language: zh, urls: [u]}\n",
            r"dramas\[0\] \(id '\.\./evil'\): id: String should match pattern",
        ),
        (
            "dramas:\n  - {id: a, title: t, language: zh, urls: [u], episodes: 3}\n",
            r"dramas\[0\] \(id 'a'\): episodes: Extra inputs are not permitted",
        ),
        (
            "dramas:\n  - {id: a, title: t, language: zh, urls: []}\n",
            r"dramas\[0\] \(id 'a'\): urls: List should have at least 1",
        ),
        (
            "min_episodes: 0\ndramas:\n  - {id: a, title: t, language: zh, urls: [u]}\n",
            "min_episodes: Input should be greater",
        ),
        (
            "dramas:\n  - {id: a, title: t, language: zh, urls: [u]}\n  - {id: a, title: t, language: zh, urls: [v]}\n",
            r"dramas\[1\] repeats id 'a'",
        ),
    ],
)
def test_malformed_sources_give_one_line_naming_the_entry(tmp_path, content, message):
    path = tmp_path / "s.yaml"
    path.write_text(content)
    with pytest.raises(SourcesError, match=message) as info:
        load_sources(path)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(SourcesError, match="sources file not found"):
        load_sources(tmp_path / "nope.yaml")


def test_csv_sources(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text(
        "id,title,language,url,licence\na,T,zh,http://h/1.mp4,x\na,T,zh,http://h/2.mp4,x\nb,U,en,http://h/3.mp4,\n"
    )
    sources = load_sources(path)
    assert [(d.id, len(d.urls)) for d in sources.dramas] == [("a", 2), ("b", 1)]


def test_local_folder_discovery_is_recursive_natural_and_skips_non_media(tmp_path):
    folder = tmp_path / "eps"
    (folder / "s2").mkdir(parents=True)
    (folder / ".hidden").mkdir()
    for name in [
        "ep10.mp4",
        "ep2.mp4",
        "ep1.mkv",
        "s2/ep1.mp4",
        "notes.txt",
        ".hidden/x.mp4",
        "第3集.mp4",
    ]:
        (folder / name).write_bytes(b"x")
    sources = load_sources(
        write_yaml(tmp_path / "s.yaml", {"min_episodes": 1, "dramas": [drama(urls=["eps"])]})
    )
    found = discover(sources)
    names = [Path(e.source_url).relative_to(folder).as_posix() for e in found.episodes]
    assert names == ["ep1.mkv", "ep2.mp4", "ep10.mp4", "s2/ep1.mp4", "第3集.mp4"]
    assert [e.episode_index for e in found.episodes] == [1, 2, 3, 4, 5]
    assert all(e.source_kind == "file" and e.episode_id.startswith("a-") for e in found.episodes)
    assert found.problems == []


def test_missing_local_folder_is_a_problem_not_a_crash(tmp_path):
    sources = load_sources(
        write_yaml(tmp_path / "s.yaml", {"min_episodes": 1, "dramas": [drama(urls=["nowhere/"])]})
    )
    found = discover(sources)
    assert [p.error for p in found.problems] == ["SourceNotFound", "TooFewEpisodes"]


def test_duplicates_are_used_once_and_recorded(tmp_path):
    urls_a = ["http://h/e1.mp4", "http://h/e2.mp4", "http://h/e1.mp4#t=3"]
    urls_b = ["http://h/e2.mp4", "http://h/e3.mp4"]
    sources = load_sources(
        write_yaml(
            tmp_path / "s.yaml",
            {"min_episodes": 1, "dramas": [drama("a", urls_a), drama("b", urls_b)]},
        )
    )
    found = discover(sources)
    assert [e.source_key for e in found.episodes] == [
        "http://h/e1.mp4",
        "http://h/e2.mp4",
        "http://h/e3.mp4",
    ]
    duplicates = [p for p in found.problems if p.error == "DuplicateSource"]
    assert len(duplicates) == 2
    assert episode_id_for("a", "http://h/e2.mp4") in duplicates[1].message


def test_dramas_below_min_episodes_are_skipped_with_the_reason(tmp_path):
    sources = load_sources(
        write_yaml(
            tmp_path / "s.yaml",
            {
                "min_episodes": 2,
                "dramas": [
                    drama("a", ["http://h/1.mp4", "http://h/2.mp4"]),
                    drama("b", ["http://h/3.mp4"]),
                    drama("c", ["http://h/4.mp4"], min_episodes=1),
                ],
            },
        )
    )
    found = discover(sources)
    assert found.skipped_dramas == ["b"]
    assert {e.drama_id for e in found.episodes} == {"a", "c"}
    (problem,) = found.problems
    assert problem.error == "TooFewEpisodes" and problem.item_id == "b"
    assert "1 episodes found, min_episodes is 2" in problem.message


def test_feed_is_listed_by_yt_dlp_and_titles_never_matter(tmp_path):
    web = tmp_path / "web"
    web.mkdir()
    for i in range(3):
        (web / f"ep{i}.mp4").write_bytes(b"x")
    with LoopbackServer(web) as server:
        items = "".join(
            f"<item><title>../../第{i}集 evil</title><enclosure url='{server.url(f'ep{i}.mp4')}' type='video/mp4' length='1'/>"
            f"<guid>{i}</guid></item>"
            for i in range(3)
        )
        (web / "feed.xml").write_text(
            f"<?xml version='1.0'?><rss version='2.0'><channel><title>T</title>{items}</channel></rss>"
        )
        sources = load_sources(
            write_yaml(
                tmp_path / "s.yaml",
                {
                    "min_episodes": 3,
                    "dramas": [
                        drama(
                            "a", [server.url("feed.xml"), f"http://127.0.0.1:{closed_port()}/list"]
                        )
                    ],
                },
            )
        )
        client = YtdlpClient(AcquireConfig(retries=0))
        found = discover(sources, lister=client.list_entries)
    assert [e.source_key for e in found.episodes] == [server.url(f"ep{i}.mp4") for i in range(3)]
    assert [e.title for e in found.episodes] == [f"../../第{i}集 evil" for i in range(3)]
    (problem,) = found.problems
    assert problem.error == "Unreachable" and problem.retryable


def test_the_shipped_example_is_valid():
    example = Path(__file__).resolve().parents[2] / "data_manifests" / "sources.example.yaml"
    sources = load_sources(example)
    assert sources.min_episodes == 50 and sources.dramas[0].id == "example-drama"
