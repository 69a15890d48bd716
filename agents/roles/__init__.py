"""Roles: thin compositions of capabilities. Economy roles (user, seller, validator, advertiser) are factories
`build(settings, deps, options)`; `sdk` holds the building blocks for custom agents (SellerAgent, BuyerAgent)."""
