"""FID/KID: numerics identical to pytorch-fid 0.3.0 (test dependency), plus the maths itself.

pytorch-fid would download its weights; its `load_state_dict_from_url` is replaced by one
returning a seeded random state dict, and the same dict is saved as our weights file, so both
implementations run the same network. No network access happens.
"""

from __future__ import annotations

import argparse
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pytorch_fid.inception as pfid_inception
from pytorch_fid import fid_score as pfid
from dpgan.errors import DataError, DPGANError
from dpgan.commands import fid as commands
from dpgan.evaluate.fid import (
    FIDNumericalError,
    FIDStats,
    frechet_distance,
    inception_activations,
    fid_from_stats,
    kernel_inception_distance,
    stats_of_folder,
    stats_of_images,
)
from dpgan.evaluate.inception import FID_WEIGHTS_NAME, FIDInceptionV3


def random_fid_state_dict(seed: int) -> dict[str, torch.Tensor]:
    """He-scaled convs and BN stats near identity: features that vary between images (a
    default-initialised BN net collapses to near-constant pool3 features)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, v in FIDInceptionV3().state_dict().items():
        if key.endswith("num_batches_tracked"):
            out[key] = v.clone()
        elif v.ndim == 4:
            out[key] = torch.randn(v.shape, generator=g) * math.sqrt(2.0 / v[0].numel())
        elif key.endswith("running_var"):
            out[key] = 0.75 + 0.5 * torch.rand(v.shape, generator=g)
        elif key.endswith("running_mean"):
            out[key] = 0.1 * torch.randn(v.shape, generator=g)
        elif key.endswith("bn.weight"):
            out[key] = 1 + 0.1 * torch.randn(v.shape, generator=g)
        else:
            out[key] = 0.1 * torch.randn(v.shape, generator=g)
    return out


def smooth_images(n: int, height: int, width: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 6, generator=g)
    x = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    return (x + 0.2 * torch.rand(n, 3, height, width, generator=g) + shift).clamp(0, 1)


@pytest.fixture(scope="module")
def state_dict() -> dict[str, torch.Tensor]:
    return random_fid_state_dict(seed=0)


@pytest.fixture(scope="module")
def weights_file(state_dict, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights") / FID_WEIGHTS_NAME
    torch.save(state_dict, path)
    return path


@pytest.fixture
def pfid_offline(state_dict, monkeypatch):
    """pytorch-fid's download replaced by our random weights; records the URLs it asked for."""
    urls: list[str] = []

    def fake_download(url, *args, **kwargs):
        urls.append(url)
        return {k: v.clone() for k, v in state_dict.items()}

    monkeypatch.setattr(pfid_inception, "load_state_dict_from_url", fake_download)
    return urls


@pytest.mark.parametrize("size", [(64, 128), (320, 300)])
@pytest.mark.parametrize("dims", [2048, 64])
def test_features_match_pytorch_fid(state_dict, pfid_offline, size, dims):
    block = pfid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[dims]
    reference = pfid_inception.InceptionV3([block]).eval()
    assert pfid_offline and "6726825d" in pfid_offline[0]
    ours = FIDInceptionV3(dims=dims)
    ours.load_state_dict(state_dict)
    x = smooth_images(3, *size, seed=1)
    with torch.no_grad():
        ref = torch.nn.functional.adaptive_avg_pool2d(reference(x)[0], 1).flatten(1)
        got = ours(x)
    assert got.shape == (3, dims)
    assert (got - ref).abs().max().item() <= 1e-5
    assert ref.std(dim=0).mean() > 1e-3  # the random network is not degenerate


def test_frechet_distance_matches_pytorch_fid_on_same_activations(state_dict):
    """768-d (Mixed_6e) features keep scipy's sqrtm fast; the 2048-d case is the CLI test."""
    model = FIDInceptionV3(dims=768)
    model.load_state_dict(state_dict)
    batches = [smooth_images(12, 48, 64, seed=s, shift=0.1 * (s % 2)) for s in range(4)]
    acts_a = inception_activations(batches[:2], model, progress=False)
    acts_b = inception_activations(batches[2:], model, progress=False)
    assert acts_a.dtype == np.float64 and acts_a.shape == (24, 768)
    a, b = FIDStats.from_activations(acts_a), FIDStats.from_activations(acts_b)
    np.testing.assert_array_equal(a.mu, np.mean(acts_a, axis=0))
    np.testing.assert_array_equal(a.sigma, np.cov(acts_a, rowvar=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pytorch-fid passes scipy's deprecated `disp`
        expected = pfid.calculate_frechet_distance(a.mu, a.sigma, b.mu, b.sigma)
        got = frechet_distance(a.mu, a.sigma, b.mu, b.sigma)
    print(f"FID on shared 768-d activations: pytorch-fid {expected!r}, dpgan {got!r}")
    assert expected > 0.01
    assert abs(got - expected) <= 1e-9 * expected


def _write_pngs(folder: Path, images: torch.Tensor) -> None:
    folder.mkdir()
    for i, img in enumerate(images):
        array = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(array).save(folder / f"{i:03d}.png")


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dpgan")
    commands.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_full_pipeline_and_cli_match_pytorch_fid(weights_file, pfid_offline, tmp_path, capsys):
    dir_a, dir_b = tmp_path / "real", tmp_path / "fake"
    _write_pngs(dir_a, smooth_images(11, 40, 56, seed=5))
    _write_pngs(dir_b, smooth_images(11, 40, 56, seed=6, shift=0.15))

    model = pfid_inception.InceptionV3([3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mu_a, sigma_a = pfid.compute_statistics_of_path(str(dir_a), model, 4, 2048, "cpu", 0)
        mu_b, sigma_b = pfid.compute_statistics_of_path(str(dir_b), model, 4, 2048, "cpu", 0)
        expected = pfid.calculate_frechet_distance(mu_a, sigma_a, mu_b, sigma_b)

    stats_file = tmp_path / "real_stats.npz"
    with pytest.warns(UserWarning, match="6726825d"):  # random weights: hash differs
        rc = _cli(["fid", str(dir_a), str(dir_b), "--inception-weights", str(weights_file),
                   "--batch-size", "4", "--device", "cpu", "--save-stats", str(stats_file)])  # fmt: skip
    assert rc == 0
    got = float(capsys.readouterr().out.strip().splitlines()[-1].removeprefix("FID:"))
    print(f"FID of two folders: pytorch-fid {expected!r}, dpgan CLI {got!r}")
    assert expected > 0.1
    assert abs(got - expected) <= 1e-9 * expected

    with np.load(stats_file) as f:  # what pytorch-fid reads, plus our settings
        np.testing.assert_allclose(f["mu"], mu_a, rtol=0, atol=1e-12)
        np.testing.assert_allclose(f["sigma"], sigma_a, rtol=0, atol=1e-12)
        settings = json.loads(str(f["settings"]))
    assert settings["num_images"] == 11 and settings["dims"] == 2048
    assert settings["image_sizes"] == [[40, 56]]
    assert settings["stats_dtype"] == "float64"
    assert settings["weights_sha256"] == FIDStats.load(stats_file).settings["weights_sha256"]
    assert len(settings["weights_sha256"]) == 64



def test_cli_two_npz_files_need_no_weights(tmp_path, capsys):
    rng = np.random.default_rng(7)
    a = FIDStats.from_activations(rng.normal(size=(40, 5)))
    b_acts = rng.normal(size=(40, 5)) + 0.5
    a.save(tmp_path / "a.npz")
    # pytorch-fid's own format: mu and sigma only.
    np.savez_compressed(tmp_path / "b.npz", mu=b_acts.mean(0), sigma=np.cov(b_acts, rowvar=False))
    assert _cli(["fid", str(tmp_path / "a.npz"), str(tmp_path / "b.npz")]) == 0
    got = float(capsys.readouterr().out.strip().splitlines()[-1].removeprefix("FID:"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = pfid.calculate_frechet_distance(
            a.mu, a.sigma, b_acts.mean(0), np.cov(b_acts, rowvar=False)
        )
    assert got == pytest.approx(expected, abs=1e-6)
    with pytest.raises(DataError, match="does not exist"):
        _cli(["fid", str(tmp_path / "a.npz"), str(tmp_path / "missing.npz")])
    with pytest.raises(DPGANError, match="exists already"):
        _cli(["fid", str(tmp_path / "a.npz"), "--save-stats", str(tmp_path / "a.npz")])


def test_missing_weights_name_the_option_and_file(tmp_path):
    for path in (tmp_path / "nowhere.pth", None):
        with pytest.raises(DPGANError) as info:
            FIDInceptionV3.from_file(path)
        message = str(info.value)
        assert "--inception-weights" in message and FID_WEIGHTS_NAME in message
    assert "nowhere.pth" in str(
        pytest.raises(DPGANError, FIDInceptionV3.from_file, tmp_path / "nowhere.pth").value
    )
    folder = tmp_path / "imgs"
    _write_pngs(folder, torch.rand(2, 3, 8, 8))
    with pytest.raises(DPGANError, match="--inception-weights"):
        _cli(["fid", str(folder), str(folder), "--device", "cpu"])


def test_tiny_forward_gives_2048_features():
    with torch.no_grad():
        features = FIDInceptionV3()(torch.rand(1, 3, 75, 75))
    assert features.shape == (1, 2048) and torch.isfinite(features).all()


class _MeanColour(torch.nn.Module):
    """Stand-in feature extractor: the mean colour of each image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def test_activations_accept_uint8_and_show_progress(capsys):
    images = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    from_uint8 = inception_activations([images[:3], images[3:]], _MeanColour(), total=2)
    from_float = inception_activations([images.float() / 255], _MeanColour(), progress=False)
    np.testing.assert_allclose(from_uint8, from_float, atol=1e-7)
    assert from_uint8.dtype == np.float64
    assert "Inception features" in capsys.readouterr().err  # tqdm bar on stderr


def test_stats_of_images_records_settings_and_mismatches_warn():
    g = torch.Generator().manual_seed(8)
    batches = (torch.rand(4, 3, 8, 16, generator=g) for _ in range(3))  # any iterator
    small = stats_of_images(batches, _MeanColour(), progress=False)
    large = stats_of_images([torch.rand(6, 3, 16, 32, generator=g)], _MeanColour(), progress=False)
    assert small.settings["image_sizes"] == [[8, 16]] and small.settings["num_images"] == 12
    assert small.mu.shape == (3,) and small.sigma.shape == (3, 3)
    with pytest.warns(UserWarning, match="image_sizes"):
        fid_from_stats(small, large)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fid_from_stats(small, small) == pytest.approx(0.0, abs=1e-9)


def test_folder_errors(tmp_path):
    model = _MeanColour()
    with pytest.raises(DataError, match="does not exist"):
        stats_of_folder(tmp_path / "missing", model)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no"):
        stats_of_folder(tmp_path / "empty", model)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.new("RGB", (8, 8)).save(mixed / "a.png")
    Image.new("RGB", (8, 6)).save(mixed / "b.png")
    with pytest.raises(DataError, match="differ in size"):
        stats_of_folder(mixed, model, batch_size=2, progress=False)


# ------------------------------------------------------------------------ Frechet distance
def _random_cov(d: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def _sqrtm_psd(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def test_fid_of_a_set_with_itself_is_zero():
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(300, 32)) @ rng.normal(size=(32, 32))
    s = FIDStats.from_activations(acts)
    assert abs(frechet_distance(s.mu, s.sigma, s.mu, s.sigma)) <= 1e-6


def test_fid_matches_closed_form_and_is_symmetric():
    rng = np.random.default_rng(1)
    d = 6
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = _random_cov(d, rng), _random_cov(d, rng)
    # tr sqrt(S1 S2) = tr sqrt(S1^1/2 S2 S1^1/2), the symmetric form, computed independently.
    r1 = _sqrtm_psd(s1)
    closed = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2) - 2 * np.trace(_sqrtm_psd(r1 @ s2 @ r1))
    fid12 = frechet_distance(mu1, s1, mu2, s2)
    assert fid12 == pytest.approx(closed, rel=1e-9)
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(fid12, rel=1e-9)
    # Diagonal Gaussians: sum (m1 - m2)^2 + (sqrt(v1) - sqrt(v2))^2 per dimension.
    v1, v2 = rng.uniform(0.5, 2, size=d), rng.uniform(0.5, 2, size=d)
    diag = np.sum((mu1 - mu2) ** 2 + (np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(diag, rel=1e-12)


def test_identity_feature_extractor_recovers_population_fid():
    """Samples of two Gaussians as 'features': sample-statistics FID ~ the population value."""
    rng = np.random.default_rng(2)
    d, n = 4, 200_000
    mu1, mu2 = np.zeros(d), np.full(d, 0.5)
    v1, v2 = np.array([1.0, 2.0, 0.5, 1.0]), np.array([2.0, 1.0, 0.5, 3.0])
    x = mu1 + rng.normal(size=(n, d)) * np.sqrt(v1)
    y = mu2 + rng.normal(size=(n, d)) * np.sqrt(v2)
    a, b = FIDStats.from_activations(x), FIDStats.from_activations(y)
    population = np.sum((mu1 - mu2) ** 2 + (np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert frechet_distance(a.mu, a.sigma, b.mu, b.sigma) == pytest.approx(population, rel=0.02)


def test_eps_retry_and_imaginary_policy():
    nilpotent = np.array([[0.0, 1.0], [0.0, 0.0]])  # sqrtm is not finite
    with pytest.warns(UserWarning, match="adding 1e-06"):
        value = frechet_distance(np.zeros(2), nilpotent, np.zeros(2), np.eye(2))
    assert np.isfinite(value)
    not_psd = np.diag([1.0, -1.0])  # sqrt(-1): imaginary part 1 on the diagonal
    with pytest.raises(FIDNumericalError, match="imaginary"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), not_psd)
    assert issubclass(FIDNumericalError, ValueError)
    dropped = frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), not_psd, imag_policy="drop")
    assert dropped == pytest.approx(2 + 0 - 2 * 1.0)
    with pytest.raises(DPGANError, match="feature size"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


# --------------------------------------------------------------------------- stats cache
def test_stats_cache_roundtrip(tmp_path):
    rng = np.random.default_rng(3)
    acts = rng.normal(size=(50, 8))
    stats = FIDStats.from_activations(acts, settings={"source": "unit test"})
    path = tmp_path / "stats.npz"
    stats.save(path)
    loaded = FIDStats.load(path)
    np.testing.assert_array_equal(loaded.mu, stats.mu)
    np.testing.assert_array_equal(loaded.sigma, stats.sigma)
    assert loaded.settings == {"source": "unit test", "num_images": 50, "dims": 8, "stats_dtype": "float64"}
    assert loaded.mu.dtype == np.float64
    # OASIS's float32 statistics are labelled as such and differ only at float32 precision.
    f32 = FIDStats.from_activations(acts, stats_dtype="float32")
    assert f32.settings["stats_dtype"] == "float32"
    np.testing.assert_allclose(f32.sigma, stats.sigma, atol=1e-5)
    assert not np.array_equal(f32.sigma, stats.sigma)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError):
        FIDStats.load(tmp_path / "bad.npz")


# ------------------------------------------------------------------------------------ KID
def _unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Direct U-statistic: mean of off-diagonal k(x, x') and k(y, y'), minus 2 mean k(x, y)."""
    d = x.shape[1]

    def k(a, b):
        return (a @ b.T / d + 1) ** 3

    m = len(x)
    off = ~np.eye(m, dtype=bool)
    return float(k(x, x)[off].mean() + k(y, y)[off].mean() - 2 * k(x, y).mean())


def test_kid_estimator_and_behaviour():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    whole = kernel_inception_distance(x, y + 0.3, num_subsets=1, subset_size=400)
    assert whole.mean == pytest.approx(_unbiased_mmd2(x, y + 0.3), rel=1e-10)
    assert whole.std == 0.0

    same = kernel_inception_distance(x, y, num_subsets=50, subset_size=100, seed=1)
    small = kernel_inception_distance(x, y + 0.25, num_subsets=50, subset_size=100, seed=1)
    large = kernel_inception_distance(x, y + 0.75, num_subsets=50, subset_size=100, seed=1)
    assert abs(same.mean) < 0.1 * small.mean
    assert 0 < small.mean < large.mean
    with pytest.raises(DPGANError, match="subset size"):
        kernel_inception_distance(x[:50], y, subset_size=100)
