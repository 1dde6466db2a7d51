"""Alert when a price rises by a given percentage since the last alert.

Config: {"symbol": "TSLA", "threshold_pct": 5, "price_url": "https://..."}.
The price comes from ``price_url`` (a JSON document with a "price" field;
needs the network permission), or from ``config["price"]`` for a dry run.
"""

import json
import urllib.request


def fetch_price(ctx):
    """Return the current price from the config or the price URL."""
    if "price" in ctx.config:
        return float(ctx.config["price"])
    with urllib.request.urlopen(ctx.config["price_url"], timeout=10) as resp:
        return float(json.load(resp)["price"])


def run(ctx):
    """Compare the price with the baseline kept in ctx.state."""
    symbol = ctx.config.get("symbol", "TSLA")
    threshold = float(ctx.config.get("threshold_pct", 5))
    price = fetch_price(ctx)
    baseline = ctx.state.get("baseline")
    if baseline is None:
        ctx.state["baseline"] = price
        ctx.log.info("%s baseline set at %.2f", symbol, price)
        return {"symbol": symbol, "price": price, "alert": False}
    change = (price - baseline) / baseline * 100
    alert = change >= threshold
    if alert:
        ctx.log.warning("%s rose %.1f%% to %.2f", symbol, change, price)
        ctx.state["baseline"] = price
    return {"symbol": symbol, "price": price, "change_pct": round(change, 2), "alert": alert}
