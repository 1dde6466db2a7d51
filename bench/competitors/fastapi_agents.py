"""The original plan's API design (FastAPI + SQLModel + asyncpg on PostgreSQL),
serving the same two reads that crates/p38-cli/benches/api.rs measures:
``GET /api/agents?limit=100`` and ``GET /api/agents/{id}``.

The plan (shared/seed/BOOTSTRAP_PLAN.md, Phase 3.1) gives the table, the
stack and ``pool_size=20``; this file is that design and nothing more (the
plan has no authentication, so no token is looked up per request, which
Project38 does).

    python3 fastapi_agents.py seed      # fresh database bench_fastapi, 100 agents
    python3 -m uvicorn fastapi_agents:app --workers 2 --port 8038 --log-level error

``BENCH_DATABASE_URL`` (default postgres://postgres@127.0.0.1:5432/test) is
used only to drop and re-create the database ``bench_fastapi``.
"""

import asyncio
import os
import sys
from datetime import datetime, timezone
from typing import Optional

import asyncpg
from fastapi import FastAPI, HTTPException
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

BASE = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
DB = "bench_fastapi"
SERVER = BASE.rsplit("/", 1)[0]
URL = SERVER.replace("postgres://", "postgresql+asyncpg://", 1) + "/" + DB
# The same code as crates/p38-cli/benches/common (TRIVIAL_AGENT).
CODE = 'def run(ctx):\n    return {"ok": True}\n'


class Agent(SQLModel, table=True):
    """The plan's agents table."""

    __tablename__ = "agents"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(max_length=255)
    description: Optional[str] = Field(default=None, max_length=2000)
    code: Optional[str] = None
    status: str = Field(default="active", max_length=50)
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    updated_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    created_by: Optional[str] = Field(default=None, max_length=255)
    config: Optional[str] = None


engine = create_async_engine(URL, pool_size=20)
app = FastAPI()


@app.get("/api/agents")
async def list_agents(limit: int = 50) -> list[Agent]:
    """Agents, newest first."""
    async with AsyncSession(engine) as s:
        rows = await s.exec(select(Agent).order_by(Agent.id.desc()).limit(limit))
        return list(rows.all())


@app.get("/api/agents/{agent_id}")
async def get_agent(agent_id: int) -> Agent:
    """One agent."""
    async with AsyncSession(engine) as s:
        a = await s.get(Agent, agent_id)
        if a is None:
            raise HTTPException(404, "agent not found")
        return a


async def seed() -> None:
    """A fresh database with 100 agents like the ones Project38's bench makes."""
    c = await asyncpg.connect(BASE)
    await c.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    await c.execute(f"CREATE DATABASE {DB}")
    await c.close()
    eng = create_async_engine(URL)
    async with eng.begin() as conn:
        await conn.run_sync(SQLModel.metadata.create_all)
    async with AsyncSession(eng) as s:
        for i in range(100):
            s.add(Agent(name=f"agent-{i:03}", code=CODE, created_by="admin", config="{}"))
        await s.commit()
    await eng.dispose()


if __name__ == "__main__":
    if sys.argv[1:] == ["seed"]:
        asyncio.run(seed())
    else:
        sys.exit(__doc__)
