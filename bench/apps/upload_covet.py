"""CovetPy: the upload bench's handler (bench/upload.py): counts a streamed body."""

from covet import Covet, Request

app = Covet("upload-bench")


@app.get("/hello")
async def hello(req: Request) -> str:
    return "hello"


@app.post("/upload")
async def upload(req: Request) -> dict[str, int]:
    n = 0
    async for chunk in req.stream():
        n += len(chunk)
    return {"bytes": n}
