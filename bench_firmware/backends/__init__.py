"""Board backends: one ``BoardBackend`` protocol, implemented for the host build, the virtual
boards (the firmware on an emulator with a cycle model), Renode, and physical boards (pyOCD)."""
