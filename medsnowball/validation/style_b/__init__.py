"""Style B: an independently designed chest-CT anatomy and scanner style.

**Evaluation only** (held-out style ``"style_b"``, leave-one-style-out validation): never
train, fit or tune anything on these phantoms. See docs/validation.md, "Style B".
"""

from medsnowball.validation.style_b.config import (
    STYLE_NAME,
    StyleBConfig,
    random_style_b_config,
)
from medsnowball.validation.style_b.generator import generate_style_b
from medsnowball.validation.style_b.shapes import StarShape, make_shape, random_synthetic_shapes
from medsnowball.validation.style_b.tissue import BTissue

__all__ = [
    "STYLE_NAME",
    "BTissue",
    "StarShape",
    "StyleBConfig",
    "generate_style_b",
    "make_shape",
    "random_style_b_config",
    "random_synthetic_shapes",
]
