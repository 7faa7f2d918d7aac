"""Two toy corpus-builder stages for tests of the engine and of the executors that run it: ``write``
puts the episode's source key in a file, ``copy`` copies that file upper-cased. Episodes whose
source key contains ``fail_when`` fail for good at ``write`` (:class:`BadContent`)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pipeline.stage import Stage, StageConfig, StageError, short_hash
from pipeline.tables import Episode


class BadContent(StageError):
    pass


class WriteConfig(StageConfig):
    fail_when: str = "bad"


class Write(Stage):
    """Writes a file per episode; episodes whose source key contains ``fail_when`` fail for good."""

    name, version, done_status = "write", "1", "written"
    Config = WriteConfig

    def input_hash(self, episode: Episode) -> str | None:
        return short_hash(episode.source_key)

    def outputs(self, episode: Episode) -> list[Path]:
        return [self.context.data_root / "write" / f"{episode.episode_id}.txt"]

    def process(self, episode: Episode) -> Episode:
        if self.config.fail_when and self.config.fail_when in episode.source_key:
            raise BadContent(f"{episode.episode_id}: bad content")
        (path,) = self.outputs(episode)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(episode.source_key)
        out = episode.copy()
        out.media_path = self.context.rel(path)
        return out


class Copy(Stage):
    """Copies what :class:`Write` wrote (its input is that file's content)."""

    name, version, done_status = "copy", "1", "copied"

    def input_hash(self, episode: Episode) -> str | None:
        if not episode.media_path:
            return None
        source = self.context.abs(episode.media_path)
        return hashlib.sha256(source.read_bytes()).hexdigest() if source.is_file() else None

    def outputs(self, episode: Episode) -> list[Path]:
        return [self.context.data_root / "copy" / f"{episode.episode_id}.txt"]

    def process(self, episode: Episode) -> Episode:
        (path,) = self.outputs(episode)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.context.abs(episode.media_path).read_text().upper())
        out = episode.copy()
        out.audio_path = self.context.rel(path)
        return out
