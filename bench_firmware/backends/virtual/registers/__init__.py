"""Register models of the peripherals the bench firmware touches, one block per class:
:mod:`.base` (the register block, clock gates, the interfaces to the machine), :mod:`.clocks`
(RCC, PWR, FLASH_ACR), :mod:`.gpio`, :mod:`.uart`, :mod:`.system` (SCS and DWT).
:mod:`bench_firmware.backends.virtual.peripherals` wires them into a board.
"""
