"""The Airbyte peer: a low-code manifest run by PyAirbyte into its DuckDB cache, offline.

Runs in its own venv (`bench/.venvs/airbyte`), so it imports nothing from this project:
`python airbyte_runner.py MANIFEST.json API_TOKEN WORKDIR` prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import time
from importlib.metadata import version

os.environ.setdefault("AIRBYTE_OFFLINE_MODE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")


def main() -> None:
    manifest_path, token, workdir = sys.argv[1:4]
    started = time.monotonic()
    import airbyte as ab
    from airbyte.caches import DuckDBCache

    try:
        cdk = version("airbyte-cdk")
    except Exception:  # the manifest's version only has to be no newer than the CDK
        cdk = "6.0.0"
    with open(manifest_path) as handle:
        manifest = json.load(handle)
    manifest.setdefault("version", cdk)
    source = ab.get_source(
        "source-plusplus-bench",
        source_manifest=manifest,
        config={"api_token": token},
        install_if_missing=False,
    )
    source.select_all_streams()
    cache = DuckDBCache(
        db_path=os.path.join(workdir, "airbyte_cache.duckdb"),
        schema_name="plusplus_rest_airbyte",
        cache_dir=os.path.join(workdir, "cache"),
    )
    imported = time.monotonic()
    source.read(cache=cache, force_full_refresh=True)
    done = time.monotonic()
    facts = {
        "sync_s": done - imported,
        "import_s": imported - started,
        "airbyte": version("airbyte"),
        "airbyte_cdk": cdk,
    }
    sys.stdout.write(json.dumps(facts) + "\n")


if __name__ == "__main__":
    main()
