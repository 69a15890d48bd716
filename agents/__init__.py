"""agora agents: the offline-safe uAgents runtime and the economy roles (user, advertiser, seller, validator)."""
