"""Analysis transforms: the paper's ELIC encoder (``elic``) and the CPU-sized GDN encoder (``gdn``)."""

from multirealism.components.encoders.elic import ElicEncoder
from multirealism.components.encoders.gdn import GdnEncoder

__all__ = ["ElicEncoder", "GdnEncoder"]
