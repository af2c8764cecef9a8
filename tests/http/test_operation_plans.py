"""A validated mutation run from its plan answers exactly what graphql-core's executor
answers: the same data and the same errors, at every level a plan covers
(chatr.schema.operation_plans)."""

from __future__ import annotations

import asyncio
import enum
from typing import Any

import pytest
import strawberry
from graphql import OperationDefinitionNode, parse
from strawberry.types.graphql import OperationType

from bench.throughput import SEND
from chatr.schema import build_schema, execution
from chatr.schema.execution import execute_validated
from chatr.schema.operation_plans import plan_for
from chatr.schema.validation import HintlessExecutionContext, validated_documents
from chatr.settings import Settings


@strawberry.enum
class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.interface
class Named:
    name: str


class NotAnItem:
    """What a buggy resolver might return where an Item is expected."""

    name = "impostor"


@strawberry.type
class Item(Named):
    name: str
    color: Color = Color.RED

    @strawberry.field
    def broken(self) -> str | None:
        raise ValueError("a nullable leaf failed")

    @strawberry.field
    def missing(self) -> str:
        return None  # type: ignore[return-value]  # (the bug under test)

    @strawberry.field
    async def later(self) -> int:
        await asyncio.sleep(0)
        return len(self.name)

    @strawberry.field
    async def later_broken(self) -> int | None:
        await asyncio.sleep(0)
        raise ValueError("an async nullable leaf failed")

    @strawberry.field
    def child(self) -> Item | None:
        return Item(name=f"{self.name}'s child", color=Color.BLUE)

    @strawberry.field
    async def strict_child(self) -> Item:
        return Item(name=f"{self.name}'s strict child")

    @strawberry.field
    def impostor(self) -> Item | None:
        return NotAnItem()  # type: ignore[return-value]  # (the bug under test)


@strawberry.input
class ItemInput:
    name: str
    color: Color = Color.RED
    copies: int = 1


@strawberry.type
class Query:
    @strawberry.field
    def ping(self) -> str:
        return "pong"


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def make(self, input: ItemInput) -> Item:
        await asyncio.sleep(0)
        return Item(name=input.name * input.copies, color=input.color)

    @strawberry.mutation
    def make_or_fail(self, fail: bool) -> Item | None:
        if fail:
            raise ValueError("the mutation refused")
        return Item(name="made")

    @strawberry.mutation
    async def must_make(self, fail: bool) -> Item:
        if fail:
            raise ValueError("the non-null mutation refused")
        return Item(name="must")

    @strawberry.mutation
    def count(self, by: int = 2) -> int:
        return by * 10


#: Documents a plan covers, with their variables: values and errors at every level.
COVERED: list[tuple[str, dict[str, Any]]] = [
    (
        "mutation M($i: ItemInput!) { make(input: $i) { name color later __typename } }",
        {"i": {"name": "ab", "copies": 2}},
    ),
    ("mutation { a: count b: count(by: 3) made: makeOrFail(fail: false) { n: name } }", {}),
    (
        "mutation($i: ItemInput!) { make(input: $i) { name broken laterBroken } }",
        {"i": {"name": "x"}},
    ),
    ("mutation($i: ItemInput!) { make(input: $i) { name missing } }", {"i": {"name": "x"}}),
    ("mutation { makeOrFail(fail: true) { name } count }", {}),
    ("mutation { makeOrFail(fail: false) { name strictChild { missing } } count }", {}),
    ("mutation { makeOrFail(fail: false) { child { name color child { later } } } }", {}),
    ("mutation { mustMake(fail: true) { name } count }", {}),
    ("mutation { count mustMake(fail: false) { impostor { name } strictChild { later } } }", {}),
    ("mutation($by: Int) { count(by: $by) }", {}),  # a nullable variable left out
    ("mutation($i: ItemInput!) { make(input: $i) { name } }", {"i": {"name": 3}}),  # bad input
]

#: Documents no plan covers: graphql-core runs them.
NOT_COVERED = [
    "query { ping }",
    "mutation { ... on Mutation { count } }",
    "mutation($skip: Boolean!) { count @skip(if: $skip) }",
    "mutation { count count }",
    "mutation($i: ItemInput!) { make(input: $i) { ... on Named { name } } }",
]


@pytest.fixture(params=[False, True], ids=["hints", "hintless"])
def schema(request: pytest.FixtureRequest) -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        types=[Item],
        execution_context_class=HintlessExecutionContext if request.param else None,
    )


def _operation(text: str) -> OperationDefinitionNode:
    definition = parse(text).definitions[0]
    assert isinstance(definition, OperationDefinitionNode)
    return definition


async def _run(schema: strawberry.Schema, text: str, variables: dict[str, Any]) -> Any:
    documents = validated_documents(schema._schema)
    if documents.get(text) is None:
        document = parse(text)
        documents.validated(text, document)
        documents.validated(text, document)  # (admitted on its second arrival)
    result = await execute_validated(
        schema,
        text,
        variable_values=variables,
        context_value=None,
        operation_name=None,
        allowed_operation_types=(OperationType.MUTATION,),
        operation_extensions=None,
    )
    assert result is not None
    errors = [
        (error.message, error.path, [(loc.line, loc.column) for loc in error.locations or ()])
        for error in result.errors or ()
    ]
    return result.data, errors


@pytest.mark.parametrize(("text", "variables"), COVERED)
async def test_a_planned_mutation_answers_what_graphql_core_answers(
    schema: strawberry.Schema,
    text: str,
    variables: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert plan_for(schema._schema, _operation(text)) is not None

    planned = await _run(schema, text, variables)
    monkeypatch.setattr(execution, "_PLANNED_CONTEXTS", ())  # graphql-core runs it
    executed = await _run(schema, text, variables)

    assert planned == executed


def test_every_level_of_the_covered_documents_answers_something_to_compare() -> None:
    """The comparison above is only as good as what it compares: values and errors at the
    root, in objects and in leaves, sync and async, with propagation to every level."""
    texts = " ".join(text for text, _ in COVERED)
    for field in ("broken", "laterBroken", "missing", "strictChild", "impostor", "mustMake"):
        assert field in texts


@pytest.mark.parametrize("text", NOT_COVERED)
def test_documents_a_plan_does_not_cover_get_none(schema: strawberry.Schema, text: str) -> None:
    assert plan_for(schema._schema, _operation(text)) is None


def test_the_send_mutation_runs_from_a_plan() -> None:
    chatr_schema = build_schema(Settings())
    assert plan_for(chatr_schema._schema, _operation(SEND)) is not None
