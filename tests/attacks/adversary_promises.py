"""What docs/security.md promises the honest parties, checked after every step and at the end of each example."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from hypothesis.stateful import invariant

from agents.capabilities.inference import ServedCall
from agents.capabilities.payment import PayeeChannel, PayerChannel
from agents.state import Repository
from marketplace.chain import SignedVoucher, verify_voucher
from marketplace.chain import Voucher as SignedAmount
from marketplace.chain.node import rpc_call
from marketplace.chain.staking import Ballot
from tests.attacks.adversary_honest import HonestParties
from tests.attacks.adversary_world import ADVERSARY, BUYER, KEEP


class Promises(HonestParties):
    """The honest parties' promises as invariants; every adversary machine derives from this."""

    def _claimable(self, channel_id: int, onchain: tuple[Any, ...], book: dict[str, PayeeChannel]) -> int:
        """What the seller gets from a channel: its best voucher (if validly signed and the channel still
        open), else what it already claimed."""
        sender, _, _, _, claimed, _, nonce, closed = onchain
        record = book.get(str(channel_id))
        if closed or record is None or record.signature is None:
            return int(claimed)
        signed = SignedVoucher(
            SignedAmount(channel_id, nonce, record.cumulative), bytes.fromhex(record.signature.removeprefix("0x"))
        )
        valid = verify_voucher(signed, sender, self.env.adversary.settlement.channels.domain)
        return max(int(claimed), record.cumulative if valid else 0)

    @invariant()
    def promises_hold(self) -> None:
        """The seller's expiry check first claims what is about to expire (between steps); then every promise."""
        self._seller_checks_expiries()
        env = self.env
        view = self._view()
        balances, stakes, onchain = view["balances"], view["stakes"], view["channels"]
        prices = env.prices

        # Tokens: conserved, and each contract holds exactly what it owes.
        assert sum(balances.values()) == self.total, "tokens were minted or burnt"
        owed = sum(ch[1] - ch[4] for ch in onchain.values() if not ch[7])
        assert balances[env.chain.deployment.address("PaymentChannels")] == owed, "channels hold other than owed"
        assert balances[env.chain.deployment.address("ValidatorStaking")] == sum(stakes.values())

        # The seller: never slashed, stake never below its start.
        assert stakes[env.seller_account] >= self.stakes0[env.seller_account], "the honest seller lost stake"
        assert not any(view["seller_slashed"].values()), "an attestation of the honest seller was slashed"

        # The validator: stake never below its start; gas only for what it must do.
        assert stakes[env.validator_account] >= self.stakes0[env.validator_account], "the honest validator lost stake"
        self._validator_attested_only_due()
        attested = self._validator_attested()
        voted = set()
        for dispute_id, (members, _, ballots) in view["committees"].items():
            seats = dict(zip((m.lower() for m in members), ballots, strict=True))
            if seats.get(env.validator_account.lower(), Ballot.ABSENT) != Ballot.ABSENT:
                voted.add(dispute_id)
        assert voted <= self.vote_asked, "the validator voted in a dispute it was not asked about properly"
        transactions = view["validator_nonce"] - self.validator_nonce0
        assert transactions == len(attested) + len(voted), (
            f"the validator sent {transactions} transactions for {len(attested)} attestations and {len(voted)} votes"
        )

        # The seller is paid for every call it served.
        book = dict(Repository(env.seller.store, "payee.channel", PayeeChannel).items())
        payer_book = dict(Repository(env.buyer.probe.store, "payer.channel", PayerChannel).items())
        served = Repository(env.seller.store, "inference.served", ServedCall).values()
        agents = {env.buyer.address: BUYER, env.adversary.address: ADVERSARY}
        assert Counter(agents.get(s.buyer, s.buyer) for s in served) == Counter(c.payer for c in self.calls), (
            "the seller's served calls are not the calls answered"
        )
        by_channel: dict[int, list[int]] = {}
        for call in served:
            ch = self.channels.get(call.channel_id)
            assert ch is not None, f"a call was credited to channel {call.channel_id}, which does not pay the seller"
            assert agents.get(call.buyer) == ch.owner, (
                f"a call to {agents.get(call.buyer, call.buyer)} was credited to {ch.owner}'s channel {call.channel_id}"
            )
            by_channel.setdefault(call.channel_id, []).append(call.cumulative)
        for channel_id, cumulatives in by_channel.items():
            ch = self.channels[channel_id]
            signed = payer_book[str(channel_id)].cumulative if ch.owner == BUYER else ch.signed
            steps = sorted(cumulatives)
            gaps = [b - a for a, b in zip([0, *steps], steps, strict=False)]
            assert min(gaps) >= prices[ch.owner], f"calls on channel {channel_id} share vouchers: {steps}"
            assert steps[-1] <= signed, f"a call on channel {channel_id} is credited beyond what its sender signed"
        claimable = {c: self._claimable(c, onchain[c], book) for c in self.channels}
        served_value = sum(prices[agents[s.buyer]] for s in served)
        assert sum(claimable.values()) >= served_value, "the seller cannot claim what its served calls cost"

        # The honest buyer: charged only for calls answered (or paid and about to be made), refunds the rest.
        for channel_id, ch in self.channels.items():
            if ch.owner != BUYER:
                continue
            expected = ch.paid_calls * prices[BUYER]
            assert payer_book[str(channel_id)].cumulative == expected, "the buyer's vouchers are not its paid calls"
            assert claimable[channel_id] == expected, (
                f"the seller can claim {claimable[channel_id]} of the {expected} the buyer paid on channel {channel_id}"
            )
            assert onchain[channel_id][4] <= expected, "more was claimed from the buyer than it signed"
        held = sum(ch[4] if ch[7] else ch[1] for c, ch in onchain.items() if self.channels[c].owner == BUYER)
        assert balances[env.buyer.account] == self.buyer_tokens0 - held, "the buyer's funds are not deposit or refund"

    # --- end of an example ---------------------------------------------------------------------------------

    def teardown(self) -> None:
        try:
            if sys.exc_info()[0] is None:
                self._settle_and_check()
        finally:
            self._reset()

    def _settle_and_check(self) -> None:
        """Every pending call made, everything claimed, every deadline passed, everything refunded: the buyer
        holds its funds minus exactly its answered calls, the seller got at least what it served."""
        while self.pending:
            self.buyer_calls(0, 0)
        self._seller_claims()
        last = max([ch.expiry for ch in self.channels.values()] + [d.deadline for d in self.disputes.values()])
        self.jump(max(last - self.now(), 0) + 1)
        self.disputes_resolve()
        for channel_id in sorted(self.channels):  # the adversary refunds its channels, and the buyer's, expired now
            if not self.run(self.env.adversary.settlement.channels.get_channel(channel_id)).closed:
                self._refund(channel_id)
        self.buyer_refunds_expired()
        self.promises_hold()
        view = self._view()
        env = self.env
        answered = sum(1 for c in self.calls if c.payer == BUYER)
        spent = self.buyer_tokens0 - view["balances"][env.buyer.account]
        assert spent == answered * env.prices[BUYER], f"the buyer spent {spent} for {answered} answered calls"
        served = Repository(env.seller.store, "inference.served", ServedCall).values()
        agents = {env.buyer.address: BUYER, env.adversary.address: ADVERSARY}
        earned = view["balances"][env.seller_account] - self.seller_tokens0
        assert earned >= sum(env.prices[agents[s.buyer]] for s in served), "the seller was not paid what it served"

    def _reset(self) -> None:
        """Revert the chain; keep each account's nonce (the agents' connections track it); clear chain-bound records."""
        env = self.env
        accounts = [env.seller_account, env.validator_account, env.buyer.account, env.adversary.account]
        accounts += [env.sybil.account, env.chain.treasury.address]
        nonces = [rpc_call(env.chain.rpc_url, "eth_getTransactionCount", [a, "latest"]) for a in accounts]
        env.chain.revert(self.snapshot)
        for account, nonce in zip(accounts, nonces, strict=True):
            rpc_call(env.chain.rpc_url, "anvil_setNonce", [account, nonce])
        for agent in env.agents():
            for key, _ in agent.store.scan(""):
                if not key.startswith(KEEP):
                    agent.store.delete(key)
        env.sent.clear()
