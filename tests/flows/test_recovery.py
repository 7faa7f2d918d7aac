"""Recovery after a crash, against the session's Prefect API: task runs a crashed flow run left
open are closed, and a crashed corpus build is started again once with its parameters. (End to
end, a worker killed under a real server, its automations and a replacement worker:
tests/flows/test_server.py.)"""

from __future__ import annotations

import pytest


@pytest.fixture()
def client():
    from prefect import get_client

    with get_client(sync_client=True) as client:
        yield client


def crashed_run(client, deployment_id, parameters, tags=()):
    from prefect.states import Crashed, Running

    run = client.create_flow_run_from_deployment(
        deployment_id, parameters=parameters, tags=list(tags)
    )
    client.set_flow_run_state(run.id, Running(), force=True)
    client.set_flow_run_state(run.id, Crashed(message="worker gone"), force=True)
    return client.read_flow_run(run.id)


def build_deployment(client, name):
    flow_id = client.create_flow_from_name("build-corpus")
    return client.create_deployment(flow_id=flow_id, name=name)


def test_task_runs_left_open_by_a_finished_flow_run_are_crashed(client):
    from prefect import task
    from prefect.states import Completed, Crashed, Running

    from flows.recovery import crash_orphaned_task_runs

    @task
    def stage():
        pass

    deployment_id = build_deployment(client, "recovery-orphans")
    dead = crashed_run(client, deployment_id, {})
    left_running = client.create_task_run(stage, dead.id, dynamic_key="0", state=Running())
    finished = client.create_task_run(stage, dead.id, dynamic_key="1", state=Completed())
    alive = client.create_flow_run_from_deployment(deployment_id)
    client.set_flow_run_state(alive.id, Running(), force=True)
    still_running = client.create_task_run(stage, alive.id, dynamic_key="0", state=Running())

    assert crash_orphaned_task_runs(client) >= 1
    state = client.read_task_run(left_running.id).state
    assert state.type == Crashed().type and "process running it is gone" in state.message
    assert client.read_task_run(finished.id).state.is_completed()
    assert client.read_task_run(still_running.id).state.is_running()  # its flow run lives


def test_a_crashed_build_is_started_again_once_with_its_parameters(client):
    from flows.recovery import RERUN_TAG, rerun_crashed_builds

    deployment_id = build_deployment(client, "recovery-rerun")
    parameters = {"sources": "/abs/sources.yaml", "data_root": "/abs/data"}
    dead = crashed_run(client, deployment_id, parameters, tags=["nightly"])

    started = rerun_crashed_builds(client)
    mine = [client.read_flow_run(i) for i in started]
    mine = [run for run in mine if run.idempotency_key == f"rerun-of-{dead.id}"]
    assert len(mine) == 1
    again = mine[0]
    assert again.deployment_id == deployment_id and again.parameters == parameters
    assert set(again.tags) >= {"nightly", RERUN_TAG}
    assert str(again.id) not in rerun_crashed_builds(client)  # once per crashed run

    # the re-run crashes too: it is not started a third time
    from prefect.states import Crashed, Running

    client.set_flow_run_state(again.id, Running(), force=True)
    client.set_flow_run_state(again.id, Crashed(message="again"), force=True)
    assert not any(
        client.read_flow_run(i).idempotency_key == f"rerun-of-{again.id}"
        for i in rerun_crashed_builds(client)
    )


def test_a_build_closes_what_an_earlier_crash_left_open_before_it_starts(client):
    from prefect import task
    from prefect.states import Running

    from flows.build_corpus import close_orphaned_task_runs

    @task
    def stage():
        pass

    dead = crashed_run(client, build_deployment(client, "recovery-preflight"), {})
    left_running = client.create_task_run(stage, dead.id, dynamic_key="0", state=Running())
    close_orphaned_task_runs()  # what build_corpus calls after its pre-flight checks
    assert client.read_task_run(left_running.id).state.is_crashed()
