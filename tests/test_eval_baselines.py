"""Classical codecs through Pillow: real bytes, and quality that behaves like quality."""

import pytest
from helpers import natural_image

from multirealism.evaluation import baselines
from multirealism.evaluation.metrics import psnr
from multirealism.evaluation.sweep import baseline_rows


def test_jpeg_quality_90_beats_quality_10():
    image = natural_image("coffee", 256)
    low = baselines.encode_decode(image, "jpeg", 10)
    high = baselines.encode_decode(image, "jpeg", 90)
    assert low.decoded.shape == image.shape
    assert psnr(high.decoded, image) > psnr(low.decoded, image) + 5
    assert len(high.data) > len(low.data)


@pytest.mark.parametrize("codec", sorted(baselines.CODECS))
def test_every_available_codec_round_trips_with_bpp_from_bytes(codec):
    usable, skipped = baselines.available([codec])
    if skipped:
        pytest.skip(skipped[codec])
    image = natural_image("chelsea", 96)[:, :, :80]
    rows, decoded = baseline_rows(codec, "chelsea", image, [30, 80])
    assert [d.shape for d in decoded] == [image.shape] * 2
    for row in rows:
        coded = baselines.encode_decode(image, codec, row["quality"])
        assert row["bytes"] == len(coded.data)
        assert row["bpp"] == pytest.approx(8 * len(coded.data) / (96 * 80))
    assert rows[1]["psnr"] > rows[0]["psnr"]


def test_unknown_codec_and_bad_quality_are_refused():
    with pytest.raises(ValueError, match="unknown baseline codec"):
        baselines.get_codec("bpg")
    with pytest.raises(ValueError, match="quality"):
        baselines.encode_decode(natural_image("coffee", 32), "jpeg", 101)
