"""A toy translation market for agora, packaged as a third-party plugin (entry point `agora.markets: translation`).

`protocol` holds its wire messages, `roles` its two roles (translator, client), `market` the plugin itself.
"""
