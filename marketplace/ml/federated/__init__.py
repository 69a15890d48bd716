"""Federated learning on users' own devices: synthetic shopping histories, local DP-SGD, a privacy-budget
ledger and secure aggregation. Pure computation; the agents that run it live in `agents/`."""
