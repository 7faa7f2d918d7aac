"""Notifications through a webhook block, against a loopback receiver and the session's Prefect API.
(From a real server's automations, for a Failed run, a Crashed run and a published dataset:
tests/flows/test_server.py.)"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest


@pytest.fixture()
def receiver():
    from fsclap.testing.webhook import webhook_receiver

    with webhook_receiver() as (url, received):
        yield url, received


def test_the_webhook_block_posts_subject_and_body(receiver):
    from prefect.blocks.core import Block

    from flows.notifications import NOTIFY_BLOCK, save_webhook_block

    url, received = receiver
    save_webhook_block(url)
    Block.load(NOTIFY_BLOCK).notify("3 episodes failed", subject="fsclap: build")
    assert received == [{"subject": "fsclap: build", "body": "3 episodes failed"}]


def test_automations_are_created_once_for_the_three_occasions(receiver):
    from prefect.automations import Automation

    from flows.notifications import (
        FAILED_EPISODES_EVENT,
        PUBLISHED_EVENT,
        ensure_notification_automations,
        save_webhook_block,
    )

    block_id = save_webhook_block(receiver[0])
    first = ensure_notification_automations()
    again = ensure_notification_automations()
    assert [created for _, created in first] == [True] * 3
    assert [created for _, created in again] == [False] * 3
    expected = {
        "fsclap: notify on failed or crashed runs": {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
        "fsclap: notify on builds with failed episodes": {FAILED_EPISODES_EVENT},
        "fsclap: notify on new datasets": {PUBLISHED_EVENT},
    }  # fmt: skip
    for name, events in expected.items():
        automation = Automation.read(name=name)
        assert automation.trigger.expect == events
        assert automation.actions[0].type == "send-notification"
        assert automation.actions[0].block_document_id == block_id


def test_a_build_emits_failed_episodes_and_a_new_dataset(monkeypatch, tmp_path):
    import prefect.events

    from flows.notifications import FAILED_EPISODES_EVENT, PUBLISHED_EVENT, emit_build_events

    sent = []
    monkeypatch.setattr(prefect.events, "emit_event", lambda **event: sent.append(event))
    published = SimpleNamespace(
        version="v1", path=tmp_path / "v1", counts={"train": 3}, reused=False
    )
    summary = SimpleNamespace(
        data_root=tmp_path,
        failures=2,
        outcome=lambda: "4 of 6 episodes through every stage; 2 failure(s)",
        finished_steps={"publish": published},
    )
    assert emit_build_events(summary) == [FAILED_EPISODES_EVENT, PUBLISHED_EVENT]
    assert sent[0]["payload"]["failures"] == 2 and "2 failure(s)" in sent[0]["payload"]["message"]
    assert sent[1]["payload"]["version"] == "v1"
    assert sent[0]["resource"]["prefect.resource.id"] == f"fsclap.data-root.{tmp_path}"
    # nothing failed and the dataset was already published: no event
    sent.clear()
    summary.failures, published.reused = 0, True
    assert emit_build_events(summary) == [] and sent == []


def test_an_event_reaches_the_webhook_through_its_automation(receiver):
    """End to end on the API server: the event, the automation, the block, the receiver."""
    from prefect.events import emit_event

    from flows.notifications import (
        FAILED_EPISODES_EVENT,
        data_root_resource,
        ensure_notification_automations,
        save_webhook_block,
    )

    url, received = receiver
    save_webhook_block(url)
    ensure_notification_automations()
    # the triggers service loads new automations on its own schedule (later on a loaded machine):
    # emit again until one event gets through, each emission being an event of its own
    deadline = time.monotonic() + 60
    while not received and time.monotonic() < deadline:
        emit_event(
            event=FAILED_EPISODES_EVENT,
            resource=data_root_resource(Path("/data/root")),
            payload={"failures": 1, "message": "1 failure(s) recorded"},
        )
        wait = time.monotonic() + 4
        while not received and time.monotonic() < wait:
            time.sleep(0.5)
    assert received and "1 failure(s) recorded" in received[0]["body"]
