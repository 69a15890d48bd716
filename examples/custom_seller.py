"""A custom seller role in a few lines: sells a toy 'reverse' model per input row, with a price floor.

Run it: `.venv/bin/python examples/custom_seller.py` (a buyer negotiates, then buys one inference).
"""

import asyncio

import agents
from protocols.jobs import InferenceRequest, InferenceResult
from protocols.negotiation import JobSpec

PRICING = agents.UnitPricing(unit_price=12, floor_unit_price=8, models=frozenset({"reverse-v1"}))


class ReverseSeller(agents.SellerAgent):
    """Sells `reverse-v1`: each output row is its input row reversed."""

    def __init__(self, settings: agents.AgentSettings, deps: agents.AgentDeps | None = None) -> None:
        super().__init__(settings, deps, pricing=PRICING)
        self.use(count_messages)

    async def infer(self, request: InferenceRequest) -> list[list[float]]:
        """The model: reverse every row."""
        return [row[::-1] for row in request.inputs]


async def count_messages(msg: agents.Inbound, ctx: agents.ModContext, nxt: agents.Next) -> None:
    """A user mod: count the typed messages this seller handles, per type, in its durable store."""
    key = f"count:{type(msg.message).__name__}"
    ctx.store.put(key, ctx.store.get(key, 0) + 1)
    await nxt(msg, ctx)


async def main() -> None:
    """Start the seller and a buyer in this process, negotiate a price, then buy one inference."""
    seller = ReverseSeller(agents.AgentSettings(name="reverse-seller", seed="example reverse seller"))
    buyer = agents.BuyerAgent(agents.AgentSettings(name="example-buyer", seed="example buyer"))
    async with agents.running(seller, buyer):
        job = JobSpec(kind="inference", model_id="reverse-v1", units=2)
        deal = await buyer.negotiate([seller.address], job, agents.BuyerLimits(opening=10, budget=30))
        assert deal is not None, "no deal"
        inputs = [[1.0, 2.0], [3.0, 4.0]]
        request = InferenceRequest(job_id=deal.negotiation_id, model_id="reverse-v1", inputs=inputs, price=deal.price)
        result = await buyer.request(seller.address, request, InferenceResult)
        print(f"deal at {deal.price} after {deal.rounds} rounds; outputs {result.outputs}")


if __name__ == "__main__":
    asyncio.run(main())
