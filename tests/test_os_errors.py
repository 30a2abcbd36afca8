"""Operating-system errors at the entry points are one sentence and exit 2, and leave nothing half-written."""

import errno
import json

import numpy as np
import pytest
from PIL import Image

from dpgan.cli import main
from dpgan.errors import DPGANError
from tiny_args import TINY_TRAIN


def _labels(folder):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((32, 64), dtype=np.uint8), mode="L").save(folder / "map0.png")
    return folder


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_a_full_disk_under_the_tensorboard_writer_is_one_sentence(tmp_path, monkeypatch, capsys):
    import dpgan.training.outputs as outputs

    class FullWriter:
        def add_scalar(self, *a, **k):
            raise OSError(errno.ENOSPC, "No space left on device")

        add_image = add_scalar

        def close(self):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs, "summary_writer", lambda path: FullWriter())
    assert main(["train", "--run-dir", str(tmp_path / "run"), *TINY_TRAIN]) == 2
    line = _one_error_line(capsys)
    assert "No space left on device" in line and "--resume" in line


def test_a_full_disk_while_appending_losses_keeps_whole_lines(tmp_path, monkeypatch, capsys):
    import builtins

    import dpgan.training.outputs as outputs

    real_open, calls = builtins.open, {"n": 0}

    class HalfWriting:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def fake_open(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        if str(path).endswith("losses.jsonl"):
            calls["n"] += 1
            if calls["n"] == 2:  # the second log line meets a full disk
                return HalfWriting(f)
        return f

    monkeypatch.setattr(outputs, "open", fake_open, raising=False)
    run = tmp_path / "run"
    assert main(["train", "--run-dir", str(run), *TINY_TRAIN]) == 2
    assert "No space left on device" in _one_error_line(capsys)
    lines = (run / "losses.jsonl").read_text().splitlines(keepends=True)
    assert [json.loads(x)["step"] for x in lines] == [1] and lines[-1].endswith("\n")


def test_an_output_folder_that_is_a_file_is_refused_up_front(tiny_run, tmp_path, capsys):
    from dpgan.inference.api import DPGAN

    a_file = tmp_path / "taken"
    a_file.write_text("keep me")
    labels = _labels(tmp_path / "labels")
    assert main(["synthesize", "--checkpoint", str(tiny_run), "--labels", str(labels), "--out", str(a_file),
                 "--device", "cpu", "--no-progress"]) == 2
    assert "is a file, not a folder" in _one_error_line(capsys)
    assert main(["export", str(tiny_run), str(a_file)]) == 2
    assert "is a file, not a folder" in _one_error_line(capsys)
    with pytest.raises(DPGANError, match="is a file, not a folder"):
        DPGAN.from_checkpoint(tiny_run, device="cpu").save_pretrained(a_file / "inner")
    assert a_file.read_text() == "keep me"


def test_save_pretrained_refuses_to_overwrite_like_export(tiny_run, tmp_path):
    from dpgan.inference.api import DPGAN
    from dpgan.inference.model_card import CARD_FILE
    from dpgan.inference.pretrained import WEIGHTS_FILE

    model = DPGAN.from_checkpoint(tiny_run, device="cpu")
    out = model.save_pretrained(tmp_path / "m")
    before = (out / WEIGHTS_FILE).read_bytes()
    with pytest.raises(DPGANError, match="already exists .*pass --overwrite"):
        model.save_pretrained(out)
    assert model.save_pretrained(out, overwrite=True) == out and (out / WEIGHTS_FILE).read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == [CARD_FILE, "config.json", WEIGHTS_FILE]  # no temporaries
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]


def test_any_os_error_in_a_command_is_one_line(tiny_run, tmp_path, monkeypatch, capsys):
    import dpgan.inference.synthesize as synth

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out" / "map0_seed0.png"))

    monkeypatch.setattr(synth, "save_png", full)
    code = main(["synthesize", "--checkpoint", str(tiny_run), "--labels", str(_labels(tmp_path / "l")),
                 "--out", str(tmp_path / "out"), "--device", "cpu", "--no-progress"])
    assert code == 2 and "No space left on device" in _one_error_line(capsys)


def test_synthesize_refuses_batch_size_0(tiny_run, tmp_path, capsys):
    code = main(["synthesize", "--checkpoint", str(tiny_run), "--labels", str(_labels(tmp_path / "l")),
                 "--out", str(tmp_path / "out"), "--batch-size", "0", "--device", "cpu", "--no-progress"])
    assert code == 2 and "--batch-size" in _one_error_line(capsys)
