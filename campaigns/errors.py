"""Typed errors of the campaigns core; each carries the offending input so an API can say what to fix."""

from __future__ import annotations

from typing import Any

__all__ = [
    "CampaignError",
    "RedemptionError",
    "CodeNotFound",
    "CodeAlreadyUsed",
    "CodeExpired",
    "WrongStore",
    "CampaignNotRedeemable",
    "RedemptionBudgetSpent",
    "CodesExhausted",
    "FraudConfigError",
]


class CampaignError(ValueError):
    """A campaign document is invalid (maps to HTTP 422).

    ``field`` is the dotted path of the offending value (``triggers[1].event``), ``reason`` a
    human sentence, ``campaign_id`` the document's id when it had one, ``value`` the bad input.
    """

    def __init__(self, field: str, reason: str, campaign_id: str | None = None, value: Any = None):
        self.field, self.reason, self.campaign_id, self.value = field, reason, campaign_id, value
        where = f"campaign {campaign_id!r}: " if campaign_id else ""
        super().__init__(f"{where}{field}: {reason}")

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "reason": self.reason, "campaign_id": self.campaign_id}


class FraudConfigError(ValueError):
    """A fraud-gate threshold is invalid: ``field`` names it, ``value`` is the bad input."""

    def __init__(self, field: str, value: Any, expected: str):
        self.field, self.value, self.expected = field, value, expected
        super().__init__(f"{field}: {value!r} is invalid; expected {expected}")


class CodesExhausted(RuntimeError):
    """A campaign's uploaded pool of single-use codes is empty."""

    def __init__(self, campaign_id: str):
        self.campaign_id = campaign_id
        super().__init__(f"campaign {campaign_id!r}: the pool of coupon codes is empty")


class RedemptionError(ValueError):
    """A coupon code cannot be redeemed; ``status`` is the HTTP status an API should answer."""

    status = 422

    def __init__(self, code: str, reason: str, **details: Any):
        self.code, self.reason, self.details = code, reason, details
        super().__init__(f"code {code!r}: {reason}")

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "reason": self.reason, **self.details}


class CodeNotFound(RedemptionError):
    status = 404


class CodeAlreadyUsed(RedemptionError):
    """A single-use code was redeemed by another transaction: ``first_tx_id`` names it (HTTP 409)."""

    status = 409

    def __init__(self, code: str, first_tx_id: str):
        self.first_tx_id = first_tx_id
        super().__init__(code, f"already redeemed in transaction {first_tx_id!r}", first_tx_id=first_tx_id)


class CodeExpired(RedemptionError):
    status = 410


class WrongStore(RedemptionError):
    status = 422


class CampaignNotRedeemable(RedemptionError):
    status = 409


class RedemptionBudgetSpent(RedemptionError):
    status = 409
