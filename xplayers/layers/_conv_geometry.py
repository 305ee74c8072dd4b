"""Argument checks and padding shared by the naive and the fast convolution.

``conv_param`` holds ``stride`` and ``pad`` and, optionally, ``truncate``
(default False). As in CS231n, the stride must tile the padded input:
(H + 2*pad - HH) % stride == 0, and likewise for the width; otherwise a
ValueError names the shapes, the stride, the pad and the remainder. With
``truncate=True`` such inputs are accepted and the trailing rows/columns that
no window reaches are ignored (their dx is zero): Ho = 1 + (H + 2*pad - HH)
// stride, the floor torch.nn.functional.conv2d uses.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import array_api_extra as xpx

from .._checks import (
    check_dout,
    check_floating,
    check_int,
    check_ndim,
    check_param,
    check_shape,
    describe,
)


def conv_params(x: Any, w: Any, b: Any, xp: ModuleType) -> tuple[Any, Any]:
    """w and b in x's dtype (integer ones promoted; see ``check_param``); x real floating."""
    check_floating("x", x, xp)
    return check_param("w", w, x, xp), check_param("b", b, x, xp)


def conv_geometry(x: Any, w: Any, b: Any, conv_param: dict, xp: ModuleType) -> tuple[int, ...]:
    """Check the arguments; return (stride, pad, Ho, Wo)."""
    check_ndim("x", x, 4, "(N, C, H, W)")
    check_ndim("w", w, 4, "(F, C, HH, WW)")
    for name, a in (("x", x), ("w", w), ("b", b)):
        check_floating(name, a, xp)
    if w.shape[1] != x.shape[1]:
        raise ValueError(
            f"w has {w.shape[1]} input channels but x has {x.shape[1]}: "
            f"x is a {describe(x)}, w is a {describe(w)} (expected w of shape "
            f"(F, {x.shape[1]}, HH, WW))"
        )
    check_shape("b", b, (w.shape[0],), f"to match w's {w.shape[0]} filters")
    if not isinstance(conv_param, dict) or "stride" not in conv_param or "pad" not in conv_param:
        raise ValueError(f"conv_param must be a dict with 'stride' and 'pad', got {conv_param!r}")
    stride = check_int("conv_param['stride']", conv_param["stride"], 1)
    pad = check_int("conv_param['pad']", conv_param["pad"], 0)
    truncate = conv_param.get("truncate", False)
    if not isinstance(truncate, bool):
        raise ValueError(f"conv_param['truncate'] must be True or False, got {truncate!r}")
    _, _, h, wd = x.shape
    _, _, hh, ww = w.shape
    sizes = []
    for axis, size, k in (("height", h, hh), ("width", wd, ww)):
        span = size + 2 * pad - k
        if span < 0:
            raise ValueError(
                f"the {k}-wide filter is larger than the padded input {axis} {size + 2 * pad} "
                f"(x is a {describe(x)}, w is a {describe(w)}, pad={pad})"
            )
        if span % stride and not truncate:
            raise ValueError(
                f"stride {stride} does not tile the padded input {axis}: ({axis} {size} "
                f"+ 2*pad {2 * pad} - filter {k}) = {span} leaves a remainder of "
                f"{span % stride} when divided by the stride (x is a {describe(x)}, w is a "
                f"{describe(w)}, stride={stride}, pad={pad}); set conv_param['truncate'] = True "
                f"to ignore the last {span % stride} {'rows' if axis == 'height' else 'columns'}"
                f" of the padded input that no window reaches (as torch does)"
            )
        sizes.append(span // stride + 1)
    return stride, pad, sizes[0], sizes[1]


def check_conv_dout(dout: Any, x: Any, w: Any, ho: int, wo: int) -> None:
    """dout (N, F, Ho, Wo) in x's dtype."""
    check_dout(dout, (x.shape[0], w.shape[0], ho, wo), x.dtype, "(N, F, Ho, Wo) of the output")


def pad_input(x: Any, pad: int, xp: ModuleType) -> Any:
    """Zero-padded copy of x (N, C, H, W): (N, C, H + 2*pad, W + 2*pad), on x's device
    (written nowhere in place, so also for arrays that cannot be written)."""
    return xpx.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), xp=xp)


def unpad(xpad: Any, pad: int) -> Any:
    _, _, hp, wp = xpad.shape
    return xpad[:, :, pad : hp - pad, pad : wp - pad]
