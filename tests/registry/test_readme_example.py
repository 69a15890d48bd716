"""The registry example in README.md runs as written."""

from __future__ import annotations

import re
from typing import Any

from marketplace.paths import project_root
from tests.registry.conftest import Registry


async def test_readmeRegistryExample_runs(registry: Registry) -> None:
    readme = (project_root() / "README.md").read_text()
    block = re.search(r"<!-- registry-example:start -->\n```python\n(.*?)```", readme, re.S)
    assert block is not None, "README lost its registry example"
    namespace: dict[str, Any] = {}
    exec(compile(block.group(1), "README.md", "exec"), namespace)  # noqa: S102 - our own README
    await namespace["publish_and_find"](str(registry.client.make_url("/")).rstrip("/"))
