"""One parameter model: defaults, bounds and strictness, and the CLI options, the page's widgets and
the /compare signature all derived from it (fast: no worker, no model load)."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import math

import gradio as gr
import pytest

from playground.bench.cli import build_parser, build_request
from playground.engine import parameters
from playground.engine.parameters import RunParameters, SettingsError
from playground.engine.policy import MAX_LANES, Policy
from playground.engine.records import BackendSpec, parse_backend_specs
from playground.models.chat import DEFAULT_SYSTEM_PROMPT
from playground.models.resolve import ModelNotFoundError
from playground.paths import DEMO_MODEL_DIR
from playground.settings import GenerationSettings
from playground.ui import AppOptions
from playground.ui.api import compare_api, compare_signature
from playground.ui.controller import Controller
from playground.ui.form import from_widgets
from playground.ui.monitoring import RunMonitor
from playground.ui.page import build_layout

NUMERIC = [name for name, field in parameters.fields().items() if field.annotation in (int, float)]


def test_defaults_are_the_single_agreed_values() -> None:
    params = RunParameters()
    assert params.max_new_tokens == 128 and params.temperature == 0.7 and params.top_p == 0.9
    assert params.decoding == "greedy" and params.stop_at_eos is True and params.seed == 0
    assert params.mode == "sequential" and params.warmup == 0 and params.runs == 1
    assert params.reference == "auto" and params.system_prompt == DEFAULT_SYSTEM_PROMPT
    assert parameters.bounds("temperature") == (0.01, 2.0)  # one limit (the page's slider went to 2)
    assert parameters.bounds("warmup") == (0, 10) and parameters.bounds("runs") == (1, 100)
    assert parameters.default("runs", "bench") == 3 and parameters.default("warmup", "bench") == 1
    # the backends' settings take their defaults from the same fields
    assert GenerationSettings() == RunParameters().generation()


@pytest.mark.parametrize(("values", "message"), [
    ({"max_new_tokens": 0}, "max new tokens must be between 1 and 4096, got 0"),
    ({"max_new_tokens": 4097}, "max new tokens must be between 1 and 4096, got 4097"),
    ({"temperature": 5.0}, "temperature must be between 0.01 and 2, got 5.0"),
    ({"temperature": 0.0}, "temperature must be between 0.01 and 2"),
    ({"top_p": 1.5}, "top-p must be between 0.01 and 1"),
    ({"seed": -1}, "seed must be between 0 and 2147483647"),
    ({"warmup": 11}, "warm-up runs must be between 0 and 10"),
    ({"runs": 0}, "measured runs must be between 1 and 100"),
    ({"runs": 101}, "measured runs must be between 1 and 100"),
    ({"system_prompt": "x" * 40_000}, "The system prompt is 40,000 characters long; the limit is 32,000."),
])
def test_bounds_are_enforced_with_a_readable_message(values: dict, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        RunParameters.parse(values)
    assert message in str(caught.value)


@pytest.mark.parametrize(("values", "message"), [
    ({"temperature": math.nan}, "temperature must be a finite number"),
    ({"temperature": math.inf}, "temperature must be a finite number"),
    ({"top_p": -math.inf}, "top-p must be a finite number"),
    ({"stop_at_eos": "false"}, "stop at end of sequence must be true or false, got 'false'"),
    ({"stop_at_eos": 0}, "must be true or false"),
    ({"decoding": "beam"}, "decoding must be one of greedy, sampling, got 'beam'"),
    ({"mode": "race"}, "mode must be one of sequential, parallel, got 'race'"),
    ({"max_new_tokens": "128"}, "max new tokens must be a whole number, got '128'"),
    ({"max_new_tokens": 12.5}, "max new tokens must be a whole number"),
    ({"max_new_tokens": 64.0}, "max new tokens must be a whole number"),  # no silent float -> int
    ({"runs": True}, "measured runs must be a whole number"),
    ({"temperature": "0.7"}, "temperature must be a number"),
    ({"prompt": 42}, "prompt must be text"),
    ({"beams": 4}, "unknown parameter 'beams'"),
])
def test_wrong_types_and_values_are_refused_not_coerced(values: dict, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        RunParameters.parse(values)
    assert message in str(caught.value)


def test_several_problems_are_all_named() -> None:
    with pytest.raises(SettingsError) as caught:
        RunParameters.parse({"temperature": math.nan, "decoding": "beam"})
    assert "temperature" in str(caught.value) and "decoding" in str(caught.value)


def test_the_engine_settings_obey_the_same_rules() -> None:
    with pytest.raises(SettingsError, match=r"temperature must be between 0\.01 and 2"):
        GenerationSettings(do_sample=True, temperature=3.0).validate()
    with pytest.raises(SettingsError, match="finite"):
        GenerationSettings(top_p=math.nan).validate()
    assert GenerationSettings(do_sample=True, temperature=2.0).validate()


def test_page_values_decode_whole_floats_only() -> None:
    params = from_widgets({"max_new_tokens": 96.0, "seed": 7.0, "temperature": 1, "reference": None})
    assert params.max_new_tokens == 96 and params.seed == 7 and params.reference == ""
    with pytest.raises(SettingsError, match="whole number"):
        from_widgets({"max_new_tokens": 96.5})
    with pytest.raises(SettingsError, match="finite"):
        from_widgets({"temperature": math.nan})


# -- every front end is derived from the model ---------------------------------------------------


def cli_actions() -> dict[str, argparse.Action]:
    """option string -> its argparse action"""
    return {flag: action for action in build_parser()._actions for flag in action.option_strings}


def test_cli_options_come_from_the_model() -> None:
    flags = cli_actions()
    actions = {name: flags[f"--{name.replace('_', '-')}"] for name in parameters.names("cli")}
    for name, action in actions.items():
        assert action.dest == name, name
        assert action.default == parameters.default(name, "bench"), name
        if name in NUMERIC:
            low, high = parameters.bounds(name)
            assert f"{low}-{high}" in action.help, (name, action.help)
    assert actions["decoding"].choices == ("greedy", "sampling")
    args = build_parser().parse_args(["--sample", "--ignore-eos"])
    assert args.decoding == "sampling" and args.stop_at_eos is False
    assert "prompt" not in parameters.names("cli")  # the CLI takes several (--prompt, --prompts-file)


@pytest.mark.parametrize(("argv", "message"), [
    (["--temperature", "nan"], "temperature must be a finite number"),
    (["--temperature", "5"], "temperature must be between 0.01 and 2"),
    (["--max-new-tokens", "5000"], "between 1 and 4096"),
    (["--runs", "101"], "measured runs must be between 1 and 100"),
])
def test_cli_values_are_validated_by_the_model(argv: list[str], message: str) -> None:
    args = build_parser().parse_args([*argv, "--backends", "scripted"])
    with pytest.raises(SettingsError, match=message):
        build_request(args)


def test_cli_request_defaults() -> None:
    request = build_request(build_parser().parse_args(["--backends", "scripted:CPU,echo"]))
    assert request.specs == [BackendSpec("scripted", "CPU"), BackendSpec("echo")]
    assert request.settings.max_new_tokens == 128 and request.system_prompt == DEFAULT_SYSTEM_PROMPT
    assert (request.warmup, request.runs, request.model) == (1, 3, "demo")
    none = build_request(build_parser().parse_args(["--backends", "scripted", "--system-prompt", ""]))
    assert none.system_prompt is None


@pytest.fixture(scope="module")
def page():
    return build_layout(AppOptions(), [], "test machine")


def test_page_widgets_come_from_the_model(page) -> None:
    assert set(page.form) == set(parameters.names("page"))
    assert "backends" not in page.form  # the picker chooses them
    for name in parameters.names("page"):
        component, field, meta = page.form[name], parameters.fields()[name], parameters.meta(name)
        assert component.label == meta["label"], name
        if meta.get("elem_id"):
            assert component.elem_id == meta["elem_id"], name
        if meta.get("info") and name != "model":  # the model's note says what this app allows
            assert component.info == meta["info"], name
        if name in NUMERIC:
            low, high = parameters.bounds(name)
            assert (component.minimum, component.maximum) == (low, high), name
            assert component.value == field.default, name
        if field.annotation is bool:
            assert isinstance(component, gr.Checkbox) and component.value is field.default
        if meta.get("widget") == "radio":
            assert [value for _, value in component.choices] == list(parameters.choices(name)), name
            assert component.value == field.default
    assert isinstance(page.form["temperature"], gr.Slider) and page.form["temperature"].maximum == 2.0
    assert page.form["system_prompt"].value == DEFAULT_SYSTEM_PROMPT
    assert page.form["model"].value == AppOptions().model  # the app's model, not the field's ""


def test_compare_signature_comes_from_the_model() -> None:
    signature = compare_signature()
    assert list(signature.parameters) == parameters.names("api")
    assert signature.parameters["prompt"].default is inspect.Parameter.empty
    for name, parameter in signature.parameters.items():
        field = parameters.fields()[name]
        assert parameter.annotation == field.annotation, name
        if name != "prompt":
            assert parameter.default == field.default, name
    assert signature.parameters["max_new_tokens"].default == 128  # was 64 on /compare only
    assert signature.parameters["system_prompt"].default == DEFAULT_SYSTEM_PROMPT


def test_compare_api_info_carries_the_defaults(page) -> None:
    controller = Controller(AppOptions(), [], RunMonitor())
    with gr.Blocks() as blocks:
        gr.api(compare_api(controller), api_name="compare")
    endpoint = blocks.get_api_info()["named_endpoints"]["/compare"]
    info = {p["parameter_name"]: p for p in endpoint["parameters"]}
    assert list(info) == parameters.names("api")
    assert info["max_new_tokens"]["parameter_default"] == 128
    assert info["decoding"]["type"] == {"enum": ["greedy", "sampling"]}
    assert not info["prompt"]["parameter_has_default"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"temperature": math.nan}, "temperature must be a finite number"),
    ({"stop_at_eos": "false"}, "must be true or false"),
    ({"decoding": "beam"}, "decoding must be one of greedy, sampling"),
    ({"max_new_tokens": 5000}, "between 1 and 4096"),
    ({"backends": "a:b:c:d"}, "is not name[:device[:precision]]"),
    ({"backends": ",".join(f"scripted::p{i}" for i in range(MAX_LANES + 1))},
     f"at most {MAX_LANES} backends"),
    ({"no_such": 1}, "no_such"),
])
def test_compare_refuses_bad_values_before_any_worker(kwargs: dict, message: str) -> None:
    controller = Controller(AppOptions(), [], RunMonitor())
    result = asyncio.run(compare_api(controller)("hello", **kwargs))
    assert result["ok"] is False and result["records"] == [], result
    assert message in result["error"], result


# -- policy and the one spec-list parser ----------------------------------------------------------


def test_backend_specs_have_one_parser() -> None:
    assert parse_backend_specs("openvino-genai:NPU:int4, transformers,,") == [
        BackendSpec("openvino-genai", "NPU", "int4"), BackendSpec("transformers")]
    assert parse_backend_specs(("a", "b:cpu")) == [BackendSpec("a"), BackendSpec("b", "cpu")]
    with pytest.raises(ValueError, match="not name"):
        parse_backend_specs("a:b:c:d")


def test_policy_of_an_untrusted_page() -> None:
    shared = AppOptions(share=True).policy
    assert shared.untrusted and shared.max_lanes == MAX_LANES
    with pytest.raises(ModelNotFoundError, match="only be chosen by whoever started the app"):
        shared.admit(str(DEMO_MODEL_DIR.parent), [BackendSpec("scripted")])
    model, allow_local = shared.admit("demo", [BackendSpec("scripted")])
    assert model.name == "demo" and allow_local is True  # a named model is no path
    with pytest.raises(SettingsError, match=f"at most {MAX_LANES}"):
        shared.check_lanes([BackendSpec("scripted", precision=str(i)) for i in range(MAX_LANES + 1)])
    Policy.local().check_lanes([BackendSpec("scripted", precision=str(i)) for i in range(MAX_LANES + 1)])
    assert "local model folder" in Policy.local().model_hint() and "local" not in shared.model_hint()


def test_one_declared_field_reaches_the_cli_the_page_and_compare(monkeypatch: pytest.MonkeyPatch) -> None:
    """Adding a run parameter is one declaration (``engine/run_fields.py``); here a subclass of the model
    stands in for it."""

    class Wider(RunParameters):
        repetition_penalty: float = parameters.declare(
            1.0, "penalise repeated tokens", label="Repetition penalty", ge=1.0, le=2.0,
            allow_inf_nan=False, widget="slider", step=0.05, elem_id="repetition-penalty")

    monkeypatch.setattr(parameters, "RunParameters", Wider)
    option = cli_actions()["--repetition-penalty"]
    assert option.default == 1.0 and "1.0-2.0" in option.help
    assert build_parser().parse_args(["--repetition-penalty", "1.5"]).repetition_penalty == 1.5
    slider = build_layout(AppOptions(), [], "test machine").form["repetition_penalty"]
    assert isinstance(slider, gr.Slider) and (slider.minimum, slider.maximum, slider.value) == (1.0, 2.0, 1.0)
    assert slider.label == "Repetition penalty" and slider.elem_id == "repetition-penalty"
    assert compare_signature().parameters["repetition_penalty"].default == 1.0
    with pytest.raises(SettingsError, match=r"repetition penalty must be between 1 and 2, got 3\.0"):
        from_widgets({"repetition_penalty": 3.0})
    compare = compare_api(Controller(AppOptions(), [], RunMonitor()))
    refused = asyncio.run(compare("hi", repetition_penalty=math.inf))
    assert "repetition penalty must be a finite number" in refused["error"]
