"""agora agents: the offline-safe uAgents runtime, capabilities, and roles composed from them.

The public API for writing agents is re-exported here; see README "Write your own agent".
"""

from agents.base import AgentDeps, AgoraAgent, RemoteError, peer_directory, running
from agents.capabilities.negotiation import BuyerLimits, Deal
from agents.clock import Clock, SimulatedClock, SystemClock
from agents.mods import Inbound, Limits, ModContext, Next, Rejected
from agents.policies import NegotiationPolicy, TimeDependentConcession, UnitPricing
from agents.resolver import StaticResolver
from agents.roles.sdk import BuyerAgent, SellerAgent
from agents.settings import AgentSettings
from agents.store import AgentStore
from agents.transport import DeliveryError
from agents.wallet import Wallet
from protocols.commitment import output_commitment

__all__ = [
    "AgentDeps",
    "AgentSettings",
    "AgentStore",
    "AgoraAgent",
    "BuyerAgent",
    "BuyerLimits",
    "Clock",
    "Deal",
    "DeliveryError",
    "Inbound",
    "Limits",
    "ModContext",
    "NegotiationPolicy",
    "Next",
    "Rejected",
    "RemoteError",
    "SellerAgent",
    "SimulatedClock",
    "StaticResolver",
    "SystemClock",
    "TimeDependentConcession",
    "UnitPricing",
    "Wallet",
    "output_commitment",
    "peer_directory",
    "running",
]
