"""`semilabel export --onnx`: outputs per group, dynamic batch, parity with PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from eval_fixtures import tiny_run, untrained_checkpoint  # noqa: F401  (session fixture)

from semilabel.cli import main
from semilabel.data.schema import COMBO
from semilabel.errors import OutputExistsError, SemilabelError
from semilabel.export import export_onnx
from semilabel.models.checkpoint import model_from_checkpoint

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def torch_logits(model, x: np.ndarray) -> list[np.ndarray]:
    with torch.no_grad():
        out = model.eval()(torch.from_numpy(x))
    return [t.numpy() for t in [*out.groups, *([out.joint] if out.joint is not None else [])]]


def run_onnx(path, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": x})


def test_onnx_matches_pytorch_for_any_batch(tiny_run, tmp_path):
    result = export_onnx(tiny_run.run, tmp_path / "model.onnx")
    # the default recipe has a joint head: its pair logits are a third output
    assert result.outputs == ["digit", "letter", "joint"] and result.max_abs_diff < 1e-4
    graph = onnx.load(str(result.path))
    onnx.checker.check_model(graph)
    assert [i.name for i in graph.graph.input] == ["images"]
    assert [o.name for o in graph.graph.output] == ["digit", "letter", "joint"]
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [1, 56, 56]
    model, _, _ = model_from_checkpoint(tiny_run.run)
    rng = np.random.default_rng(0)
    for batch in (1, 3, 9):
        x = rng.random((batch, 1, 56, 56), dtype=np.float32)
        got, expected = run_onnx(result.path, x), torch_logits(model, x)
        assert [g.shape for g in got] == [(batch, 10), (batch, 26), (batch, 260)]
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, atol=1e-4, rtol=0)


def test_without_a_joint_head_only_the_groups_are_outputs(tmp_path):
    ckpt = untrained_checkpoint(tmp_path / "groups.pt", COMBO, joint_head=False, sesemi=True)
    result = export_onnx(ckpt, tmp_path / "groups.onnx")
    assert result.outputs == ["digit", "letter"]
    x = np.random.default_rng(1).random((4, 1, 56, 56), dtype=np.float32)
    model, _, _ = model_from_checkpoint(ckpt)
    for g, e in zip(run_onnx(result.path, x), torch_logits(model, x)):
        np.testing.assert_allclose(g, e, atol=1e-4, rtol=0)


def test_refuses_to_overwrite_without_force(tiny_run, tmp_path):
    out = tmp_path / "model.onnx"
    out.write_bytes(b"old")
    with pytest.raises(OutputExistsError):
        export_onnx(tiny_run.run, out)
    assert out.read_bytes() == b"old"
    export_onnx(tiny_run.run, out, force=True, check=False)
    onnx.checker.check_model(onnx.load(str(out)))


def test_cli_export(tiny_run, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", str(tiny_run.run), "--onnx", str(out)]) == 0
    text = capsys.readouterr().out
    assert "outputs: digit, letter" in text and "max |ONNX - PyTorch|" in text
    assert main(["export", str(tmp_path / "missing-run"), "--onnx", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing-run" in err and err.count("\n") == 1
    assert not (tmp_path / "x.onnx").exists()


def test_export_takes_the_image_size_the_run_was_trained_on(tmp_path):
    from semilabel.models.checkpoint import load_checkpoint, save_checkpoint

    ckpt = untrained_checkpoint(tmp_path / "m.pt", COMBO)
    payload = load_checkpoint(ckpt)
    payload.pop("format")
    save_checkpoint(ckpt, {**payload, "image_shape": [48, 40]})
    result = export_onnx(ckpt, tmp_path / "m.onnx")
    dims = onnx.load(str(result.path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [1, 48, 40] and result.max_abs_diff < 1e-4


def test_the_crops_backbone_exports_at_the_opset_it_needs(tmp_path):
    ckpt = untrained_checkpoint(tmp_path / "crops.pt", COMBO, backbone="crops")
    with pytest.raises(SemilabelError, match="--opset 17: this run.s backbone needs opset 20"):
        export_onnx(ckpt, tmp_path / "low.onnx", opset=17)
    result = export_onnx(ckpt, tmp_path / "crops.onnx")  # picks 20
    assert onnx.load(str(result.path)).opset_import[0].version >= 20
    images = np.zeros((3, 56, 56), np.float32)
    images[:, 10:24, 8:12] = images[:, 30:44, 36:46] = 1.0  # two symbols apart, as the finder expects
    x = (images + 0.02 * np.random.default_rng(2).random((3, 56, 56), dtype=np.float32))[:, None]
    model, _, _ = model_from_checkpoint(ckpt)
    for g, e in zip(run_onnx(result.path, x), torch_logits(model, x)):
        np.testing.assert_allclose(g, e, atol=1e-4, rtol=0)
