"""The building blocks every part of the HTML report shares: verdict colours and `el`."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from reachproof.verdict import Verdict

COLOUR = {
    Verdict.PASS: "#1a7f37",
    Verdict.FAIL: "#cf222e",
    Verdict.WAIVED: "#0969da",
    Verdict.WARN: "#9a6700",
    Verdict.INCONCLUSIVE: "#6e7781",
}


def el(tag: str, attrs: dict[str, str] | None = None, *children: ET.Element | str) -> ET.Element:
    """An element with attributes and children; strings become (escaped) text."""
    node = ET.Element(tag, attrs or {})
    for child in children:
        if isinstance(child, str):
            if len(node):
                last = node[-1]
                last.tail = (last.tail or "") + child
            else:
                node.text = (node.text or "") + child
        else:
            node.append(child)
    return node
