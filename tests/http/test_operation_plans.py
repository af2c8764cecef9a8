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
from strawberry.extensions import FieldExtension
from strawberry.types.graphql import OperationType

from bench.throughput import SEND
from chatr.schema import build_schema, execution
from chatr.schema.execution import execute_validated
from chatr.schema.operation_plans import NonNull, Object, plan_for
from chatr.schema.validation import HintlessExecutionContext, validated_documents
from chatr.settings import Settings
from tests.support.cycles import collector_paused, cyclic_garbage, named


@strawberry.enum
class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.interface
class Named:
    name: str


class Exclaim(FieldExtension):
    """A field extension: it changes the answer, so no plan may skip it."""

    def resolve(self, next_: Any, source: Any, info: strawberry.Info, **kwargs: Any) -> Any:
        return f"{next_(source, info, **kwargs)}!"


async def _seven() -> int:
    return 7


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
    def shout(self) -> str:
        return self.name.upper()

    @strawberry.field
    def whisper(self, root: strawberry.Parent[Item]) -> str:
        assert root is self
        return root.name.lower()

    @strawberry.field
    @staticmethod
    def quiet(root: strawberry.Parent[Item]) -> str:
        return root.name.lower()

    @strawberry.field
    def with_info(self, info: strawberry.Info) -> str:
        return f"{info.python_name}:{info.field_name}"

    @strawberry.field
    def repeated(self, times: int = 2) -> str:
        return self.name * times

    @strawberry.field(extensions=[Exclaim()])
    def calm(self) -> str:
        return self.name

    @strawberry.field
    def eventually(self) -> int:
        return _seven()  # type: ignore[return-value]  # (a sync resolver's awaitable answer)

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
    (
        "mutation($i: ItemInput!) { make(input: $i) {"
        " name color shout whisper quiet withInfo repeated r: repeated(times: 3) calm eventually"
        " } }",
        {"i": {"name": "ab", "color": "BLUE"}},
    ),
    ("mutation { makeOrFail(fail: false) { shout broken child { shout missing } } }", {}),
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


def _direct_fields(schema: strawberry.Schema, text: str) -> dict[str, bool]:
    plan = plan_for(schema._schema, _operation(text))
    assert plan is not None
    (root,) = plan.fields
    assert isinstance(root.completion, NonNull | Object)
    completion = root.completion.inner if isinstance(root.completion, NonNull) else root.completion
    assert isinstance(completion, Object)
    return {field.key: field.direct is not None for field in completion.fields}


def test_leaves_read_an_attribute_or_call_a_self_only_resolver_directly(
    schema: strawberry.Schema,
) -> None:
    text = (
        "mutation($i: ItemInput!) { make(input: $i) { name color shout whisper quiet broken"
        " eventually withInfo repeated calm child { name } } }"
    )
    assert _direct_fields(schema, text) == {
        # attributes and resolvers of the object alone
        "name": True,
        "color": True,
        "shout": True,
        "whisper": True,
        "quiet": True,
        "broken": True,
        "eventually": True,
        # strawberry's wrapper does something: passes info or arguments, runs an extension
        "withInfo": False,
        "repeated": False,
        "calm": False,
        # not a leaf
        "child": False,
    }


def test_the_send_mutations_answer_is_read_directly() -> None:
    """If strawberry renames its resolvers, this says the plan lost its shortcut."""
    chatr_schema = build_schema(Settings())
    assert _direct_fields(chatr_schema, SEND) == {
        "id": True,
        "seq": True,
        "conversationId": True,
    }


async def test_a_planned_mutation_leaves_no_reference_cycle_behind(
    schema: strawberry.Schema,
) -> None:
    """Each request's execution, and through it its context, must be freed by reference
    counting: the resolve-info helpers once referred back to the execution, and the cyclic
    collector then walked every finished request's objects under load."""
    text = "mutation($i: ItemInput!) { make(input: $i) { name color } }"
    await _run(schema, text, {"i": {"name": "warm"}})  # validated and planned beforehand
    with collector_paused():
        assert await _run(schema, text, {"i": {"name": "x"}}) == (
            {"make": {"name": "x", "color": "RED"}},
            [],
        )
        assert named(cyclic_garbage(), "PlannedExecution") == []
