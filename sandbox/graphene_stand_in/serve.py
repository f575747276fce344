"""Serve a PlusPlus GraphQL API from graphene-django itself, for the tests (in its own venv).

    python serve.py --port 8123 --db /tmp/x/standin.sqlite3 [--seed 42]

Creates the SQLite database, seeds it (deterministic for a seed) and serves, with waitress on
127.0.0.1: `POST /graphql` (`Authorization: Token stand-in-graphql-token`; `/graphql/` is 404),
`GET /_health`, `GET /_truth/<connection>` (every row as the API serializes it),
`POST /_mutate`, `GET|DELETE /_requests` (the request log). `PP_STANDIN_MAX_LIMIT` overrides
graphene's `RELAY_CONNECTION_MAX_LIMIT` (150).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    os.environ["DJANGO_SETTINGS_MODULE"] = "ppstandin.settings"
    os.environ["PP_STANDIN_DB"] = args.db
    import django

    django.setup()
    from django.core.wsgi import get_wsgi_application
    from waitress import serve

    from ppstandin.seed import create_tables, seed

    create_tables()
    seed(args.seed)
    serve(get_wsgi_application(), host="127.0.0.1", port=args.port, threads=4, _quiet=True)


if __name__ == "__main__":
    main()
