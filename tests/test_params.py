from __future__ import annotations

from pathlib import Path

import pytest

from components.params import ParamsError, load_params, parse_override

from .conftest import ROOT, TINY


def test_params_yaml_loads_and_matches_the_model_defaults() -> None:
    p = load_params(ROOT / "params.yaml")
    assert p.data.scale == 0.05 and p.labeler.agreement_target == 0.73
    assert p.prepare.train + p.prepare.valid + p.prepare.test + p.prepare.judge == pytest.approx(1.0)


def test_unknown_keys_are_errors(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("data:\n  scal: 0.1\n")
    with pytest.raises(ParamsError, match=r"data\.scal"):
        load_params(bad)
    with pytest.raises(ParamsError, match="nosuchsection"):
        load_params(ROOT / "params.yaml", ["nosuchsection.x=1"])


def test_dvc_exp_run_style_strings_parse_as_floats(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    text = (ROOT / "params.yaml").read_text().replace("  scale: 0.05 ", "  scale: '2e-05' ", 1)
    path.write_text(text)  # what `dvc exp run -S data.scale=2e-05` leaves behind
    assert load_params(path).data.scale == 2e-05
    assert load_params(ROOT / "params.yaml", ["data.scale=2e-05"]).data.scale == 2e-05


def test_overrides_and_profile_merge_in_order() -> None:
    p = load_params(ROOT / "params.yaml", ["data.corpus_docs=42"], profile=TINY)
    assert p.data.scale == 0.005  # from the profile
    assert p.data.corpus_docs == 42  # --set wins
    assert p.data.k_max == 9  # untouched by either


def test_invalid_values_name_the_key() -> None:
    with pytest.raises(ParamsError, match=r"prepare: .*must be 1"):
        load_params(ROOT / "params.yaml", ["prepare.train=0.9"])
    with pytest.raises(ParamsError, match="k_max"):
        load_params(ROOT / "params.yaml", ["data.k_min=5", "data.k_max=4"])
    with pytest.raises(ParamsError, match="key=value"):
        parse_override("data.scale")


def test_an_unquoted_no_written_by_dvc_reads_as_no(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    text = (ROOT / "params.yaml").read_text().replace('mixed_precision: "no"', "mixed_precision: no", 1)
    path.write_text(text)  # PyYAML reads this as False
    assert load_params(path).resources.mixed_precision == "no"


def test_a_sign_off_category_outside_table1_is_an_error() -> None:
    with pytest.raises(ParamsError, match=r"unknown categories \['Poetry'\]"):
        load_params(ROOT / "params.yaml", ["labeler.sign_off_categories=[Generation, Poetry]"])


def test_every_default_lives_in_params_yaml(tmp_path: Path) -> None:
    from pydantic import BaseModel

    from components.params import Params

    def fields(model: type[BaseModel], prefix: str = ""):
        for name, field in model.model_fields.items():
            yield f"{prefix}{name}", field
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                yield from fields(field.annotation, f"{prefix}{name}.")

    assert [name for name, field in fields(Params) if not field.is_required()] == []
    text = (ROOT / "params.yaml").read_text()
    assert "\n  kl_coef: 0.2 " in text
    path = tmp_path / "params.yaml"
    path.write_text(text.replace("\n  kl_coef: 0.2 ", "\n  # kl_coef: 0.2 ", 1))
    with pytest.raises(ParamsError, match=r"ppo\.kl_coef: Field required"):
        load_params(path)
    with pytest.raises(ParamsError, match="file not found"):
        load_params(tmp_path / "missing.yaml")


def test_a_yaml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("data: [unclosed\n")
    with pytest.raises(ParamsError, match=rf"{path}: not valid YAML"):
        load_params(path)


def test_each_training_stage_may_run_on_its_own_number_of_processes() -> None:
    from typing import get_args

    from components.params import ResourcesParams
    from components.stages import STAGES

    training = {name for name, stage in STAGES.items() if stage.kind == "training"}
    assert set(get_args(get_args(ResourcesParams.model_fields["processes"].annotation)[0])) == training
    params = load_params("params.yaml", ["resources.num_processes=4"])
    assert params.resources.processes_for("sft") == params.resources.processes["sft"]
    assert load_params("params.yaml", ["resources.processes={}"]).resources.processes_for("sft") == 1
    with pytest.raises(ParamsError, match="processes"):
        load_params("params.yaml", ["resources.processes.ppo=0"])
    with pytest.raises(ParamsError, match="processes"):
        load_params("params.yaml", ["resources.processes.evaluate=2"])


def test_the_gpu_profile_is_valid_params_for_a_larger_model_and_world() -> None:
    default = load_params(ROOT / "params.yaml")
    gpu = load_params(ROOT / "params.yaml", profile=ROOT / "profiles" / "gpu.yaml")
    assert gpu.model.n_layer * gpu.model.n_embd > default.model.n_layer * default.model.n_embd
    assert gpu.data.scale > default.data.scale and gpu.resources.mixed_precision == "bf16"
    assert gpu.model.n_embd % gpu.model.n_head == 0
