"""`python -m service.boards.virtual --board nucleo-f446re [--socket]`: boot a virtual board
and print the serial port to talk to."""

from service.boards.virtual.backend import main

raise SystemExit(main())
