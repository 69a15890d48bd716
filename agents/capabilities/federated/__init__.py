"""The federated-learning market's capabilities: a sponsor's job, the users who train on their own data, and the
aggregator (a staked validator) that runs secure-aggregation rounds and posts rewards (protocols/federated.py)."""
