"""LangChain tools over agora capabilities, behind the user's mandate, and a minimal tool-calling driver."""
