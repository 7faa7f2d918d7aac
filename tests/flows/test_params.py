"""The flows' parameters as Prefect sees them: flat and typed, named as the CLI names them, each
with the description from the flow's docstring; the signature, its docstring and the model in
flows/params.py that validates the values agree (the bad values themselves: test_build_corpus.py,
test_train_evaluate.py)."""

from __future__ import annotations

import importlib

import pytest
import typer.main

from flows.params import BuildCorpusParams, EvaluateParams, TrainParams, check_worker_paths
from fsclap.errors import FsclapError

# entrypoint (as prefect.yaml gives it), model, the names the design contract requires, and the
# CLI command whose options the flow shares (CLI app module, command name)
FLOWS = {
    "build-corpus": (
        "flows.build_corpus.build_corpus",
        BuildCorpusParams,
        {"sources", "data_root", "profile"},
        ("fsclap.cli.corpus", "build"),
    ),
    "train-fsclap": (
        "flows.train.train_fsclap",
        TrainParams,
        {"data_root"},
        ("fsclap.cli.training", "train"),
    ),
    "evaluate-fsclap": (
        "flows.evaluate.evaluate_fsclap",
        EvaluateParams,
        {"data_root"},
        ("fsclap.cli.training", "eval"),
    ),
}


def flow_of(entrypoint: str):
    module, _, name = entrypoint.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("name", FLOWS)
def test_parameter_schema_is_flat_typed_and_described(name):
    from prefect.utilities.callables import parameter_schema, parameter_schema_from_entrypoint

    entrypoint, model, required, _ = FLOWS[name]
    flow = flow_of(entrypoint)
    assert flow.name == name
    schema = parameter_schema(flow.fn).model_dump_for_openapi()
    # `prefect deploy` reads the schema from the source (signature and docstring): the same
    assert parameter_schema_from_entrypoint(entrypoint).model_dump_for_openapi() == schema
    properties = schema["properties"]
    assert required <= set(properties) and "params" not in properties
    assert not schema.get("definitions") and "$ref" not in str(schema)  # no nested model
    for field, prop in properties.items():
        assert prop.get("description"), f"{name}: {field} has no description in the docstring"
        assert "type" in prop or "anyOf" in prop, f"{name}: {field} is untyped"
    # one parameter per field of the model that validates them, in its order, with its defaults
    assert list(properties) == list(model.model_fields)
    assert {k: p["default"] for k, p in properties.items()} == model().model_dump(mode="json")


@pytest.mark.parametrize("name", FLOWS)
def test_parameters_shared_with_the_cli_have_its_names(name):
    """A flow parameter with a CLI option is named after it (``--skip-missing``: skip_missing), or
    after the option's Python name where the CLI's flag is short (``--train``: train_manifest)."""
    entrypoint, _, _, (module, command) = FLOWS[name]
    group = typer.main.get_command(importlib.import_module(module).app)
    options = group.commands[command].params if hasattr(group, "commands") else group.params
    cli_names = {p.name for p in options} | {
        opt.lstrip("-").replace("-", "_") for p in options for opt in p.opts
    }
    flow_params = set(flow_of(entrypoint).parameters.properties)
    shared = {
        "build-corpus": {"sources", "data_root", "profile", "retry_failed"},
        "train-fsclap": {"train_manifest", "val_manifest"},
        "evaluate-fsclap": {
            "checkpoint",
            "manifest",
            "rerank",
            "plot",
            "skip_missing",
            "batch_size",
        },
    }[name]
    assert shared <= flow_params & cli_names, shared - (flow_params & cli_names)


def test_a_training_preset_is_not_a_relative_path(monkeypatch):
    monkeypatch.setenv("PREFECT__RUNTIME__DEPLOYMENT__ID", "2f1f3e52-6a55-4bd5-9d3e-0f0c6f0f4b8e")
    params = TrainParams(data_root="/abs/data", train_config="paper", run_dir="runs/x")
    with pytest.raises(FsclapError, match=r"relative path\(s\) in a deployment run: run_dir;"):
        check_worker_paths(params, params.settings())
    params = TrainParams(data_root="/abs/data", train_config="paper.yaml")
    with pytest.raises(FsclapError, match=r"deployment run: train_config;"):
        check_worker_paths(params, params.settings())


def test_settings_parameters_read_the_same_in_every_flow():
    """data_root, profile, config_file and overrides are written out in each flow's signature and
    docstring (Prefect reads both from the source): the same type, default and description."""
    from flows.params import SettingsParams

    schemas = [flow_of(entrypoint).parameters.properties for entrypoint, *_ in FLOWS.values()]
    for field in SettingsParams.model_fields:
        shown = [{k: v for k, v in s[field].items() if k != "position"} for s in schemas]
        assert all(s == shown[0] for s in shown), (field, shown)
