"""A fake payments partner for the offline demo (127.0.0.1:9101), matching contracts/payments.yaml.

GET /v1/charges/{id}   a charge; `ch_broken` answers with a body that breaks the contract
GET /v1/charges        a list of charges
POST /v1/charges       creates a charge (201)
Every request is printed as the partner saw it, so the demo can show what left egress.
"""

import sys

from aiohttp import web


def charge(cid: str, amount: int = 1200) -> dict:
    return {"id": cid, "amount": amount, "currency": "eur", "status": "succeeded",
            "created": "2026-11-23T10:00:00Z", "description": None, "metadata": {"order": "o_42"}}


def show(request: web.Request) -> None:
    headers = ", ".join(f"{k}: {v[:40]}" for k, v in request.headers.items()
                        if k.lower() not in ("host", "accept", "user-agent", "accept-encoding", "content-length"))
    print(f"  [partner] {request.method} {request.path_qs}  {{{headers}}}", flush=True)


async def get_charge(request: web.Request) -> web.Response:
    show(request)
    cid = request.match_info["id"]
    if cid == "ch_broken":  # amount as a string, and status outside the enum
        return web.json_response({**charge(cid), "amount": "12.00", "status": "refunded"})
    if not cid.startswith("ch_"):
        return web.json_response({"error": {"type": "not_found", "message": "no such charge"}}, status=404)
    return web.json_response(charge(cid))


async def list_charges(request: web.Request) -> web.Response:
    show(request)
    return web.json_response({"object": "list", "data": [charge(f"ch_{i}", 100 * i) for i in range(1, 4)],
                              "has_more": False, "next_cursor": None})


async def create_charge(request: web.Request) -> web.Response:
    show(request)
    body = await request.json()
    return web.json_response(charge("ch_new", int(body.get("amount", 0))), status=201)


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/v1/charges/{id}", get_charge)
    app.router.add_get("/v1/charges", list_charges)
    app.router.add_post("/v1/charges", create_charge)
    return app


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9101
    web.run_app(make_app(), host="127.0.0.1", port=port, print=None)
