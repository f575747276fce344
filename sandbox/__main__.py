"""`python -m sandbox`: serve the sandbox (what `lxp-sync sandbox` runs)."""

import argparse

from lxp_sync_sandbox.server import serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--rate-limit", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    serve(args.host, args.port, args.rows, args.seed, args.latency_ms, args.rate_limit, args.quiet)


if __name__ == "__main__":
    main()
