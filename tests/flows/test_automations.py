"""The automation that marks flow runs of dead workers Crashed: created once, with the trigger the
Prefect docs give for zombie runs (heartbeat, then silence)."""

from __future__ import annotations

from datetime import timedelta


def test_zombie_automation_is_created_once():
    from prefect.automations import Automation

    from flows.automations import SILENCE_S, ZOMBIE_AUTOMATION, ensure_zombie_automation

    first, created = ensure_zombie_automation()
    again, created_again = ensure_zombie_automation()
    assert created and not created_again and first == again
    automation = Automation.read(name=ZOMBIE_AUTOMATION)
    trigger = automation.trigger
    assert (
        trigger.after == {"prefect.flow-run.heartbeat"}
        and "prefect.flow-run.Completed" in trigger.expect
    )
    assert trigger.posture == "Proactive" and trigger.within == timedelta(seconds=SILENCE_S)
    assert (
        automation.actions[0].type == "change-flow-run-state"
        and automation.actions[0].state == "CRASHED"
    )


def test_recovery_automation_runs_the_recovery_deployment_on_crashes():
    from prefect import get_client
    from prefect.automations import Automation

    from flows.automations import (
        FSCLAP_FLOWS,
        RECOVERY_AUTOMATION,
        RECOVERY_DEPLOYMENT,
        ensure_recovery_automation,
    )

    flow_name, name = RECOVERY_DEPLOYMENT.split("/")
    with get_client(sync_client=True) as client:
        deployment_id = client.create_deployment(
            flow_id=client.create_flow_from_name(flow_name), name=name
        )
    first, created = ensure_recovery_automation()
    again, created_again = ensure_recovery_automation()
    assert created and not created_again and first == again
    automation = Automation.read(name=RECOVERY_AUTOMATION)
    assert automation.trigger.expect == {"prefect.flow-run.Crashed"}
    assert automation.trigger.posture == "Reactive"
    related = automation.trigger.match_related
    related = related[0] if isinstance(related, list) else related
    assert set(related["prefect.resource.name"]) == set(FSCLAP_FLOWS)
    assert flow_name not in FSCLAP_FLOWS  # its own crash does not start it again
    action = automation.actions[0]
    assert action.type == "run-deployment" and action.deployment_id == deployment_id
