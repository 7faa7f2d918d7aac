"""Notifications: a Prefect notification block and the automations that use it.

Three things are worth a message to the people who run fsclap: a run of an fsclap flow Failed or
Crashed; a corpus build finished with failed episodes (the run is Completed, so nothing else
stands out); a new dataset version was published. The first is Prefect's own flow-run event; for
the other two ``build-corpus`` emits events of its own (:func:`emit_build_events`). Each has an
automation whose action sends the message through one notification block: by default
:data:`NOTIFY_BLOCK`, a webhook (``CustomWebhookNotificationBlock``) posting
``{"subject": ..., "body": ...}`` as JSON, made by :func:`save_webhook_block`; any other
notification block saved in the UI (Slack, Teams, e-mail...) can be named instead
(``<block type slug>/<name>``).
"""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

from flows.automations import ensure_automation, fsclap_flow_run_trigger

NOTIFY_BLOCK_NAME = "fsclap-notify"
NOTIFY_BLOCK = f"custom-webhook/{NOTIFY_BLOCK_NAME}"  # <block type slug>/<name>
PUBLISHED_EVENT = "fsclap.dataset.published"
FAILED_EPISODES_EVENT = "fsclap.build.episodes-failed"


def data_root_resource(data_root: Path) -> dict[str, str]:
    """The event resource of a data root: the automations match ``fsclap.data-root.*``."""
    return {
        "prefect.resource.id": f"fsclap.data-root.{data_root}",
        "prefect.resource.name": str(data_root),
    }


def emit_build_events(summary) -> list[str]:
    """The events of a finished build (a :class:`~pipeline.engine.BuildSummary`): failed
    episodes, and a dataset version published by this run. Returns the event names emitted."""
    from prefect.events import emit_event

    resource = data_root_resource(Path(summary.data_root))
    emitted = []
    if summary.failures:
        emit_event(
            event=FAILED_EPISODES_EVENT,
            resource=resource,
            payload={"failures": summary.failures, "message": summary.outcome()},
        )
        emitted.append(FAILED_EPISODES_EVENT)
    published = summary.finished_steps.get("publish")
    if published is not None and not published.reused:
        emit_event(
            event=PUBLISHED_EVENT,
            resource=resource,
            payload={
                "version": published.version,
                "path": str(published.path),
                "counts": dict(published.counts),
            },
        )
        emitted.append(PUBLISHED_EVENT)
    return emitted


def save_webhook_block(url: str, name: str = NOTIFY_BLOCK_NAME) -> UUID:
    """Save (or replace) the notification block as a JSON webhook to ``url``; returns its id."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    block = CustomWebhookNotificationBlock(
        name="fsclap",
        url=url,
        method="POST",
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
    )
    return block.save(name, overwrite=True)


def notification_automations(block_id: UUID) -> list:
    """The automations (not yet created) that send fsclap's notifications through ``block_id``."""
    from prefect.automations import Automation
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    def notify(name: str, trigger: EventTrigger, subject: str, body: str) -> Automation:
        action = SendNotification(block_document_id=block_id, subject=subject, body=body)
        return Automation(name=name, trigger=trigger, actions=[action])

    def on_data_root_event(event: str) -> EventTrigger:
        return EventTrigger(
            expect={event},
            match=ResourceSpecification({"prefect.resource.id": ["fsclap.data-root.*"]}),
            posture=Posture.Reactive,
            threshold=1,
        )

    return [
        notify(
            "fsclap: notify on failed or crashed runs",
            fsclap_flow_run_trigger({"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}),
            subject="fsclap: {{ flow.name }} run {{ flow_run.name }} {{ flow_run.state.name }}",
            body="{{ flow_run.state.message }}",
        ),
        notify(
            "fsclap: notify on builds with failed episodes",
            on_data_root_event(FAILED_EPISODES_EVENT),
            subject="fsclap: corpus build with failed episodes",
            body="{{ event.resource.name }}: {{ event.payload.message }}",
        ),
        notify(
            "fsclap: notify on new datasets",
            on_data_root_event(PUBLISHED_EVENT),
            subject="fsclap: dataset {{ event.payload.version }} published",
            body="{{ event.payload.path }} ({{ event.payload.counts }})",
        ),
    ]


def ensure_notification_automations(block: str = NOTIFY_BLOCK) -> list[tuple[str, bool]]:
    """Create the notification automations that do not exist yet (by name), sending through the
    saved notification block ``block`` (``<block type slug>/<name>``); returns ``(name, created)``
    for each."""
    from prefect.blocks.core import Block

    block_id = Block.load(block)._block_document_id
    return [
        (automation.name, ensure_automation(automation.name, lambda a=automation: a)[1])
        for automation in notification_automations(block_id)
    ]
