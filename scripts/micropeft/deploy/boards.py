"""Flash geometry of the boards micropeft packs images for.

`firmware_size` is the flash reserved at the start for the application
(Zephyr + TFLM + the runtime); our partitions follow it. 256 KiB on the
nRF52840: the sample links to about 170 KB, and the default MobileNet
(about 310 KiB with its plan), a dataset and two state slots need the rest.
native_sim runs the firmware natively, so its simulated flash (Zephyr's flash
simulator, flash0) holds only our partitions. Override with `micropeft pack --firmware-size`.
"""

from __future__ import annotations

from dataclasses import dataclass

from micropeft.errors import UserError


@dataclass(frozen=True)
class Board:
    name: str
    flash_base: int  # address of flash offset 0 (Intel HEX addresses)
    flash_size: int
    page_size: int  # erase block: partitions start and end on these
    firmware_size: int  # default flash kept for the firmware at offset 0
    flash_node: str  # devicetree label of the flash the partitions live in
    code_partition: bool  # whether the firmware itself runs from flash0
    # Zephyr 3.x board name, which names the sample's boards/<name>.conf and .overlay
    # (4.x turns nrf52840dk/nrf52840 into the same file name).
    zephyr_board: str
    # "cortex-m4f": built with lib/peft/cortex_m4f.flags (FPU on, its -O2); "host": native_sim.
    core: str
    # RAM of the SoC, and what peft_mobilenet takes of it besides the buffers that pack
    # sizes (Zephyr, stacks, TFLM's and the runtime's statics): the linker's RAM figure of
    # the sample minus those buffers. None: not limited (native_sim runs on the host).
    ram_size: int | None = None
    sample_ram_baseline: int | None = None
    erased: int = 0xFF


BOARDS = {
    "nrf52840dk": Board(
        name="nrf52840dk",
        flash_base=0x0,
        flash_size=1024 * 1024,
        page_size=4096,
        firmware_size=256 * 1024,
        flash_node="flash0",
        code_partition=True,
        zephyr_board="nrf52840dk_nrf52840",
        core="cortex-m4f",
        ram_size=256 * 1024,
        # Measured: the linker's RAM line of the default build (Zephyr 3.4.99), 160,320 B,
        # minus its 143,616 B of buffers = 16,704 B; with a margin for other Kconfig.
        sample_ram_baseline=20 * 1024,
    ),
    "native_sim": Board(
        name="native_sim",
        flash_base=0x0,
        flash_size=2048 * 1024,  # the flash simulator's default flash0 (DT_SIZE_K(2048))
        page_size=4096,
        firmware_size=0,
        flash_node="flash0",
        code_partition=False,
        zephyr_board="native_sim",
        core="host",
    ),
}

# Accept Zephyr's qualified names too.
ALIASES = {"nrf52840dk/nrf52840": "nrf52840dk", "nrf52840dk_nrf52840": "nrf52840dk"}


def get_board(name: str) -> Board:
    key = ALIASES.get(name, name)
    if key not in BOARDS:
        raise UserError(f"unknown board {name!r} (supported: {', '.join(BOARDS)})")
    return BOARDS[key]
