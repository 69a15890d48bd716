"""Negotiation strategies beyond the rule-based defaults in agents/policies.py (e.g. a LangChain LLM negotiator)."""
