"""Quantisation settings that adapt to the model's shapes.

Group-wise int4 splits every weight row into groups of ``group_size`` input channels, so a group
size has to divide the input channels of every quantised layer. The guide's 128 does not divide
SmolLM2's 576 (NNCF then refuses the export), so the group size is chosen from config.json: the
largest of the preferred sizes that divides every layer; the one really used is part of the
conversion's cache key and of the backend's note ("int4, group 64").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

# NNCF: 128 is the recommended group size; below 32 int4 loses its size advantage.
OPENVINO_GROUP_SIZES = (128, 64, 32)
OPENVINO_DEFAULT_GROUP = 128
# ORT GenAI's MatMulNBits: 32 is the builder's default block size; 16 is its smallest.
ORT_BLOCK_SIZES = (32, 16)
ORT_DEFAULT_BLOCK = 32


@dataclass(frozen=True)
class GroupChoice:
    """A group (block) size for group-wise int4, and why."""

    size: int | None  # None: nothing in the list divides every layer
    channels: tuple[int, ...]  # the input-channel counts it must divide

    @property
    def divides_all(self) -> bool:
        return self.size is not None


def text_config(model_dir: Path) -> dict:
    """config.json, or its ``text_config`` for multimodal wrappers."""
    config = json.loads((Path(model_dir) / "config.json").read_text())
    return config.get("text_config") or config


def quantised_input_channels(config: dict) -> tuple[int, ...]:
    """Input channels of the decoder's linear layers (q/k/v, o, gate/up, down).

    Embeddings and the LM head are not in the list: NNCF keeps them at the backup precision
    (int8) unless ``--all-layers`` is given.
    """
    hidden = int(config.get("hidden_size") or config.get("n_embd") or 0)
    heads = int(config.get("num_attention_heads") or config.get("n_head") or 0)
    head_dim = int(config.get("head_dim") or (hidden // heads if heads else 0))
    intermediate = int(config.get("intermediate_size") or config.get("n_inner") or 4 * hidden)
    channels = {hidden, heads * head_dim, intermediate}
    channels.discard(0)
    return tuple(sorted(channels))


def choose_group(channels: tuple[int, ...], preferred: tuple[int, ...]) -> GroupChoice:
    for size in preferred:
        if all(count % size == 0 for count in channels):
            return GroupChoice(size, channels)
    return GroupChoice(None, channels)


def openvino_int4_group(model_dir: Path) -> GroupChoice:
    return choose_group(quantised_input_channels(text_config(model_dir)), OPENVINO_GROUP_SIZES)


def ort_int4_block(model_dir: Path) -> GroupChoice:
    return choose_group(quantised_input_channels(text_config(model_dir)), ORT_BLOCK_SIZES)


_INT4_CONST = re.compile(r'element_type="[ui]4"\s+shape="([\d, ]+)"')


def int4_groups_in_ir(xml_path: Path) -> list[int]:
    """Group sizes the exporter really wrote: the last dimension of the 3-D int4 weight constants
    (``[out, n_groups, group]``); -1 for channel-wise (2-D) int4 weights. Sorted, unique."""
    try:
        text = Path(xml_path).read_text(errors="replace")
    except OSError:
        return []
    sizes = set()
    for shape in _INT4_CONST.findall(text):
        dims = [int(d) for d in shape.replace(" ", "").split(",") if d]
        sizes.add(dims[-1] if len(dims) == 3 else -1)
    return sorted(sizes, reverse=True)


def describe_int4_groups(groups: list[int]) -> str:
    """ "int4 group 64", "int4 groups 64/32", "int4 channel-wise" for the backend's note."""
    if not groups:
        return ""
    named = ["channel-wise" if size == -1 else str(size) for size in groups]
    if named == ["channel-wise"]:
        return "int4 channel-wise"
    label = "group" if len(named) == 1 else "groups"
    return f"int4 {label} {'/'.join(named)}"
