"""SQLAlchemy features through the bridge: the ORM with relationships, a
FastAPI app with an AsyncSession dependency, and failover across two hosts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException, Request
from sqlalchemy import ForeignKey, String, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload

import drivers
from faultproxy import FaultProxy
from mysqlpool import parse_dsn
from mysqlpool.testing import ManualClock
from polling import until
from sa_support import EngineFactory, make_engine, pool_of, sa_url

__all__ = ["make_engine"]  # the fixture, imported for pytest

SUFFIX = uuid.uuid4().hex[:8]  # tables of this run only


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = f"sa_customer_{SUFFIX}"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    orders: Mapped[list[Order]] = relationship(
        back_populates="customer", cascade="all, delete-orphan"
    )


class Order(Base):
    __tablename__ = f"sa_order_{SUFFIX}"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey(f"{Customer.__tablename__}.id"))
    item: Mapped[str] = mapped_column(String(50))
    customer: Mapped[Customer] = relationship(back_populates="orders")


@pytest.fixture
async def orm_engine(make_engine: EngineFactory) -> AsyncIterator[Any]:
    engine = make_engine(pool_size=5)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    try:
        yield engine
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)


async def test_orm_models_with_relationships(orm_engine: Any) -> None:
    sessions = async_sessionmaker(orm_engine, expire_on_commit=False)
    async with sessions() as session, session.begin():
        session.add_all(
            [
                Customer(name="ada", orders=[Order(item="lamp"), Order(item="desk")]),
                Customer(name="bob", orders=[Order(item="pen")]),
            ]
        )
    async with sessions() as session:
        customers = (
            await session.scalars(
                select(Customer).options(selectinload(Customer.orders)).order_by(Customer.name)
            )
        ).all()
        assert [(c.name, sorted(o.item for o in c.orders)) for c in customers] == [
            ("ada", ["desk", "lamp"]),
            ("bob", ["pen"]),
        ]
        ada = customers[0]
        ada.orders.remove(next(o for o in ada.orders if o.item == "lamp"))
        await session.commit()
    async with sessions() as session:
        count = await session.scalar(select(text("COUNT(*)")).select_from(Order))
        assert count == 2  # the orphan was deleted
        order = await session.scalar(select(Order).where(Order.item == "pen"))
        assert order is not None
        customer = await session.get(Customer, order.customer_id)
        assert customer is not None
        assert customer.name == "bob"
    assert pool_of(orm_engine).stats().in_use == 0


async def test_orm_concurrent_sessions_keep_their_own_transactions(orm_engine: Any) -> None:
    sessions = async_sessionmaker(orm_engine, expire_on_commit=False)

    async def place(n: int) -> None:
        async with sessions() as session, session.begin():
            customer = Customer(name=f"c{n}", orders=[Order(item=f"i{n}")])
            session.add(customer)
            if n % 3 == 0:
                raise LookupError(n)  # rolled back: none of it lands

    results = await asyncio.gather(*(place(n) for n in range(30)), return_exceptions=True)
    assert sum(isinstance(r, LookupError) for r in results) == 10
    async with sessions() as session:
        names = set((await session.scalars(select(Customer.name))).all())
    assert names == {f"c{n}" for n in range(30) if n % 3}


# -- FastAPI --------------------------------------------------------------------------


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session; closed (its connection back in the pool) after it."""
    async with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def create_app(sessions: async_sessionmaker[AsyncSession]) -> FastAPI:
    app = FastAPI()
    app.state.sessions = sessions

    @app.post("/customers/{name}")
    async def create_customer(name: str, session: SessionDep) -> dict[str, Any]:
        customer = Customer(name=name, orders=[Order(item="welcome pack")])
        session.add(customer)
        await session.commit()
        return {"id": customer.id, "name": customer.name}

    @app.get("/customers/{customer_id}")
    async def read_customer(customer_id: int, session: SessionDep) -> dict[str, Any]:
        customer = await session.get(
            Customer, customer_id, options=[selectinload(Customer.orders)]
        )
        if customer is None:
            raise HTTPException(status_code=404)
        return {"name": customer.name, "orders": [o.item for o in customer.orders]}

    return app


async def test_fastapi_with_an_async_session_dependency(orm_engine: Any) -> None:
    app = create_app(async_sessionmaker(orm_engine, expire_on_commit=False))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        created = await asyncio.gather(*(client.post(f"/customers/u{n}") for n in range(40)))
        assert [r.status_code for r in created] == [200] * 40, created[0].text
        ids = [r.json()["id"] for r in created]
        read = await asyncio.gather(*(client.get(f"/customers/{i}") for i in ids))
        assert [r.json() for r in read] == [
            {"name": f"u{n}", "orders": ["welcome pack"]} for n in range(40)
        ]
        assert (await client.get("/customers/999999")).status_code == 404
    stats = pool_of(orm_engine).stats()
    assert stats.in_use == 0
    assert stats.open == stats.idle <= 5  # overflow connections closed as they came back


# -- failover ---------------------------------------------------------------------------


async def test_failover_across_two_hosts_through_the_engine(
    make_engine: EngineFactory, mysql_dsn: str
) -> None:
    target = parse_dsn(mysql_dsn)
    async with FaultProxy(target.host, target.port) as first, FaultProxy(
        target.host, target.port
    ) as second:
        clock = ManualClock()
        engine = make_engine(
            sa_url(first.dsn(mysql_dsn)),
            pool_size=2,
            pool_pre_ping=True,
            mysqlpool_options={
                "hosts": f"127.0.0.1:{first.port},127.0.0.1:{second.port}",
                "clock": clock,
            },
        )
        sessions = async_sessionmaker(engine)

        async def where() -> int:
            async with sessions() as session:
                conn = await session.connection()
                raw = await conn.get_raw_connection()
                driver_conn: Any = raw.driver_connection
                return drivers.port_of(driver_conn)

        assert await where() == first.port  # failover: the first host while it is up
        first.refuse()
        first.reset_all()  # the first host goes away, idle connection and all
        clock.advance(2)  # the idle connection is pinged before it is handed out
        assert await where() == second.port  # no error reaches the caller
        hosts = pool_of(engine).stats().hosts
        assert hosts[f"127.0.0.1:{first.port}"].state == "down"
        assert hosts[f"127.0.0.1:{second.port}"].state == "up"
        await until(lambda: first.open == 0, "nothing left on the first host")
