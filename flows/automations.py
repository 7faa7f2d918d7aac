"""Server-side automation the deployments rely on: a flow run whose worker died (machine lost,
container evicted, ``kill -9``) stops sending heartbeats; this automation marks it ``Crashed``
so the UI does not show it running forever. Its data is safe either way: the corpus tables'
journal and the task cache let the next run resume where it stopped.

    python -m flows.automations      # once per server (idempotent); docker compose's `deploy` runs it
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

ZOMBIE_AUTOMATION = "fsclap: crash flow runs that stopped sending heartbeats"
#: Workers' flow runs send a heartbeat this often (PREFECT_FLOWS_HEARTBEAT_FREQUENCY in prefect.yaml;
#: 30 s is the shortest Prefect accepts).
HEARTBEAT_S = 30
#: Three missed heartbeats in a row means the run's process is gone.
SILENCE_S = 3 * HEARTBEAT_S


#: fsclap's own flows: a crash of one of them starts the recovery flow, a failure or crash of one
#: of them is notified (not the recovery flow's own crash: no loop).
FSCLAP_FLOWS = ("build-corpus", "train-fsclap", "evaluate-fsclap")


def ensure_automation(name: str, build: Callable[[], Any]) -> tuple[str, bool]:
    """Create the automation ``build()`` makes unless one named ``name`` exists (automations are
    created once per server, idempotently); returns (id, created)."""
    from prefect.automations import Automation

    try:
        return str(Automation.read(name=name).id), False
    except ValueError:  # Prefect raises ValueError for a name it does not know
        return str(build().create().id), True


def fsclap_flow_run_trigger(events: set[str]):
    """A trigger that fires once for each flow-run event in ``events`` of one of :data:`FSCLAP_FLOWS`."""
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    return EventTrigger(
        expect=events,
        match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
        match_related=ResourceSpecification(
            {"prefect.resource.role": "flow", "prefect.resource.name": list(FSCLAP_FLOWS)}
        ),
        posture=Posture.Reactive,
        threshold=1,
    )


def ensure_zombie_automation(silence_s: int = SILENCE_S) -> tuple[str, bool]:
    """Create the automation unless one with its name exists; returns (id, created)."""

    def build():
        from prefect.automations import Automation
        from prefect.client.schemas.objects import StateType
        from prefect.events.actions import ChangeFlowRunState
        from prefect.events.schemas.automations import EventTrigger, Posture
        from prefect.events.schemas.events import ResourceSpecification

        return Automation(
            name=ZOMBIE_AUTOMATION,
            description="A flow run that sent a heartbeat and then neither another one nor a final state "
            f"within {silence_s} s lost its process: mark it Crashed (the next run resumes its work).",
            trigger=EventTrigger(
                after={"prefect.flow-run.heartbeat"},
                expect={
                    "prefect.flow-run.heartbeat",
                    "prefect.flow-run.Completed",
                    "prefect.flow-run.Failed",
                    "prefect.flow-run.Cancelled",
                    "prefect.flow-run.Crashed",
                },
                match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
                for_each={"prefect.resource.id"},
                posture=Posture.Proactive,
                threshold=1,
                within=timedelta(seconds=silence_s),
            ),
            actions=[
                ChangeFlowRunState(
                    state=StateType.CRASHED,
                    message=f"no heartbeat for {silence_s} s: the worker process is gone",
                )
            ],
        )

    return ensure_automation(ZOMBIE_AUTOMATION, build)


RECOVERY_AUTOMATION = "fsclap: recover after a crashed run"
RECOVERY_DEPLOYMENT = "recover-crashed-runs/recovery"


def ensure_recovery_automation() -> tuple[str, bool]:
    """Create the automation that runs the ``recover-crashed-runs`` deployment (flows/recovery.py)
    whenever a run of an fsclap flow crashes, unless one with its name exists; returns (id, created).
    Needs that deployment (prefect.yaml)."""

    def build():
        from prefect import get_client
        from prefect.automations import Automation
        from prefect.events.actions import RunDeployment

        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name(RECOVERY_DEPLOYMENT)
        return Automation(
            name=RECOVERY_AUTOMATION,
            description="A run of build-corpus, train-fsclap or evaluate-fsclap crashed: mark the task "
            "runs it left Running as Crashed and start a crashed build once more (flows/recovery.py).",
            trigger=fsclap_flow_run_trigger({"prefect.flow-run.Crashed"}),
            actions=[RunDeployment(source="selected", deployment_id=deployment.id, parameters={})],
        )

    return ensure_automation(RECOVERY_AUTOMATION, build)


if __name__ == "__main__":
    automation_id, created = ensure_zombie_automation()
    print(
        f"{'created' if created else 'exists '} automation {ZOMBIE_AUTOMATION!r} ({automation_id})"
    )
    sys.exit(0)
