"""Checks that stand between untrusted bytes (or untrusted weights) and compressai's rANS coder.

The container parser (:mod:`multirealism.bitstream_format`) checks the format; these check a parsed
bitstream against the model that is asked to decode it, pad coded strings so a crafted string cannot
make the decoder read past its buffer, and refuse latents the encoder cannot code in bounded time.
"""

from __future__ import annotations

import math
from typing import List, Sequence

from torch import Tensor, nn

from multirealism.bitstream_format import Bitstream, pixel_limit_message
from multirealism.errors import BitstreamError, ModelMismatchError, ModelOutputError


class GuardedStreams(Sequence):
    """``strings[s][i]`` with ``16 * len + pads[s]`` zero bytes appended, built when stream ``s`` is read."""

    def __init__(self, strings: List[List[bytes]], pads: List[int]) -> None:
        self._strings, self._pads = strings, pads

    def __len__(self) -> int:
        return len(self._strings)

    def __getitem__(self, index: int) -> List[bytes]:  # type: ignore[override]
        return [s + bytes(16 * len(s) + self._pads[index]) for s in self._strings[index]]


def guard_for_rans(stream: Bitstream, symbol_counts: Sequence[int]) -> Sequence[List[bytes]]:
    """Coded strings with zero bytes appended (lazily, one stream at a time, to bound memory).

    compressai's rANS decoder (``rans_interface.cpp``) has no bounds checks: it reads one 32-bit
    word per symbol at most, plus about 15 more per all-ones word consumed in its bypass mode.
    Zeros after a valid string are never read (decoded values are unchanged); within zeros the
    decoder stops reading bypass runs. Each stream's margin covers every symbol it codes
    (``symbol_counts[s]``, from the entropy model's ``stream_symbol_counts``).
    """
    return GuardedStreams(stream.strings, [8 * n + 64 for n in symbol_counts])


def check_header(
    stream: Bitstream, fingerprint: bytes, pad_multiple: int, num_streams: int, max_pixels: int
) -> None:
    """Refuse a parsed bitstream that another model wrote or whose sizes disagree with this model."""
    if stream.fingerprint != fingerprint:
        raise ModelMismatchError(
            f"bitstream was written by model {stream.fingerprint.hex()}, this codec is {fingerprint.hex()}"
        )
    expected = tuple(math.ceil(s / pad_multiple) for s in (stream.height, stream.width))
    if stream.latent_shape != expected or len(stream.strings) != num_streams:
        raise BitstreamError("bitstream header does not match its image size or this entropy model")
    padded_pixels = stream.num_images * expected[0] * expected[1] * pad_multiple**2
    if padded_pixels > max_pixels:  # many tiny images still decode at the padded size
        raise BitstreamError(pixel_limit_message("bitstream (padded for decoding)", padded_pixels, max_pixels))


def check_quality(stream: Bitstream, num_levels: int) -> None:
    """Refuse a header quality outside this model's trained levels ``0 .. num_levels - 1``
    (a codec without rate control has one level, so only quality 0)."""
    if not 0 <= stream.quality <= num_levels - 1:
        raise BitstreamError(f"bitstream quality {stream.quality:g} is outside this model's levels 0..{num_levels - 1}")


def check_finite(tensor: Tensor, what: str) -> None:
    """Refuse a NaN/inf latent or image: the rANS encoder spins forever on out-of-table symbols, and a
    non-finite decoded image would come back as silent garbage (e.g. all black after clamping)."""
    if not bool(tensor.isfinite().all()):
        raise ModelOutputError(f"the model produced non-finite values in its {what}; its weights are broken")


#: the largest latent magnitude handed to the rANS encoder; far beyond any trained model's range, and
#: far below where casting symbols to 32-bit integers would wrap
MAX_LATENT_MAGNITUDE = 2.0**20


def check_latent(y: Tensor) -> None:
    """Refuse a latent the rANS encoder cannot code in bounded time (non-finite or absurdly large)."""
    check_finite(y, "latent")
    if y.numel() and float(y.abs().max()) > MAX_LATENT_MAGNITUDE:
        raise ModelOutputError(
            f"the model produced a latent of magnitude {float(y.abs().max()):.3g}, over {MAX_LATENT_MAGNITUDE:g}; "
            "its weights are broken"
        )


def check_decoded_latent(y_hat: Tensor) -> None:
    """Refuse an entropy-decoded latent no encoder could have coded (non-finite, or over
    :data:`MAX_LATENT_MAGNITUDE`, which :func:`check_latent` enforces when coding): the bytes are corrupt
    (a crafted stream with a valid checksum), not the model."""
    if y_hat.numel() and not (bool(y_hat.isfinite().all()) and float(y_hat.abs().max()) <= MAX_LATENT_MAGNITUDE):
        raise BitstreamError(
            f"bitstream decodes to a latent of magnitude {float(y_hat.abs().max()):.3g}, which no encoder writes: "
            "its coded strings are corrupt"
        )


def check_decoded_image(image: Tensor, generator: nn.Module) -> None:
    """Refuse a non-finite decoded image, blaming the generator's weights only when they hold NaN/inf
    (otherwise a corrupt latent produced it)."""
    if bool(image.isfinite().all()):
        return
    check_weights(generator, "generator")
    raise BitstreamError("bitstream decodes to non-finite pixel values: its coded strings are corrupt")


def check_weights(module: nn.Module, what: str) -> None:
    """Refuse a module with non-finite parameters or buffers before it computes coding parameters."""
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        if tensor.is_floating_point() and not bool(tensor.isfinite().all()):
            raise ModelOutputError(f"the {what} weight {name} holds NaN or infinite values; refusing to code")
