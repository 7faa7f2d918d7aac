"""Server-side automation the deployments rely on: a flow run whose worker died (machine lost,
container evicted, ``kill -9``) stops sending heartbeats; this automation marks it ``Crashed``
so the UI does not show it running forever. Its data is safe either way: the corpus tables'
journal and the task cache let the next run resume where it stopped.

    python -m flows.automations      # once per server (idempotent); docker compose's `deploy` runs it
"""

from __future__ import annotations

import sys
from datetime import timedelta

ZOMBIE_AUTOMATION = "fsclap: crash flow runs that stopped sending heartbeats"
#: Workers' flow runs send a heartbeat this often (PREFECT_FLOWS_HEARTBEAT_FREQUENCY in prefect.yaml).
HEARTBEAT_S = 60
#: Missing heartbeats for this long means the run's process is gone.
SILENCE_S = 5 * HEARTBEAT_S


def ensure_zombie_automation(silence_s: int = SILENCE_S) -> tuple[str, bool]:
    """Create the automation unless one with its name exists; returns (id, created)."""
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    try:
        existing = Automation.read(name=ZOMBIE_AUTOMATION)
    except ValueError:  # Prefect raises ValueError for a name it does not know
        existing = None
    if existing is not None:
        return str(existing.id), False
    automation = Automation(
        name=ZOMBIE_AUTOMATION,
        description="A flow run that sent a heartbeat and then neither another one nor a final state within "
        f"{silence_s} s lost its process: mark it Crashed (the next run resumes its work).",
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
    ).create()
    return str(automation.id), True


if __name__ == "__main__":
    automation_id, created = ensure_zombie_automation()
    print(
        f"{'created' if created else 'exists '} automation {ZOMBIE_AUTOMATION!r} ({automation_id})"
    )
    sys.exit(0)
