"""agora wire protocols: typed uAgents messages and protocol specs only (no I/O, no chain, no torch)."""
