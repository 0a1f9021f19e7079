"""Flash partitions: the model+plan container, the layout, HEX, overlay, flash file.

Partitions (docs/formats.md, "Partitions"), in flash order after the firmware:

    peft_model     model+plan container (header, the device .tflite, the plan blob)
    peft_dataset   dataset blob (datasets.py)
    peft_state0    trained-state slot 0 (erased: the device writes it)
    peft_state1    trained-state slot 1

Each partition starts on an erase page and is rounded up to whole pages.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from micropeft import formats
from micropeft.deploy.boards import Board
from micropeft.errors import UserError
from micropeft.planning import methods, plan

MODEL_MAGIC = formats.CONTAINER.magic
MODEL_VERSION = formats.CONTAINER.version
MODEL_HEADER_SIZE = formats.CONTAINER.header_size
# Offset of the model inside the container: flatbuffers align their content to at
# most 16 bytes relative to the buffer start, so the model must start 16-aligned.
_ALIGN = formats.CONTAINER_MODEL_ALIGN
PARTITION_NAMES = ("peft_model", "peft_dataset", "peft_state0", "peft_state1")
STATE_HEADER_SIZE = formats.STATE.header_size


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def model_container(model: bytes, plan: bytes) -> bytes:
    """Header + device model + plan blob, as the peft_model partition holds them."""
    model_offset = MODEL_HEADER_SIZE
    plan_offset = _align(model_offset + len(model), _ALIGN)
    total = _align(plan_offset + len(plan), 4)
    blob = bytearray(total)
    blob[model_offset : model_offset + len(model)] = model
    blob[plan_offset : plan_offset + len(plan)] = plan
    formats.CONTAINER.pack_header(
        blob,
        total_length=total,
        model_offset=model_offset,
        model_length=len(model),
        plan_offset=plan_offset,
        plan_length=len(plan),
        model_crc=zlib.crc32(model) & 0xFFFFFFFF,
    )
    return formats.CONTAINER.seal(blob)


def parse_model_container(blob: bytes) -> tuple[bytes, bytes]:
    """(model, plan) from a container; UserError when it does not check out."""
    if len(blob) < MODEL_HEADER_SIZE:
        raise UserError("model container too short for its header")
    head = formats.CONTAINER_HEADER.unpack(blob)
    if (
        head["magic"] != MODEL_MAGIC
        or head["version"] != MODEL_VERSION
        or head["header_size"] != MODEL_HEADER_SIZE
    ):
        raise UserError("not a micropeft model container (magic/version)")
    total = head["total_length"]
    m_off, m_len, m_crc = head["model_offset"], head["model_length"], head["model_crc"]
    p_off, p_len = head["plan_offset"], head["plan_length"]
    if total > len(blob) or zlib.crc32(blob[formats.CRC_START : total]) & 0xFFFFFFFF != head["crc"]:
        raise UserError("model container is truncated or corrupt (CRC mismatch)")
    model = bytes(blob[m_off : m_off + m_len])
    if zlib.crc32(model) & 0xFFFFFFFF != m_crc:
        raise UserError("model container: model CRC mismatch")
    return model, bytes(blob[p_off : p_off + p_len])


@dataclass(frozen=True)
class Partition:
    label: str
    offset: int  # from the start of the flash
    size: int
    data: bytes  # the image (at most size bytes; the rest stays erased)


def layout(
    board: Board, images: dict[str, bytes], state_size: int, firmware_size: int
) -> list[Partition]:
    """Partitions after `firmware_size` bytes, page aligned; UserError if they do not fit."""
    page = board.page_size
    if firmware_size < 0 or firmware_size % page:
        raise UserError(f"firmware size {firmware_size} must be a multiple of the {page}-byte page")
    if firmware_size >= board.flash_size:
        raise UserError(
            f"firmware size {firmware_size} leaves no flash on {board.name} ({board.flash_size} B)"
        )
    sizes = {
        "peft_model": len(images["peft_model"]),
        "peft_dataset": len(images["peft_dataset"]),
        "peft_state0": state_size,
        "peft_state1": state_size,
    }
    parts = []
    offset = firmware_size
    for label in PARTITION_NAMES:
        size = max(_align(sizes[label], page), page)
        data = images.get(label, bytes([board.erased]) * size)
        parts.append(Partition(label, offset, size, data))
        offset += size
    if offset > board.flash_size:
        listing = ", ".join(f"{p.label} {p.size // 1024} KiB" for p in parts)
        raise UserError(
            f"the partitions do not fit on {board.name}: firmware {firmware_size // 1024} KiB + "
            f"{listing} = {offset // 1024} KiB > flash {board.flash_size // 1024} KiB "
            f"(over by {(offset - board.flash_size) // 1024 + 1} KiB): use a smaller dataset "
            "(--limit), a smaller model, or --firmware-size"
        )
    return parts


def overlay(board: Board, parts: list[Partition], firmware_size: int) -> str:
    """Devicetree overlay with fixed-partitions under the board's flash node."""
    lines = [
        f"/* Flash partitions for micropeft, made by `micropeft pack --board {board.name}`. */",
        "",
    ]
    # The partitions node is replaced below, so the chosen code partition must be
    # ours or none (newer native_sim points it at slot0_partition, deleted here).
    code = (
        "zephyr,code-partition = &peft_code;"
        if board.code_partition
        else ("/delete-property/ zephyr,code-partition;")
    )
    lines += ["/ {", "\tchosen {", f"\t\t{code}", "\t};", "};", ""]
    lines += [
        f"&{board.flash_node} {{",
        "\t/delete-node/ partitions;",
        "",
        "\tpartitions {",
        '\t\tcompatible = "fixed-partitions";',
        "\t\t#address-cells = <1>;",
        "\t\t#size-cells = <1>;",
    ]
    nodes = []
    if board.code_partition:
        nodes.append(("peft_code", "code", 0, firmware_size))
    nodes += [(p.label, p.label, p.offset, p.size) for p in parts]
    for label, name, offset, size in nodes:
        lines += [
            "",
            f"\t\t{label}: partition@{offset:x} {{",
            f'\t\t\tlabel = "{name}";',
            f"\t\t\treg = <0x{offset:x} 0x{size:x}>;",
            "\t\t};",
        ]
    lines += ["\t};", "};", ""]
    return "\n".join(lines)


def intel_hex(board: Board, parts: list[Partition]) -> str:
    """Intel HEX of every partition image at its flash address."""
    import io

    from intelhex import IntelHex

    ih = IntelHex()
    for p in parts:
        ih.frombytes(p.data, offset=board.flash_base + p.offset)
    out = io.StringIO()
    ih.write_hex_file(out)
    return out.getvalue()


def flash_image(board: Board, parts: list[Partition]) -> bytes:
    """The whole flash as one raw file (erased bytes elsewhere): native_sim's --flash file."""
    flash = bytearray([board.erased]) * board.flash_size
    for p in parts:
        flash[p.offset : p.offset + len(p.data)] = p.data
    return bytes(flash)


def state_size(trainable_parameters: int, states_per_param: int) -> int:
    """Bytes of a trained-state blob: header, float32 parameters, optimizer state
    (the formula of peft_trainer_state_size in lib/peft/runtime)."""
    return STATE_HEADER_SIZE + 4 * trainable_parameters * (1 + states_per_param)


# Kconfig of the sample's buffers (samples/peft_mobilenet/Kconfig and the module's).
_RAM_OPTIONS = (
    ("CONFIG_PEFT_TFLM_ARENA_SIZE", "TFLM arena"),
    ("CONFIG_PEFT_ARENA_SIZE", "training arena"),
    ("CONFIG_PEFT_SAMPLE_CACHE_SIZE", "prefix cache"),
)
# Room kept for TFLM's arena over prepare-model's figure, which is measured by a 64-bit host
# build (a 32-bit device needs less, but allocation rounding varies).
_TFLM_MARGIN = 1024


def _plan_methods(summary: dict) -> set[str]:
    """Method names the plan's layers use (summary.json's "trainable_layers")."""

    used = set()
    for entry in summary.get("trainable_layers", []):
        for name in entry["methods"].split(" ")[0].split("+"):
            if name not in methods.METHODS:
                raise UserError(f"summary.json names an unknown method {name!r}")
            used.add(name)
    if not used:
        raise UserError("summary.json lists no trainable layer: run prepare-model again")
    return used


def board_config(
    board: Board, summary: dict, split_bytes: int, n_train: int
) -> tuple[dict[str, str], list[str]]:
    """The sample's Kconfig for these images: ({CONFIG_...: value}, comment lines).

    Every size the images need, the methods and the optimizer the plan uses (the others
    left out), and a prefix cache for as many training samples as the board's RAM holds
    beside the rest. UserError with the figures when the plan does not fit the RAM."""

    ram = summary["ram"]
    optimizer = summary.get("method", {}).get("optimizer", "sgd")
    if optimizer not in methods.OPTIMIZERS:
        raise UserError(f"summary.json names an unknown optimizer {optimizer!r}")
    sizes = {
        "CONFIG_PEFT_TFLM_ARENA_SIZE": _align(int(ram["tflm_arena_prefix"]) + _TFLM_MARGIN, 1024),
        "CONFIG_PEFT_ARENA_SIZE": _align(int(ram["train_arena"]), 16),
    }
    # The state streams to flash through the sample's fixed buffer (not an option).
    stream = formats.LIMIT["STATE_STREAM_BUFFER"]
    need = sum(sizes.values()) + stream
    comments = [f"RAM for these images: {need:,d} B without the prefix cache"]
    cache = _align(split_bytes * n_train, 16)
    if board.ram_size is not None and board.sample_ram_baseline is not None:
        room = board.ram_size - board.sample_ram_baseline - need
        listing = ", ".join(
            [f"{label} {sizes[name]:,d} B" for name, label in _RAM_OPTIONS if name in sizes]
            + [f"state buffer {stream:,d} B"]
        )
        if room < 0:
            raise UserError(
                f"the plan does not fit the RAM of {board.name}: {listing} = {need:,d} B, "
                f"beside the sample's {board.sample_ram_baseline:,d} B, is "
                f"{need + board.sample_ram_baseline:,d} B > {board.ram_size:,d} B "
                f"(over by {-room:,d} B): use a smaller model or --size, fewer trained "
                "layers, --act-cache s8, or SGD"
            )
        cache = min(cache, room // 16 * 16)
        cached = cache // max(split_bytes, 1)
        comments.append(
            f"{board.name}: {board.ram_size:,d} B RAM, the sample's own "
            f"{board.sample_ram_baseline:,d} B, {room:,d} B left for the prefix cache "
            f"({cached} of {n_train} training samples)"
        )
    sizes["CONFIG_PEFT_SAMPLE_CACHE_SIZE"] = max(cache, 16)
    options = {name: str(value) for name, value in sizes.items()}
    used = _plan_methods(summary)
    for name in methods.METHODS:
        options[f"CONFIG_PEFT_METHOD_{name.upper()}"] = "y" if name in used else "n"
    for name in methods.OPTIMIZERS:
        options[f"CONFIG_PEFT_OPTIMIZER_{name.upper()}"] = "y" if name == optimizer else "n"
    # The int8 backward path: compiled in when the plan asks for it, else left out.
    int8 = bool(summary.get("method", {}).get("int8_backward", False))
    options[plan.INT8_BACKWARD_KCONFIG] = "y" if int8 else "n"
    return options, comments


def conf_text(board: Board, options: dict[str, str], comments: list[str]) -> str:
    """A Kconfig fragment (-DEXTRA_CONF_FILE=...)."""
    lines = [
        f"# Configuration of samples/peft_mobilenet for these images, made by "
        f"`micropeft pack --board {board.name}`.",
        f"# Build with -DEXTRA_CONF_FILE=<this file> (next to -DDTC_OVERLAY_FILE={board.name}"
        ".overlay).",
        *(f"# {c}" for c in comments),
    ]
    lines += [f"{name}={value}" for name, value in options.items()]
    return "\n".join(lines) + "\n"
