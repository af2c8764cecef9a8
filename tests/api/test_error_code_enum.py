"""The codes clients branch on are discoverable: `ErrorCode` in the SDL lists every one."""

from __future__ import annotations

from typing import Any

from chatr.errors import ChatrError, ErrorCode
from chatr.schema import export_sdl
from tests.support.api import register
from tests.support.servers import RunningApp

ENUM_QUERY = """
{ __type(name: "ErrorCode") { kind description enumValues { name description } } }
"""


def _subclasses(cls: type[ChatrError]) -> list[type[ChatrError]]:
    found: list[type[ChatrError]] = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


async def _error_code_type(app: RunningApp) -> dict[str, Any]:
    response = await app.http.post("/graphql", json={"query": ENUM_QUERY})
    return response.json()["data"]["__type"]


async def test_the_schema_lists_exactly_the_codes_chatr_answers_each_described(
    app: RunningApp,
) -> None:
    error_code = await _error_code_type(app)
    assert error_code["kind"] == "ENUM"
    assert "extensions.code" in error_code["description"]
    listed = {value["name"]: value["description"] for value in error_code["enumValues"]}
    assert set(listed) == {code.value for code in ErrorCode}
    assert all(description and len(description) > 20 for description in listed.values())


def test_every_error_class_answers_a_code_the_schema_lists() -> None:
    sdl = export_sdl()
    enum_block = sdl[sdl.index("enum ErrorCode {") : sdl.index("}", sdl.index("enum ErrorCode {"))]
    error_classes: list[type[ChatrError]] = [ChatrError, *_subclasses(ChatrError)]
    for error_class in error_classes:
        assert f"  {error_class.code.value}\n" in enum_block, error_class.__name__


async def test_a_real_error_carries_a_code_from_the_enum(app: RunningApp) -> None:
    user = await register(app.http)
    response = await app.http.post(
        "/graphql",
        json={"query": '{ conversation(id: "no such id") { id } }'},
        headers={"Authorization": f"Bearer {user.token}"},
    )
    codes = {error["extensions"]["code"] for error in response.json()["errors"]}
    listed = {value["name"] for value in (await _error_code_type(app))["enumValues"]}
    assert codes and codes <= listed
