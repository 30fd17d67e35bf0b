"""create_app(config) -> the simulator as an aiohttp application."""

from __future__ import annotations

from typing import Any, Dict, Union

from aiohttp import web

from . import calls, control, flows, graph_api
from .config import SimulatorConfig
from .core import Simulator
from .graph_api import SIM_KEY


def create_app(config: Union[SimulatorConfig, Dict[str, Any]]) -> web.Application:
    """Build the application. ``config`` is a SimulatorConfig or its keyword arguments."""
    if isinstance(config, dict):
        config = SimulatorConfig(**config)
    simulator = Simulator(config)
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app[SIM_KEY] = simulator
    graph_api.add_routes(app)
    calls.add_routes(app)  # the Calling API and the patient's phone (calls.py)
    control.add_routes(app)
    flows.add_routes(app, config.flows, config.flows_public_key)  # WhatsApp Flows (simulator/flows.py)

    async def on_startup(_app: web.Application) -> None:
        await simulator.start()

    async def on_shutdown(_app: web.Application) -> None:
        simulator.state.bus.close_all()  # ends open chat-page streams

    async def on_cleanup(_app: web.Application) -> None:
        await simulator.close()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return app


def get_simulator(app: web.Application) -> Simulator:
    return app[SIM_KEY]
