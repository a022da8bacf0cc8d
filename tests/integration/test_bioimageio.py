"""BioImage.IO export and import (zoo/bioimageio.py): a tiny model exported to a zip and to a folder passes
bioimageio.core's model test with no network, its three weight formats agree with each other and with
restore(), and load_model reads the package back."""

from __future__ import annotations

import os
import shutil
import zipfile

import numpy as np
import pytest

pytest.importorskip("bioimageio.core", reason='needs the extra: pip install "napari-gama-ir[bioimageio]"')
pytest.importorskip("onnxruntime")

from napari_gama_ir import build_model, export_bioimageio, load_model, restore, save_model  # noqa: E402
from napari_gama_ir.cli import main  # noqa: E402
from napari_gama_ir.errors import InvalidInputError, ModelFileError  # noqa: E402
from napari_gama_ir.zoo import bioimageio as bio  # noqa: E402

pytestmark = pytest.mark.slow
FORMATS = ("pytorch_state_dict", "torchscript", "onnx")


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """bioimageio's settings for CI: no IO checks (nothing downloaded), a private cache."""
    saved = {k: os.environ.get(k) for k in ("BIOIMAGEIO_PERFORM_IO_CHECKS", "BIOIMAGEIO_CACHE_PATH")}
    os.environ["BIOIMAGEIO_PERFORM_IO_CHECKS"] = "false"
    os.environ["BIOIMAGEIO_CACHE_PATH"] = str(tmp_path_factory.mktemp("bioimageio-cache"))
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    mp = pytest.MonkeyPatch()
    mp.setenv("NAPARI_GAMA_IR_MODELS", str(folder))
    net = build_model("tiny")
    rng = np.random.default_rng(0)
    for p in net.parameters():  # an untrained net with beta = gamma = 0 is the identity: make it do something
        p.data.copy_(p.data + 0.05 * rng.standard_normal(tuple(p.shape)).astype(np.float32))
    save_model(net, "tiny-bio")
    yield folder
    mp.undo()


@pytest.fixture(scope="module")
def package(models_dir, tmp_path_factory):
    return export_bioimageio("tiny-bio", tmp_path_factory.mktemp("out") / "tiny-bio.zip", authors=["A. Tester"])


def test_zip_layout_and_rdf(package):
    import yaml

    names = set(zipfile.ZipFile(package).namelist())
    assert names == {"rdf.yaml", "README.md", "cover.png", "gama_ir.py", "test_input.npy", "test_output.npy",
                     "weights.pt", "weights_torchscript.pt", "weights.onnx"}  # fmt: skip
    rdf = yaml.safe_load(zipfile.ZipFile(package).read("rdf.yaml"))
    assert rdf["format_version"].startswith("0.5")
    (inp,), (out,) = rdf["inputs"], rdf["outputs"]
    assert [a["type"] for a in inp["axes"]] == ["batch", "channel", "space", "space"]
    assert inp["axes"][2]["size"] == {"min": 36, "step": 4}  # tiny: 2 levels -> step 4; min: first above 2 * halo
    assert out["axes"][2]["halo"] == 16
    # the card's normalisation runs inside the network, so the output is in the input's units
    assert [p["id"] for p in inp["preprocessing"]] == [p["id"] for p in out["postprocessing"]] == ["ensure_dtype"]
    assert set(rdf["weights"]) == set(FORMATS)
    arch = rdf["weights"]["pytorch_state_dict"]["architecture"]
    assert arch["callable"] == "RawIntensityGAMAIR" and arch["source"] == "gama_ir.py"
    assert (arch["kwargs"]["low_percentile"], arch["kwargs"]["high_percentile"]) == (0.5, 99.9)
    src = zipfile.ZipFile(package).read("gama_ir.py").decode()
    assert "napari_gama_ir" not in src.split('"""', 2)[2].split("class ")[0]  # imports torch only
    assert any("2404.00807" in c.get("doi", "") for c in rdf["cite"])
    assert rdf["authors"] == [{"name": "A. Tester"}]


def test_bioimageio_core_model_test_passes_offline(package, offline):
    from bioimageio.core import test_model

    summary = test_model(package)
    failed = [(d.name, [e.msg for e in d.errors]) for d in summary.details if d.status != "passed"]
    assert summary.status == "passed", failed
    ran = " ".join(d.name for d in summary.details)
    for fmt in FORMATS:
        assert f"Reproduce test outputs from test inputs ({fmt})" in ran


def test_weight_formats_agree_with_each_other_and_restore(package):
    test_in = np.load(zipfile.ZipFile(package).open("test_input.npy"))
    outs = {fmt: bio.run_weights(package, fmt, test_in) for fmt in FORMATS}
    # the package's output is in the input's units, as restore()'s is
    outs["restore"] = restore(test_in[0, 0], model="tiny-bio", device="cpu", precision="fp32")[None, None]
    names = list(outs)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert bio.psnr(outs[a], outs[b]) >= 50, (a, b, bio.psnr(outs[a], outs[b]))
    assert np.allclose(outs["pytorch_state_dict"], np.load(zipfile.ZipFile(package).open("test_output.npy")), atol=1e-3)
    # any other intensity scale: the output follows it
    scaled = {fmt: bio.run_weights(package, fmt, test_in * 250.0 + 7.0) for fmt in FORMATS}
    for fmt in FORMATS:
        assert bio.psnr(scaled[fmt], outs[fmt] * 250.0 + 7.0) >= 50, fmt


def test_percentile_bounds_match_numpy():
    import torch

    from napari_gama_ir.model.gama_ir import percentile_bounds

    x = np.random.default_rng(3).gamma(2.0, 50.0, (2, 3, 37, 53)).astype(np.float32)
    low, high = percentile_bounds(torch.from_numpy(x), 0.5, 99.9)
    expected = np.percentile(x, [0.5, 99.9], axis=(2, 3))
    assert np.allclose(low.numpy()[..., 0, 0], expected[0], rtol=1e-5)
    assert np.allclose(high.numpy()[..., 0, 0], expected[1], rtol=1e-5)


def test_load_model_round_trips(package, tmp_path):
    original = load_model("tiny-bio")
    back = load_model(package)
    assert back.card.model_args == original.card.model_args
    x = np.random.default_rng(1).random((96, 80), dtype=np.float32)
    assert np.array_equal(restore(x, model=back, device="cpu"), restore(x, model=original, device="cpu"))
    folder = tmp_path / "unzipped"
    zipfile.ZipFile(package).extractall(folder)
    assert load_model(folder / "rdf.yaml").card.model_args == original.card.model_args
    assert load_model(folder).card.name == original.card.name


def test_package_of_another_architecture_is_refused(package, tmp_path):
    import yaml

    folder = tmp_path / "other"
    zipfile.ZipFile(package).extractall(folder)
    rdf = yaml.safe_load((folder / "rdf.yaml").read_text())
    rdf["weights"]["pytorch_state_dict"]["architecture"]["callable"] = "UNet2d"
    rdf["config"].pop(bio.CONFIG_KEY)
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    with pytest.raises(ModelFileError, match="another architecture.*UNet2d"):
        load_model(folder / "rdf.yaml")
    shutil.make_archive(str(tmp_path / "other"), "zip", folder)
    with pytest.raises(ModelFileError, match="another architecture"):
        load_model(tmp_path / "other.zip")


def test_folder_export_and_options(models_dir, tmp_path, offline):
    out = export_bioimageio("tiny-bio", tmp_path / "pkg", weights=("onnx",), name="my denoiser", license="CC-BY-4.0")
    assert (out / "rdf.yaml").is_file() and (out / "weights.onnx").is_file() and not (out / "weights_torchscript.pt").exists()
    assert load_model(out).card.name == "tiny-bio"
    with pytest.raises(InvalidInputError, match="already exists"):
        export_bioimageio("tiny-bio", out)
    with pytest.raises(InvalidInputError, match="weights"):
        export_bioimageio("tiny-bio", tmp_path / "x.zip", weights=("tensorflow",))
    assert not (tmp_path / "x.zip").exists()


def test_a_context_model_is_refused(models_dir, tmp_path):
    from napari_gama_ir.model.context import add_context

    with pytest.raises(InvalidInputError, match="neighbouring planes.*accepted for BioImage.IO export: a 2-D model"):
        export_bioimageio(add_context(load_model("tiny-bio"), 1, "Z"), tmp_path / "ctx.zip")
    assert list(tmp_path.iterdir()) == []


def test_missing_extra_names_the_install_command(models_dir, tmp_path, without_bioimageio):
    with pytest.raises(InvalidInputError, match=r'pip install "napari-gama-ir\[bioimageio\]"'):
        export_bioimageio("tiny-bio", tmp_path / "x.zip")
    assert list(tmp_path.iterdir()) == []


def test_cli_export(models_dir, tmp_path, capsys):
    out = tmp_path / "cli.zip"
    assert main(["export", "tiny-bio", str(out), "--weights", "pytorch_state_dict", "-q"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert load_model(out).card.name == "tiny-bio"
    assert main(["export", "tiny-bio", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
