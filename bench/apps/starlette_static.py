"""Starlette's StaticFiles (served by uvicorn) over $BENCH_STATIC_DIR at /static: the
comparison of bench/static.py."""

import os

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

app = Starlette(routes=[Mount("/static", StaticFiles(directory=os.environ["BENCH_STATIC_DIR"]))])
