"""The stage interface: config validation, config hashes and resume keys."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from fsclap.errors import FsclapError
from pipeline.stage import Stage, StageConfig, StageContext, StageError, short_hash
from pipeline.tables import Episode


class EchoConfig(StageConfig):
    operational: ClassVar[frozenset[str]] = frozenset({"workers", "verbose"})
    gain: float = 1.0
    verbose: bool = False


class Echo(Stage):
    """A stage that copies a text file, for exercising the base class alone."""

    name = "echo"
    version = "1"
    Config = EchoConfig
    done_status = "echoed"

    def input_hash(self, episode):
        return episode.media_sha256

    def outputs(self, episode):
        return (
            [self.context.abs(episode.extra["echo_path"])]
            if "echo_path" in episode.extra
            else [Path("/nonexistent")]
        )

    def process(self, episode):
        if episode.media_sha256 == "bad":
            raise StageError("bad input")
        out = self.context.data_root / "echo" / f"{episode.episode_id}.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(str(self.config.gain))
        result = episode.copy()
        result.extra["echo_path"] = self.context.rel(out)
        return result


def episode(**kw) -> Episode:
    values = dict(
        episode_id="d-0001", drama_id="d", source_url="u", source_key="u", media_sha256="abc"
    )
    values.update(kw)
    return Episode(**values)


@pytest.fixture()
def context(tmp_path) -> StageContext:
    return StageContext(data_root=tmp_path)


def test_operational_fields_stay_out_of_the_config_hash(context):
    base = Echo({}, context=context).config_hash
    assert Echo({"verbose": True, "workers": 4}, context=context).config_hash == base
    assert Echo({"gain": 2.0}, context=context).config_hash != base


def test_version_bump_changes_the_key(context):
    class Echo2(Echo):
        version = "2"

    ep = episode()
    assert Echo({}, context=context).key(ep) != Echo2({}, context=context).key(ep)


def test_key_follows_input_content_and_is_none_without_input(context):
    stage = Echo({}, context=context)
    assert stage.key(episode(media_sha256="abc")) != stage.key(episode(media_sha256="abd"))
    assert stage.key(episode(media_sha256=None)) is None


def test_unknown_config_key_is_a_one_line_error_naming_the_stage(context):
    with pytest.raises(FsclapError, match=r"stages\.echo: gian: Extra inputs are not permitted"):
        Echo({"gian": 2}, context=context)


def test_run_stamps_and_is_done_needs_outputs(context):
    stage = Echo({}, context=context)
    ep = episode()
    assert not stage.is_done(ep)
    done = stage.run(ep)
    assert done.status == "echoed" and stage.calls == 1
    assert done.stamp("echo") == {"key": stage.key(ep), "version": "1", "config": stage.config_hash}
    assert stage.is_done(done)
    context.abs(done.extra["echo_path"]).unlink()
    assert not stage.is_done(done)
    assert not ep.stamps, "run() must not mutate its input"


def test_stage_error_carries_type_and_retryability(context):
    with pytest.raises(StageError) as info:
        Echo({}, context=context).run(episode(media_sha256="bad"))
    assert info.value.error_type == "StageError" and info.value.retryable is False


def test_context_paths_are_relative_inside_the_data_root(tmp_path):
    context = StageContext(data_root=tmp_path / "root")
    inside = tmp_path / "root" / "audio" / "x.wav"
    assert context.rel(inside) == "audio/x.wav"
    assert context.abs("audio/x.wav") == tmp_path / "root" / "audio" / "x.wav"
    outside = tmp_path / "elsewhere.mp4"
    assert context.rel(outside) == str(outside.absolute())
    assert context.abs(str(outside)) == outside


def test_short_hash_is_order_independent():
    assert short_hash({"a": 1, "b": [1, 2]}) == short_hash({"b": [1, 2], "a": 1})
    assert short_hash({"a": 1}) != short_hash({"a": 2})


def test_the_config_hash_is_computed_once_per_instance(context):
    calls = []

    class Counted(Echo):
        def extra_identity(self):
            calls.append(1)  # e.g. reads model files: too slow to repeat for every key
            return {"model": "m"}

    stage = Counted({}, context=context)
    keys = {stage.key(episode(episode_id=f"d-{i:04d}")) for i in range(20)}
    assert len(keys) == 1 and len(calls) == 1
    assert Counted({"gain": 2.0}, context=context).config_hash != stage.config_hash


def test_is_done_uses_the_key_it_is_given(context):
    stage = Echo({}, context=context)
    done = stage.run(episode())
    assert stage.is_done(done) and stage.is_done(done, stage.key(done))
    assert not stage.is_done(done, "another-key")


def test_stamps_see_a_changed_input_or_output(tmp_path):
    from pipeline.stage import file_states, is_up_to_date, write_stamp

    source, out, stamp = tmp_path / "in.txt", tmp_path / "out.txt", tmp_path / ".stamp.json"
    source.write_text("a")
    out.write_text("made from a")
    inputs = {"files": file_states([source]), "config": {"x": 1}}
    assert not is_up_to_date(stamp, inputs, [out])  # no stamp yet
    write_stamp(stamp, inputs, [out])
    assert is_up_to_date(stamp, {"files": file_states([source]), "config": {"x": 1}}, [out])
    assert not is_up_to_date(stamp, {"files": file_states([source]), "config": {"x": 2}}, [out])
    source.write_text("bb")
    assert not is_up_to_date(stamp, {"files": file_states([source]), "config": {"x": 1}}, [out])
    write_stamp(stamp, {"files": file_states([source]), "config": {"x": 1}}, [out])
    out.write_text("edited by hand")
    assert not is_up_to_date(stamp, {"files": file_states([source]), "config": {"x": 1}}, [out])
    out.unlink()
    assert not is_up_to_date(stamp, {"files": file_states([source]), "config": {"x": 1}}, [out])
