"""Partition packing: the model container, the layout, the HEX and the overlay.

The HEX is read back with intelhex, the overlay's `reg = <addr size>` with a
regular expression, the container with a parser written from docs/formats.md."""

from __future__ import annotations

import io
import re
import struct
import zlib

import pytest
from intelhex import IntelHex

from micropeft.deploy import boards, pack
from micropeft.errors import UserError
from micropeft.files import write_atomic

REG = re.compile(
    r"(\w+): partition@([0-9a-f]+) \{\s*label = \"(\w+)\";\s*reg = <(0x[0-9a-f]+) (0x[0-9a-f]+)>;"
)


def overlay_partitions(text: str) -> dict[str, tuple[int, int]]:
    found = {}
    for label, at, _name, addr, size in REG.findall(text):
        assert int(at, 16) == int(addr, 16)
        found[label] = (int(addr, 16), int(size, 16))
    return found


def _images(model_len=5000, plan_len=700, dataset_len=70_001):
    model = bytes((i * 7) & 0xFF for i in range(model_len))
    plan = bytes((i * 13 + 1) & 0xFF for i in range(plan_len))
    return model, plan, bytes((i * 3) & 0xFF for i in range(dataset_len))


def test_model_container_layout_and_crc():
    model, plan, _ = _images()
    blob = pack.model_container(model, plan)
    magic, version, header, total, crc = struct.unpack_from("<4sHHII", blob, 0)
    m_off, m_len, p_off, p_len, m_crc = struct.unpack_from("<IIIII", blob, 16)
    assert magic == b"PEFM" and version == 1 and header == 64 and total == len(blob)
    assert zlib.crc32(blob[16:total]) == crc and zlib.crc32(model) == m_crc
    assert m_off % 16 == 0 and p_off % 16 == 0 and p_off >= m_off + m_len
    assert blob[m_off : m_off + m_len] == model and blob[p_off : p_off + p_len] == plan
    assert pack.parse_model_container(blob) == (model, plan)
    broken = bytearray(blob)
    broken[m_off + 10] ^= 0xFF
    with pytest.raises(UserError, match="CRC"):
        pack.parse_model_container(bytes(broken))


@pytest.mark.parametrize("board_name", ["nrf52840dk", "native_sim"])
def test_hex_at_overlay_addresses_equals_the_images(board_name):
    board = boards.get_board(board_name)
    model, plan, dataset = _images()
    images = {"peft_model": pack.model_container(model, plan), "peft_dataset": dataset}
    parts = pack.layout(board, images, 1648, board.firmware_size)
    text = pack.overlay(board, parts, board.firmware_size)
    regs = overlay_partitions(text)
    assert set(regs) >= set(pack.PARTITION_NAMES)
    ih = IntelHex()
    ih.loadhex(io.StringIO(pack.intel_hex(board, parts)))
    flash = pack.flash_image(board, parts)
    assert len(flash) == board.flash_size
    expected = {
        "peft_model": images["peft_model"],
        "peft_dataset": dataset,
        "peft_state0": b"\xff" * 4096,
        "peft_state1": b"\xff" * 4096,
    }
    previous_end = board.firmware_size
    for label, data in expected.items():
        addr, size = regs[label]
        assert addr % board.page_size == 0 and size % board.page_size == 0
        assert addr >= previous_end and size >= len(data)
        previous_end = addr + size
        assert ih.tobinstr(start=addr, size=len(data)) == data
        assert flash[addr : addr + len(data)] == data
        assert flash[addr + len(data) : addr + size] == b"\xff" * (size - len(data))
    assert previous_end <= board.flash_size
    if board.code_partition:
        assert regs["peft_code"] == (0, board.firmware_size)
        assert "zephyr,code-partition = &peft_code;" in text
    assert f"&{board.flash_node} {{" in text and '"fixed-partitions"' in text


def test_refuses_with_numbers_when_partitions_do_not_fit():
    board = boards.get_board("nrf52840dk")
    model, plan, _ = _images()
    images = {"peft_model": pack.model_container(model, plan), "peft_dataset": bytes(600_000)}
    with pytest.raises(UserError, match=r"do not fit on nrf52840dk: firmware 512 KiB .* > flash"):
        pack.layout(board, images, 1648, 512 * 1024)
    # The same images fit next to the default firmware size.
    parts = pack.layout(board, images, 1648, board.firmware_size)
    assert parts[-1].offset + parts[-1].size <= board.flash_size
    with pytest.raises(UserError, match="multiple of"):
        pack.layout(board, images, 1648, 1000)
    with pytest.raises(UserError, match="unknown board"):
        boards.get_board("esp32")


def test_state_size_mirrors_the_runtime_formula():
    # PEFT_STATE_HEADER_SIZE + 4 bytes per parameter and per optimizer state.
    assert pack.state_size(200, 1) == 48 + 200 * 4 * 2
    assert pack.state_size(10, 2) == 48 + 10 * 4 * 3


def test_write_atomic_leaves_no_partial_file(tmp_path):
    target = tmp_path / "sub" / "f.bin"
    write_atomic(target, b"abc")
    assert target.read_bytes() == b"abc"

    with pytest.raises(TypeError):
        write_atomic(tmp_path / "g.bin", 12345)  # type: ignore[arg-type]
    assert not (tmp_path / "g.bin").exists()
    assert [p.name for p in (tmp_path).iterdir()] == ["sub"]


@pytest.mark.parametrize("int8_backward", [False, True])
def test_board_config_compiles_in_the_int8_path_only_for_a_plan_that_uses_it(int8_backward):
    # summary.json as prepare-model writes it, reduced to what board_config reads
    summary = {
        "ram": {"tflm_arena_prefix": 10_000, "train_arena": 20_000},
        "flash": {"state_slot": 1_000},
        "method": {"optimizer": "sgd", "int8_backward": int8_backward},
        "trainable_layers": [{"index": 3, "name": "pw", "methods": "bitfit"}],
    }
    options, _ = pack.board_config(boards.get_board("native_sim"), summary, 1024, 10)
    assert options["CONFIG_PEFT_INT8_BACKWARD"] == ("y" if int8_backward else "n")
    assert options["CONFIG_PEFT_METHOD_BITFIT"] == "y"
