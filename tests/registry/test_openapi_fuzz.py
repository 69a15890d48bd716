"""schemathesis against the served OpenAPI document: hundreds of generated requests, no 5xx, answers as documented."""

from __future__ import annotations

import time
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from marketplace.registry import RegistrySettings
from protocols.cards import sign_write
from tests.registry.conftest import identity, make_card
from tests.registry.served import served_registry

EXAMPLES_PER_OPERATION = 36
MIN_REQUESTS = 500


def test_openapi_fuzz_noServerErrorsAndConforms(tmp_path: Path) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}"
    with served_registry(RegistrySettings(database_url=db, registry_id="fuzz")) as base_url:
        # One real agent, so reads of its address exercise the found paths too.
        import requests

        alice = identity("fuzz-alice")
        write = sign_write(alice, "register", make_card(alice), registry="fuzz")
        assert requests.post(f"{base_url}/v1/agents", data=write.model_dump_json(), timeout=10).status_code == 201

        schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        # The event stream never ends by design; it has its own test in test_events.py.
        operations = [op for op in operations if op.path != "/v1/events/stream"]
        assert len(operations) >= 10
        calls: list[int] = []
        started = time.monotonic()
        session = requests.Session()
        for operation in operations:
            for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
                strategy = operation.as_strategy(generation_mode=mode)
                positive = mode is schemathesis.GenerationMode.POSITIVE
                if "{address}" in operation.path and mode is schemathesis.GenerationMode.POSITIVE:
                    strategy = st.one_of(strategy, operation.as_strategy(path_parameters={"address": alice.address}))

                @settings(
                    max_examples=EXAMPLES_PER_OPERATION,
                    derandomize=True,  # the same requests every run: a failure reproduces
                    database=None,
                    deadline=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=strategy)
                def exercise(case: schemathesis.Case) -> None:
                    response = case.call(base_url=base_url, session=session, timeout=10)
                    calls.append(response.status_code)
                    assert response.status_code < 500, (case.method, case.path, response.text)
                    if positive:  # noqa: B023 - exercise() runs within this iteration
                        case.validate_response(response)

                try:
                    exercise()
                except Unsatisfiable:
                    # Nothing to make invalid (no parameters, no body): negative mode has no cases here.
                    assert mode is schemathesis.GenerationMode.NEGATIVE
        session.close()
        elapsed = time.monotonic() - started
    print(f"schemathesis: {len(calls)} requests in {elapsed:.1f} s; statuses {sorted(set(calls))}")
    assert len(calls) >= MIN_REQUESTS
    assert all(status < 500 for status in calls)
    assert elapsed < 60
