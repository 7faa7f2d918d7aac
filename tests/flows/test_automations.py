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
