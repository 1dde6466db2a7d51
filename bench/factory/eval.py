"""Runs the fixed description suite through a running Project38 and prints,
per description and in total: passed on the first try, iterations, tokens,
USD and wall time, with the plan's targets beside them.

Usage: python3 eval.py URL TOKEN DESCRIPTIONS [--check-fake IN OUT PRICE_IN PRICE_OUT]
With --check-fake (the loopback model of fake_anthropic.py), the harness's
arithmetic is checked against what the fake is known to have answered and
any mismatch or failed generation exits 1.
"""

import hashlib
import json
import sys
import time
import urllib.request

TARGET_FIRST_TRY = 0.90
TARGET_USD = 3.0
TARGET_SECONDS = 30.0


def call(url, token, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + token)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.status, json.loads(r.read() or b"null")


def main():
    url, token, path = sys.argv[1:4]
    fake = None
    if len(sys.argv) > 4 and sys.argv[4] == "--check-fake":
        fake = tuple(float(v) for v in sys.argv[5:9])
    descriptions = [l.strip() for l in open(path, encoding="utf-8") if l.strip()]
    rows = []
    for d in descriptions:
        t0 = time.monotonic()
        status, g = call(url, token, "POST", "/api/agents", {"description": d})
        if status != 202:
            raise SystemExit(f"POST /api/agents answered {status}: {g}")
        while g["status"] in ("queued", "running"):
            if time.monotonic() - t0 > 900:
                raise SystemExit(f"generation {g['id']} did not end in 900 s")
            time.sleep(0.2)
            _, g = call(url, token, "GET", f"/api/generations/{g['id']}")
        wall = time.monotonic() - t0
        rows.append((d, g, wall))

    lang = lambda d: "he" if any("\u0590" <= c <= "\u05ff" for c in d) else "en"
    print(f"{'#':>2} {'lang':<4} {'status':<10} {'first try':<9} {'iter':>4} {'tokens in':>9} {'out':>6} {'USD':>8} {'wall s':>7}  description")
    for i, (d, g, wall) in enumerate(rows, 1):
        first = g["status"] == "succeeded" and g["iteration"] == 1
        print(f"{i:>2} {lang(d):<4} {g['status']:<10} {'yes' if first else 'no':<9} {g['iteration']:>4} "
              f"{g['input_tokens']:>9} {g['output_tokens']:>6} {g['cost_usd']:>8.4f} {wall:>7.1f}  {d[:60]}")
    n = len(rows)
    ok = [r for r in rows if r[1]["status"] == "succeeded"]
    first = sum(1 for _, g, _ in ok if g["iteration"] == 1)
    usd = sum(g["cost_usd"] for _, g, _ in rows)
    per_agent = usd / max(len(ok), 1)
    walls = sorted(w for _, _, w in rows)
    median = walls[n // 2]
    print()
    print(f"succeeded:          {len(ok)}/{n}")
    print(f"first try:          {first}/{n} = {100 * first / n:.0f} %   (target {100 * TARGET_FIRST_TRY:.0f} %)")
    print(f"USD per agent:      {per_agent:.4f}   (target under {TARGET_USD:.2f}; all: {usd:.4f})")
    print(f"wall per agent:     median {median:.1f} s, max {walls[-1]:.1f} s   (target under {TARGET_SECONDS:.0f} s)")
    print(f"tokens:             {sum(g['input_tokens'] for _, g, _ in rows)} in, {sum(g['output_tokens'] for _, g, _ in rows)} out")

    if fake is None:
        return 0
    tin, tout, pin, pout = fake
    errors = []
    for d, g, _ in rows:
        digest = hashlib.sha256(d.encode()).hexdigest()
        expect_iter = 2 if int(digest[:8], 16) % 4 == 0 else 1
        expect_usd = expect_iter * (tin * pin + tout * pout) / 1e6
        if g["status"] != "succeeded":
            errors.append(f"{d[:40]}: {g['status']} {g.get('error')}")
        if g["iteration"] != expect_iter:
            errors.append(f"{d[:40]}: {g['iteration']} iterations, the fake needed {expect_iter}")
        if g["input_tokens"] != expect_iter * tin or g["output_tokens"] != expect_iter * tout:
            errors.append(f"{d[:40]}: tokens {g['input_tokens']}/{g['output_tokens']}")
        if abs(g["cost_usd"] - expect_usd) > 1e-9:
            errors.append(f"{d[:40]}: cost {g['cost_usd']} != {expect_usd}")
    for e in errors:
        print("MISMATCH", e, file=sys.stderr)
    print("arithmetic against the loopback model: " + ("ok" if not errors else f"{len(errors)} mismatches"))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
