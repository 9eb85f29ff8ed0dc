"""Pure DHCPv4 codec declared with construct: bytes <-> typed messages, no I/O."""
