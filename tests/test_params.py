from __future__ import annotations

from pathlib import Path

import pytest

from components.params import ParamsError, load_params, parse_override

from .conftest import ROOT, TINY


def test_params_yaml_loads_and_matches_the_model_defaults() -> None:
    p = load_params(ROOT / "params.yaml")
    assert p.data.scale == 0.05 and p.labeler.agreement_target == 0.73
    assert p.prepare.train + p.prepare.valid + p.prepare.test == pytest.approx(1.0)


def test_unknown_keys_are_errors(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("data:\n  scal: 0.1\n")
    with pytest.raises(ParamsError, match=r"data\.scal"):
        load_params(bad)
    with pytest.raises(ParamsError, match="nosuchsection"):
        load_params(None, ["nosuchsection.x=1"])


def test_dvc_exp_run_style_strings_parse_as_floats(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("data:\n  scale: '2e-05'\n")  # what `dvc exp run -S data.scale=2e-05` leaves behind
    assert load_params(path).data.scale == 2e-05
    assert load_params(None, ["data.scale=2e-05"]).data.scale == 2e-05


def test_overrides_and_profile_merge_in_order() -> None:
    p = load_params(ROOT / "params.yaml", ["data.corpus_docs=42"], profile=TINY)
    assert p.data.scale == 0.005  # from the profile
    assert p.data.corpus_docs == 42  # --set wins
    assert p.data.k_max == 9  # untouched by either


def test_invalid_values_name_the_key() -> None:
    with pytest.raises(ParamsError, match=r"prepare: .*must be 1"):
        load_params(None, ["prepare.train=0.9"])
    with pytest.raises(ParamsError, match="k_max"):
        load_params(None, ["data.k_min=5", "data.k_max=4"])
    with pytest.raises(ParamsError, match="key=value"):
        parse_override("data.scale")


def test_an_unquoted_no_written_by_dvc_reads_as_no(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("resources:\n  mixed_precision: no\n")  # PyYAML reads this as False
    assert load_params(path).resources.mixed_precision == "no"


def test_a_padded_category_outside_table1_is_an_error() -> None:
    with pytest.raises(ParamsError, match=r"unknown categories \['Poetry'\]"):
        load_params(None, ["labeler.padded_categories=[Generation, Poetry]"])
