"""After a crash: close what the dead process left open, and run a crashed corpus build once more.

A flow run whose worker died is marked Crashed by the heartbeat automation (flows/automations.py),
but Prefect leaves its task runs as they were: the task that was running reads "Running" forever.
:func:`crash_orphaned_task_runs` marks every task run still Running or Pending under a flow run in
a final state as Crashed. :func:`rerun_crashed_builds` starts each crashed ``build-corpus`` run
of a deployment again, with the same parameters (the build resumes: finished episodes are not
redone), once: the new run carries an idempotency key made from the crashed run's id, and a run
that is itself such a re-run is not re-run again (a build that crashes every time stops after
one more try instead of looping).

The ``recover-crashed-runs`` flow does both; an automation runs its deployment whenever a flow run
crashes, and every ``build-corpus`` run calls :func:`crash_orphaned_task_runs` before it starts
(so the last crash is tidied even without the automation).
"""

from __future__ import annotations

from prefect import flow, get_run_logger

BUILD_FLOW = "build-corpus"
RERUN_TAG = "fsclap-rerun"  # a run started by rerun_crashed_builds
FINAL_FLOW_STATES = ("CRASHED", "FAILED", "CANCELLED", "COMPLETED")
OPEN_TASK_STATES = ("RUNNING", "PENDING")


def crash_orphaned_task_runs(client) -> int:
    """Mark task runs left Running/Pending under a finished flow run Crashed; returns how many."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        TaskRunFilter,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.states import Crashed

    orphans = client.read_task_runs(
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=list(FINAL_FLOW_STATES)))
        ),
        task_run_filter=TaskRunFilter(
            state=TaskRunFilterState(type=TaskRunFilterStateType(any_=list(OPEN_TASK_STATES)))
        ),
    )
    for task_run in orphans:
        client.set_task_run_state(
            task_run.id,
            Crashed(message="its flow run ended while it ran: the process running it is gone"),
            force=True,
        )
    return len(orphans)


def rerun_crashed_builds(client, limit: int = 50) -> list[str]:
    """Start each crashed ``build-corpus`` deployment run again (same deployment and parameters),
    once; returns the ids of the runs started (an existing re-run is not started twice)."""
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterIdempotencyKey,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.deployments import run_deployment

    crashed = client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=[BUILD_FLOW])),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=["CRASHED"]))
        ),
        sort=FlowRunSort.START_TIME_DESC,
        limit=limit,
    )
    keys = {f"rerun-of-{run.id}": run for run in crashed}
    done = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            idempotency_key=FlowRunFilterIdempotencyKey(any_=list(keys))
        )
    ) if keys else []  # fmt: skip
    keys = {key: run for key, run in keys.items() if key not in {r.idempotency_key for r in done}}
    started = []
    for key, run in keys.items():
        if run.deployment_id is None or RERUN_TAG in (run.tags or []):
            continue
        again = run_deployment(
            run.deployment_id,
            parameters=run.parameters,
            timeout=0,
            tags=[*(run.tags or []), RERUN_TAG],
            idempotency_key=key,  # the server refuses a second run with this key
            as_subflow=False,
        )
        started.append(str(again.id))
    return started


@flow(
    name="recover-crashed-runs",
    description="Mark task runs a crashed flow run left Running as Crashed, and start each "
    "crashed build-corpus run once more (it resumes where it stopped).",
    persist_result=False,
)
def recover_crashed_runs() -> dict:
    from prefect import get_client

    logger = get_run_logger()
    with get_client(sync_client=True) as client:
        tidied = crash_orphaned_task_runs(client)
        started = rerun_crashed_builds(client)
    logger.info(
        "%d task run(s) of finished flow runs marked Crashed; %d crashed build(s) started again",
        tidied,
        len(started),
    )
    return {"task_runs_crashed": tidied, "builds_started": started}
