"""Capabilities: one uAgents protocol per economic behaviour, each with its typed state; roles compose them."""
