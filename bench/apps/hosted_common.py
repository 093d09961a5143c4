"""bench/hosting.py's workloads, shared by its three apps (hosted_fastapi.py,
hosted_starlette.py, hosted_flask.py) and the harness that checks their answers: the
request each workload sends and the answer it must get. Standard library only (the
harness runs on any python3)."""

import json

#: GET /plaintext answers these bytes as text/plain.
PLAINTEXT = b"Hello, World!"

#: GET USER_PATH answers USER_ANSWER: a record looked up by the path's id.
USER_ID = 42
USER_PATH = f"/users/{USER_ID}"
USERS = {
    USER_ID: {"id": USER_ID, "name": "Ada Lovelace", "email": "ada@example.com", "active": True,
              "roles": ["admin", "editor"]},
}
USER_ANSWER = USERS[USER_ID]

#: POST /echo with ECHO_BODY (application/json) answers the same object.
ECHO_OBJECT = {"name": "Cordless drill", "price": 12.5, "quantity": 4, "tags": ["tools", "sale"],
               "in_stock": True}
ECHO_BODY = json.dumps(ECHO_OBJECT, separators=(",", ":")).encode()
