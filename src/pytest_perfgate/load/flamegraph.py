"""A flame graph of sampled call paths as one self-contained SVG: no script, no stylesheet or
font from the network. Each box is a call path; its width is the path's share of all samples,
its callees stand on it; hovering shows the function, its file:line and its samples (an SVG
``<title>``). Boxes narrower than :data:`MIN_WIDTH` pixels are left out (they could not be read).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from html import escape

from .profile import SampledNode

WIDTH = 1200
ROW = 17
MIN_WIDTH = 0.5
#: approximate width of one character of the 11px label font
CHAR = 6.6
_HEAD = 44


def _colour(node: SampledNode) -> str:
    """Warm colours, fixed per function (the same function has the same colour everywhere);
    library and standard-library code paler than the service's own."""
    hue = zlib.crc32(node.function.encode()) % 55
    library = "site-packages" in node.location or "/lib/python" in node.location or not node.location
    return f"hsl({hue},{45 if library else 85}%,{72 if library else 60}%)"


def _label(text: str, width: float) -> str:
    fits = int((width - 6) // CHAR)
    if fits < 3:
        return ""
    return text if len(text) <= fits else text[: fits - 2] + ".."


def flamegraph_svg(roots: Sequence[SampledNode], samples: int, *, title: str = "CPU flame graph") -> str:
    """The SVG text of ``roots`` (each a call tree whose totals count samples out of ``samples``)."""
    depth_of: list[int] = []
    boxes: list[tuple[float, int, float, SampledNode]] = []
    scale = (WIDTH - 20) / max(samples, 1)

    def place(node: SampledNode, x: float, depth: int) -> None:
        width = node.total * scale
        if width < MIN_WIDTH:
            return
        boxes.append((x, depth, width, node))
        depth_of.append(depth)
        child_x = x
        for child in node.children:
            place(child, child_x, depth + 1)
            child_x += child.total * scale

    x = 10.0
    for root in roots:
        place(root, x, 0)
        x += root.total * scale
    levels = (max(depth_of) + 1) if depth_of else 1
    height = _HEAD + levels * ROW + 10
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        'font-family="monospace" font-size="11">',
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#fdfaf5"/>',
        f'<text x="{WIDTH / 2:.0f}" y="18" text-anchor="middle" font-size="15">{escape(title)}</text>',
        f'<text x="10" y="36" fill="#555">{samples} samples; width: share of samples on the path; '
        "callees stand on their callers; hover a box for its file:line and counts</text>",
    ]
    bottom = height - 10
    for x0, depth, width, node in boxes:
        y = bottom - (depth + 1) * ROW
        share = node.total / samples * 100 if samples else 0.0
        where = f" ({node.location})" if node.location else ""
        tip = f"{node.function}{where}: {node.total} samples ({share:.1f}%), own {node.own}"
        out.append(
            f'<g><title>{escape(tip)}</title><rect x="{x0:.2f}" y="{y}" width="{width:.2f}" height="{ROW - 1}" '
            f'rx="2" fill="{_colour(node)}"/>'
        )
        label = _label(node.function, width)
        if label:
            out.append(f'<text x="{x0 + 3:.2f}" y="{y + ROW - 5}">{escape(label)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


__all__ = ("flamegraph_svg",)
