"""The sweep with a tiny codec: real-byte bpp per row, one encode for all β, FID/KID plumbing,
reports and figures."""

import json
import math

import pytest
import torch
from helpers import make_tiny_codec, natural_image

from multirealism.evaluation import plots, report
from multirealism.evaluation.inputs import EvalImage
from multirealism.evaluation.realism import RandomTestExtractor, RealismMeter
from multirealism.evaluation.sweep import EncodingCache, matched_quality, run_sweep

BETAS = [0.0, 2.56, 5.12]


@pytest.fixture(scope="module")
def codec():
    return make_tiny_codec("hyperprior", seed=0)


def test_every_row_has_bpp_from_the_real_bytes(codec):
    images = [("astronaut", natural_image("astronaut", 128)), ("coffee", natural_image("coffee", 96)[:, :, :72])]
    inputs = [EvalImage(name, lambda image=image: image) for name, image in images]
    lines = []
    rows = run_sweep(inputs, [("tiny", codec)], BETAS, progress=lines.append).rows
    assert len(lines) == len(images) and lines[0].startswith("[1/2] astronaut (128x128")
    assert len(rows) == len(images) * len(BETAS)
    for name, image in images:
        data = codec.compress(image)
        mine = [r for r in rows if r["image"] == name]
        assert [r["beta"] for r in mine] == BETAS
        for row in mine:
            pixels = image.shape[-1] * image.shape[-2]
            assert row["bytes"] == len(data)
            assert row["bpp"] == pytest.approx(8 * len(data) / pixels)
            assert (row["width"], row["height"]) == (image.shape[-1], image.shape[-2])
            assert math.isfinite(row["psnr"]) and 0 < row["ms_ssim"] <= 1
            assert math.isnan(row["lpips"])  # no LPIPS network given
            # the likelihoods' promise for the same latent: the real bytes add the header and rANS overhead
            assert 0 < row["bpp_estimate"] < row["bpp"] < row["bpp_estimate"] + 8 * 64 / pixels


def test_classical_codecs_have_no_estimate(sweep):
    jpeg = [r for r in sweep.rows if r["codec"] == "jpeg"]
    assert jpeg and all(math.isnan(r["bpp_estimate"]) for r in jpeg)


def _images():
    crops = {"astronaut": natural_image("astronaut", 256), "rocket": natural_image("rocket", 256),
             "tiny": natural_image("coffee", 100)}
    return [EvalImage(name, lambda image=image: image) for name, image in crops.items()]


@pytest.fixture(scope="module")
def sweep(codec):
    meter = RealismMeter(RandomTestExtractor(), bootstrap=50)
    return run_sweep(_images(), [("tiny", codec)], BETAS, ["jpeg"], [20, 60, 90], realism=meter)


def test_realism_is_scored_per_setting_and_labelled(sweep):
    assert sweep.too_small_for_patches == ["tiny"]
    assert sweep.reference_patches == 2
    assert "not comparable" in sweep.realism_label
    assert len(sweep.realism) == len(BETAS) + 3
    for scores in sweep.realism.values():
        assert scores["patches"] == 2
        assert math.isfinite(scores["fid"]) and math.isfinite(scores["kid"])
    jpeg = {key[3]: s["fid"] for key, s in sweep.realism.items() if key[0] == "jpeg"}
    assert jpeg[90] < jpeg[20]
    kid = {key[3]: s["kid"] for key, s in sweep.realism.items() if key[0] == "jpeg"}
    assert kid[90] < kid[20]
    learned = {key[2]: s for key, s in sweep.realism.items() if key[0] == "multirealism"}
    assert math.isnan(learned[0.0]["kid_diff"])  # the base of the paired differences
    assert learned[5.12]["kid_diff"] == pytest.approx(learned[5.12]["kid"] - learned[0.0]["kid"])
    assert all(math.isnan(s["c2st"]) or 0 <= s["c2st"] <= 1 for s in sweep.realism.values())


def test_summary_bd_rate_and_outputs(sweep, tmp_path):
    summary = report.summarize(sweep)
    assert [(r["codec"], r["images"]) for r in summary][:1] == [("multirealism", 3)]
    assert all("not comparable" in r["fid_features"] for r in summary)
    table = report.format_table(summary)
    assert "multirealism" in table and "jpeg" in table
    bd = {e["series"]: e for e in report.bd_rates(summary, "jpeg")}
    assert bd["jpeg"]["bd_rate"] == pytest.approx(0.0, abs=1e-9)
    assert bd["multirealism β=0"]["bd_rate"] is None and "one rate point" in bd["multirealism β=0"]["note"]
    paths = report.write_outputs(str(tmp_path), sweep, summary, list(bd.values()),
                                 report.realism_tradeoff(summary), {"test": True}, "st_lpips_vgg")
    document = json.loads(open(paths["json"]).read(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert len(document["rows"]) == len(sweep.rows) == 3 * (len(BETAS) + 3)
    assert [e["beta"] for e in document["realism_tradeoff"]] == BETAS[1:]
    assert all(e["beta_from"] == 0.0 and "st_lpips_vgg_change_pct" in e for e in document["realism_tradeoff"])
    assert "st_lpips_vgg" in document["summary"][0] and "lpips" not in document["summary"][0]
    assert open(paths["rows_csv"]).read().count("\n") == len(sweep.rows) + 1


def test_realism_tradeoff_is_each_betas_change_from_the_lowest_beta():
    def row(beta, psnr, lpips, kid, quality=0.0, codec="multirealism"):
        return {"codec": codec, "model": "m", "beta": beta, "quality": quality, "psnr": psnr, "lpips": lpips,
                "kid": kid}

    summary = [row(5.12, 27.0, 0.15, 0.02), row(0.0, 28.5, 0.20, 0.05), row(2.56, 28.0, 0.18, 0.04),
               row(0.0, 30.0, 0.10, 0.01, quality=1.0), row(None, 30.0, 0.3, 0.1, quality=50, codec="jpeg")]
    table = report.realism_tradeoff(summary)
    assert [(e["quality"], e["beta_from"], e["beta"]) for e in table] == [(0.0, 0.0, 2.56), (0.0, 0.0, 5.12)]
    assert table[1]["psnr_change_db"] == pytest.approx(-1.5)
    assert table[1]["lpips_change_pct"] == pytest.approx(-25.0)
    assert (table[1]["kid_from"], table[1]["kid"]) == (0.05, 0.02)
    text = report.format_tradeoff_table(table, "st_lpips_vgg")
    assert "β 0.00 -> 5.12" in text and "PSNR -1.50 dB" in text and "st_lpips_vgg -25.0 %" in text


def test_figures_are_written(sweep, tmp_path):
    summary = report.summarize(sweep)
    written = plots.write_figures(summary, sweep.strip, str(tmp_path), sweep.realism_label)
    assert set(written) == {"rate_distortion", "distortion_realism", "realism_rate", "beta_strip"}
    for path in written.values():
        with open(path, "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert [beta for beta, _ in sweep.strip.decoded] == sorted(BETAS)
    assert sweep.strip.original.shape == (3, 256, 256)


def test_too_few_patches_give_nan_not_a_crash():
    meter = RealismMeter(RandomTestExtractor())
    meter.add_reference("a", torch.rand(1, 3, 256, 256))
    meter.add("x", "a", torch.rand(1, 3, 256, 256))
    assert math.isnan(meter.scores()["x"]["fid"])


def test_matched_quality_is_the_largest_that_fits():
    image = natural_image("astronaut", 128)
    cache = EncodingCache(image)
    target = len(cache.get("webp", 40).data) + 1
    quality = matched_quality(cache, "webp", target)
    assert len(cache.get("webp", quality).data) <= target < len(cache.get("webp", quality + 1).data)
    assert matched_quality(cache, "webp", 10**9) == 100
    assert matched_quality(cache, "webp", 1) == 0  # nothing fits: the smallest file


def test_match_bytes_codes_each_baseline_at_the_models_size(codec):
    image = natural_image("rocket", 128)
    meter = RealismMeter(RandomTestExtractor(), bootstrap=20)
    inputs = [EvalImage(f"rocket{i}", lambda i=i: torch.roll(image, 16 * i, dims=-1)) for i in range(2)]
    result = run_sweep(inputs, [("tiny", codec)], [0.0, 5.12], ["webp"], realism=meter, match_bytes=True,
                       patch_size=64)
    for name in ("rocket0", "rocket1"):
        learned = next(r for r in result.rows if r["image"] == name and r["codec"] == "multirealism")
        (webp,) = [r for r in result.rows if r["image"] == name and r["codec"] == "webp"]
        assert (webp["model"], webp["quality"]) == ("tiny", learned["quality"])
        assert webp["bytes"] <= learned["bytes"] or webp["codec_quality"] == 0
    assert result.reference_patches == 2 * 5
    (key,) = [key for key in result.realism if key[0] == "webp"]
    assert math.isfinite(result.realism[key]["kid_diff"])  # paired with the model's lowest β
    assert report.series_name(report.summarize(result)[-1]) == "webp (size of tiny)"
