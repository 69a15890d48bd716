"""The registry's OpenAPI 3.1 document: paths written here, schemas generated from the pydantic models."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from marketplace.registry.models import (
    MAX_LIMIT,
    MAX_OFFSET,
    AgentEntry,
    ErrorBody,
    EventList,
    Health,
    Resolution,
    SearchPage,
    WriteAccepted,
)
from protocols.cards import AGENT_ADDRESS_PATTERN, MAX_UINT256, ROLE_PATTERN, SLUG_PATTERN, AgentCard, SignedWrite

REF = "#/components/schemas/{model}"


def _json(schema_name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": REF.format(model=schema_name)}}}


def _ok(description: str, schema_name: str) -> dict[str, Any]:
    return {"description": description, "content": _json(schema_name)}


def _errors(*statuses: int) -> dict[str, Any]:
    reasons = {
        400: "Malformed request (bad JSON, unknown query parameter, path/body mismatch).",
        401: "Unsigned, wrongly signed or stale write.",
        403: "Replayed nonce, a write for another agent than its signer, or one signed for another registry.",
        404: "No live entry for that address.",
        409: "Already registered.",
        413: "Body larger than the limit.",
        422: "Body or parameters do not match the schema (unknown fields included).",
        503: "Too many live event streams; retry after `Retry-After` seconds.",
    }
    return {str(s): {"description": reasons[s], "content": _json("ErrorBody")} for s in statuses}


ADDRESS_PARAM = {
    "name": "address",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": AGENT_ADDRESS_PATTERN},
    "description": "The agent's uAgents address.",
}


def _write_body(action: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": _json(f"{action.capitalize()}Write"),
        "description": f"A `{action}` SignedWrite for this registry (`registry` = `registry_id` of /v1/health), "
        "signed by the agent's identity key (protocols.cards.sign_write).",
    }


def _write_variants(signed_write: dict[str, Any]) -> dict[str, Any]:
    """Per-action shapes of SignedWrite: register/update carry a card, heartbeat/deregister do not."""
    variants: dict[str, Any] = {}
    base = {k: v for k, v in signed_write["properties"].items() if k not in ("action", "card")}
    for action in ("register", "update", "heartbeat", "deregister"):
        properties: dict[str, Any] = {"action": {"type": "string", "const": action}, **base}
        required = ["action", "address", "nonce", "timestamp", "registry", "signature"]
        if action in ("register", "update"):
            properties["card"] = {"$ref": REF.format(model="AgentCard")}
            required.append("card")
        variants[f"{action.capitalize()}Write"] = {
            "type": "object",
            "title": f"{action.capitalize()}Write",
            "description": f"SignedWrite with action `{action}`; `card.address` must equal `address`.",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        }
    return variants


WRITE_ERRORS = (400, 401, 403, 404, 413, 422)


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


SEARCH_PARAMS = [
    _query("role", {"type": "string", "pattern": ROLE_PATTERN}, "Only agents with this role."),
    _query("job_kind", {"type": "string", "pattern": SLUG_PATTERN}, "Only agents offering this job kind."),
    _query("model_id", {"type": "string", "pattern": SLUG_PATTERN}, "Only agents offering this model."),
    _query("max_price", {"type": "integer", "minimum": 0, "maximum": MAX_UINT256}, "Highest price per unit."),
    _query("min_reputation", {"type": "integer", "minimum": 0, "maximum": 2**62}, "Lowest reputation score."),
    _query("seen_within", {"type": "integer", "minimum": 1, "maximum": 10**9}, "Heartbeat within N seconds."),
    _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 20}, "Page size."),
    _query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}, "Results to skip."),
]

RANKING = (
    "Results are live entries (not expired) ranked by, in order: (1) price — the lowest `price_per_unit` among "
    "the agent's offerings that match the filters, cheapest first, agents without a matching price last; "
    "(2) receipt-backed reputation score from AgentRegistry, highest first; (3) recency of the last heartbeat, "
    "newest first; (4) address, for a stable order across pages."
)


def openapi_document(server_url: str | None = None) -> dict[str, Any]:
    """The full OpenAPI document describing every registry endpoint."""
    _, defs = models_json_schema(
        [
            (m, "validation" if m in (SignedWrite,) else "serialization")
            for m in (SignedWrite, AgentCard, AgentEntry, SearchPage, Resolution, WriteAccepted, ErrorBody, Health)
        ]
        + [(EventList, "serialization")],
        ref_template=REF,
    )
    schemas = defs.get("$defs", {})
    schemas.update(_write_variants(schemas["SignedWrite"]))
    paths: dict[str, Any] = {
        "/v1/agents": {
            "post": {
                "operationId": "register",
                "summary": "Register an agent card (action `register`).",
                "requestBody": _write_body("register"),
                "responses": {"201": _ok("Registered.", "AgentEntry"), **_errors(400, 401, 403, 409, 413, 422)},
            }
        },
        "/v1/agents/{address}": {
            "parameters": [ADDRESS_PARAM],
            "get": {
                "operationId": "getAgent",
                "summary": "The live entry of one agent.",
                "responses": {"200": _ok("The entry.", "AgentEntry"), **_errors(404)},
            },
            "put": {
                "operationId": "update",
                "summary": "Replace an agent's card (action `update`); also counts as a heartbeat.",
                "requestBody": _write_body("update"),
                "responses": {"200": _ok("Updated.", "AgentEntry"), **_errors(*WRITE_ERRORS)},
            },
        },
        "/v1/agents/{address}/heartbeat": {
            "parameters": [ADDRESS_PARAM],
            "post": {
                "operationId": "heartbeat",
                "summary": "Extend an entry's lifetime (action `heartbeat`).",
                "requestBody": _write_body("heartbeat"),
                "responses": {"200": _ok("Extended.", "WriteAccepted"), **_errors(*WRITE_ERRORS)},
            },
        },
        "/v1/agents/{address}/deregister": {
            "parameters": [ADDRESS_PARAM],
            "post": {
                "operationId": "deregister",
                "summary": "Remove an entry (action `deregister`).",
                "requestBody": _write_body("deregister"),
                "responses": {"200": _ok("Removed.", "WriteAccepted"), **_errors(*WRITE_ERRORS)},
            },
        },
        "/v1/search": {
            "get": {
                "operationId": "search",
                "summary": "Find live agents by role, job kind, model, price, reputation and liveness.",
                "description": RANKING,
                "parameters": SEARCH_PARAMS,
                "responses": {"200": _ok("A page of entries, best first.", "SearchPage"), **_errors(400, 422)},
            }
        },
        "/v1/resolve/{address}": {
            "parameters": [ADDRESS_PARAM],
            "get": {
                "operationId": "resolve",
                "summary": "Endpoints of a live agent (what the registry-backed uAgents resolver asks).",
                "responses": {"200": _ok("Where to reach it.", "Resolution"), **_errors(404)},
            },
        },
        "/v1/events": {
            "get": {
                "operationId": "recentEvents",
                "summary": "The most recent economy events read from the chain.",
                "parameters": [
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}, "How many.")
                ],
                "responses": {"200": _ok("Events, oldest first.", "EventList"), **_errors(400, 422)},
            }
        },
        "/v1/events/stream": {
            "get": {
                "operationId": "eventStream",
                "summary": "Server-sent events: `chain` (an EconomyEvent) and `agents` (the registry changed).",
                "responses": {
                    "200": {"description": "An endless text/event-stream.", "content": {"text/event-stream": {}}},
                    **_errors(503),
                },
            }
        },
        "/v1/economy": {
            "get": {
                "operationId": "economy",
                "summary": "Read-only economy view: balances by role per block, channels, escrow jobs, disputes, "
                "lineage, and the figures an in-process `agora demo --serve` run published.",
                "responses": {
                    "200": {
                        "description": "The view.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **_errors(422),
                },
            }
        },
        "/v1/health": {
            "get": {
                "operationId": "health",
                "summary": "Registry liveness, and the registry id signed writes must name.",
                "responses": {"200": _ok("Up.", "Health")},
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
            }
        },
        "/": {
            "get": {
                "operationId": "dashboard",
                "summary": "The dashboard page (HTML).",
                "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
            }
        },
    }
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "agora marketplace registry",
            "version": "1",
            "description": "Signed agent cards, search ranked by price, receipt-backed reputation and recency, "
            "and address resolution for uAgents. Every write is signed over, among others, this registry's id "
            "(`registry_id` in /v1/health), so it cannot be replayed to another registry. "
            "Errors are JSON `{code, message}`.",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document
