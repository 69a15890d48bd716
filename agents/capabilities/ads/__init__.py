"""The ad market's capabilities: advertiser campaigns, the merchant's commitment book, the user's private viewer, the
claim relay."""
