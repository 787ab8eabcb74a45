"""`python -m bench_firmware.backends.virtual --board nucleo-f446re [--socket]`: boot a virtual
board and print the serial port to talk to."""

from bench_firmware.backends.virtual.backend import main

raise SystemExit(main())
