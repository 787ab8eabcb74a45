"""The bench firmware and its host side: plan compiler, memory planner, build driver,
serial-protocol client and the board catalogue."""
