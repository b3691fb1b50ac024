"""B6: masking secrets in a 5 MB trace file, against a plain literal search.

The Redactor matches every spelling of every secret with one alternation; the baseline
is the cheapest scan there is, `bytes.replace` of each raw secret, over the same data
in the same run. Also times building a Redactor, which every worker does once per run.
CPU time of this process, not wall time: the figures hold on a shared, loaded machine.
"""

import argparse
import json
import random
import re
import time
from typing import Any

from bench.common import load, summary, write_result
from prober.contracts.secrets import Redactor

SECRETS = ("p@ss w0rd!&x=1\"<'>3f9a", "probe+3f9a@example.com", "t0k/Zq7Rm2Xy+=", "Tenant3f9aX")


def trace_like(size: int, rng: random.Random) -> bytes:
    """JSON lines like trace.network: URLs with %-escapes, \\-escapes, &-entities."""
    lines, total = [], 0
    while total < size:
        record = {
            "type": "resource-snapshot",
            "url": f"https://example.com/a/{rng.randrange(10**6)}?q=%2F{rng.random()}&x=%22",
            "headers": [{"name": "cookie", "value": f"s={rng.randbytes(24).hex()}"}],
            "text": '<p class="x">caf\u00e9 &amp; &#34;quoted&#34; \\u0026 </p>' * 3,
        }
        line = json.dumps(record) + "\n"
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--megabytes", type=float, default=5)
    args = parser.parse_args()
    data = trace_like(int(args.megabytes * 1_000_000), random.Random(1))
    build, masked, baseline = [], [], []
    load_before = load()
    for _ in range(args.rounds):
        re.purge()  # each round compiles, as a new worker process does
        started = time.process_time()
        redact = Redactor(SECRETS)
        redact.bytes(b"")  # compile the bytes patterns too
        build.append(time.process_time() - started)
        started = time.process_time()
        redact.bytes(data)
        masked.append(time.process_time() - started)
        started = time.process_time()
        out = data
        for secret in SECRETS:
            out = out.replace(secret.encode(), b"********")
        baseline.append(time.process_time() - started)
    result: dict[str, Any] = {
        "bytes": len(data),
        "secrets": len(SECRETS),
        "build_seconds": summary(build),
        "mask_seconds": summary(masked),
        "baseline_seconds": summary(baseline),
        "ratio_median": summary(masked)["median"] / summary(baseline)["median"],
        "loadavg_before": load_before,
        "loadavg_after": load(),
    }
    print(
        f"B6 masking {len(data) / 1e6:.1f} MB, {len(SECRETS)} secrets: "
        f"median {result['mask_seconds']['median']:.3f} s "
        f"(baseline bytes.replace {result['baseline_seconds']['median']:.4f} s, "
        f"ratio {result['ratio_median']:.0f}x); building the Redactor "
        f"{result['build_seconds']['median']:.3f} s; load {load_before[0]:.1f}"
    )
    write_result("b6_masking", result)


if __name__ == "__main__":
    main()
