"""Hypothesis: an adversary takes arbitrary protocol actions against an honest buyer, seller and validator.

Everyone is a real agent on the real contracts (anvil): the seller and the validator are the roles
(`agents.roles.seller.build`, `agents.roles.validator.build`); the honest buyer is a probe with
NegotiationBuyer + ChannelPayer, as tests/roles/world.py builds buyers; the adversary is such a probe too,
with its own wallet, funds, channels to the seller, stake, and a second staked key (its sybil). Hypothesis
interleaves the adversary's moves (re-sent channel notices, replayed and forged vouchers, another payer's
job ids, unpaid calls, altered or unsigned audits, sham disputes, votes and vote requests, early refunds,
floods, time jumps) with the honest parties' (pay, call, audit, claim, resolve, refund) and checks after
every step what docs/security.md promises:

- the seller is never slashed and its stake never falls (it never attests a wrong result);
- the validator's stake never falls, and every transaction it sends is an attestation of a paid call that
  its payer signed and the seller attested (once per task), or a vote in a committee it was drawn to;
- the seller is paid for every call it served: each served call is backed by its own voucher increment of
  at least the price, signed by the sender of a channel paying the seller, and what it can claim covers
  them all (exactly the honest buyer's calls on the honest buyer's channels);
- the buyer is charged only for calls it got answers to (its vouchers total answered calls x price, plus
  calls paid and about to be made), and after expiry it holds its funds minus exactly that;
- tokens are conserved, and the channel and staking contracts hold exactly what they owe.

Agents are built once per test; each example starts from one chain snapshot, reverted at its end, after
which the agents' chain-bound records are cleared and the accounts' nonces restored (so the nonces the
agents' connections track stay valid): every example starts from the same state. Kept across examples:
the negotiated prices and the seller's catalogue (off chain, or registered before the snapshot).

The seller claims before expiry by itself: its expiry check (what its watch runs, here called at every
claim point chain time passes) claims each channel CLAIM_MARGIN before it expires and takes no voucher on it
after. What the honest side is assumed to do: no adversary key holds more stake than the honest members of a
committee (the documented limit: a majority of the drawn stake decides).

The machines are built from modules (adversary_world.py: the world and runner; adversary_honest.py and
adversary_promises.py: the honest parties and the promises; adversary_payments.py, adversary_audits.py,
adversary_disputes.py: one kind of attack each). The first test lets every kind of attack interleave; the
others let one kind at a time dig deeper.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from marketplace.chain import LocalChain
from tests.attacks.adversary_audits import AuditAdversary
from tests.attacks.adversary_disputes import DisputeAdversary
from tests.attacks.adversary_payments import PaymentAdversary
from tests.attacks.adversary_promises import Promises
from tests.attacks.adversary_world import run_machine

pytestmark = [pytest.mark.chain, pytest.mark.slow]


class Adversarial(PaymentAdversary, AuditAdversary, DisputeAdversary):
    """Every kind of attack, interleaved, against the honest buyer, seller and validator."""


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        stateful_step_count=24,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )


def test_adversary_cannotTakeFromHonestBuyerSellerOrValidator(session_chain: LocalChain, tmp_path: Path) -> None:
    counters = run_machine(session_chain, tmp_path, Adversarial, _settings(70))
    assert counters.steps >= 1_000, counters
    happened = counters.outcomes
    for outcome in (
        "adversary call (unpaid) refused",
        "adversary vote (drawn) counted",
        "audit request (replay, due) Attestation",
        "audit request (unsigned, undue) ErrorReply",
        "adversary voucher (forged on buyer's channel) refused",
        "dispute upheld",
        "refund (early) refused",
        "refund (expired) done",
        "replayed voucher refused",
        "vote request to validator (none) Attestation",
    ):
        assert happened[outcome] > 0, f"no example reached: {outcome}"


@pytest.mark.parametrize(
    ("machine", "reached"),
    [
        (
            PaymentAdversary,
            ("replayed voucher refused", "adversary voucher (stale-nonce) refused", "refund (early) refused"),
        ),
        (AuditAdversary, ("audit request (inputs, undue) ErrorReply", "audit request (replay, due) Attestation")),
        (DisputeAdversary, ("adversary vote (not drawn) refused", "vote request to seller (outputs) ErrorReply")),
    ],
    ids=["payments", "audits", "disputes"],
)
def test_oneKindOfAttack_cannotTakeFromHonestParties(
    session_chain: LocalChain, tmp_path: Path, machine: type[Promises], reached: tuple[str, ...]
) -> None:
    counters = run_machine(session_chain, tmp_path, machine, _settings(20))
    assert counters.steps >= 400, counters
    for outcome in reached:
        assert counters.outcomes[outcome] > 0, f"no example reached: {outcome}"
