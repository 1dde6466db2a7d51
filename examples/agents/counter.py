"""Count runs: the smallest agent that keeps state between runs."""


def run(ctx):
    """Increment a counter kept in ctx.state and report it."""
    count = ctx.state.get("count", 0) + 1
    ctx.state["count"] = count
    ctx.log.info("run number %d", count)
    print(f"hello from run {count}")
    return {"count": count}
