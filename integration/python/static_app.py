"""The app of test_static_files.py: app.static over $COVET_STATIC_DIR and a route that
answers with FileResponse (the worker names the file; the gateway sends it)."""

from __future__ import annotations

import os

from covet import Covet, FileResponse, Request

ROOT = os.environ["COVET_STATIC_DIR"]

app = Covet("staticapp")
app.static("/assets", ROOT, index=True)


@app.get("/ready")
async def ready(req: Request) -> str:
    return "ready"


@app.get("/download/{name}")
async def download(req: Request, name: str) -> FileResponse:
    if name == "secret":  # any file the worker names, outside every static directory
        return FileResponse(os.path.join(os.path.dirname(ROOT), "secret.txt"), filename="secret.txt")
    return FileResponse(os.path.join(ROOT, name), filename=f"copy of {name}")


@app.get("/page404")
async def page404(req: Request) -> FileResponse:
    return FileResponse(os.path.join(ROOT, "hello.txt"), status_code=404, media_type="text/html")
