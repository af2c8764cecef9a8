"""Planned variable coercion answers exactly what graphql-core's `get_variable_values` answers
when the variables coerce, and nothing (so graphql-core words the errors) when they do not
(chatr.schema.variable_plans)."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
    OperationDefinitionNode,
    build_schema,
    parse,
)
from graphql.execution.values import VariableValues, get_variable_values

from bench.throughput import SEND
from chatr.schema import build_schema as build_chatr_schema
from chatr.schema.variable_plans import VariablePlan, plan_variables
from chatr.settings import Settings

SDL = """
enum Color { RED BLUE }

input Deeper { x: Float, when: String = "now" }

input Inner {
  n: Int!
  tags: [String!]
  maybeTags: [String]
  color: Color = RED
  nested: Deeper
  grid: [[Int!]!]
}

input Choice @oneOf { a: Int, b: String }

input Tree { label: String, children: [Tree!] }

type Query { noop(id: ID): Int }
"""

TOY = build_schema(SDL)
CHATR = build_chatr_schema(Settings())._schema


def _operation(text: str) -> OperationDefinitionNode:
    definition = parse(text).definitions[0]
    assert isinstance(definition, OperationDefinitionNode)
    return definition


def _comparable(values: VariableValues) -> tuple[Any, Any]:
    """The answer with types spelled out (graphql-core builds new wrapper types per request,
    and those compare by identity)."""
    sources = {
        name: (
            source.signature.name,
            str(source.signature.type),
            source.signature.default,
            source.value,
        )
        for name, source in values.sources.items()
    }
    return sources, values.coerced


def _both_ways(
    schema: GraphQLSchema, operation: OperationDefinitionNode, inputs: dict[str, Any]
) -> tuple[VariableValues | None, VariableValues | list[Any]]:
    plan = plan_variables(schema, operation)
    assert isinstance(plan, VariablePlan)
    planned = plan.coerce(inputs)
    core = get_variable_values(schema, operation.variable_definitions or (), inputs, max_errors=50)
    return planned, core


def _assert_same(
    schema: GraphQLSchema, operation: OperationDefinitionNode, inputs: dict[str, Any]
) -> bool:
    """Both ways agree on `inputs`; whether they coerced."""
    planned, core = _both_ways(schema, operation, inputs)
    if isinstance(core, list):
        assert planned is None, (inputs, core)
        return False
    assert planned is not None, (inputs, core)
    assert _comparable(planned) == _comparable(core)
    return True


TOY_OPERATION = _operation(
    "query ($inner: Inner!, $maybe: Inner, $color: Color, $choice: Choice,"
    " $ids: [ID!], $count: Int) { noop }"
)

GOOD = {"inner": {"n": 1}}

COERCING = [
    GOOD,
    {**GOOD, "maybe": None, "color": None, "choice": None, "ids": None},
    {"inner": {"n": 2, "tags": ["a", "b"], "color": "BLUE", "nested": {"x": 1}}},
    {"inner": {"n": 2, "tags": "single", "maybeTags": [None, "x"]}},
    {"inner": {"n": 3, "nested": {"x": 2.5, "when": "later"}, "grid": [[1, 2], [3]]}},
    {"inner": {"n": 3, "grid": 4}},
    {"inner": {"n": 3, "nested": None, "tags": None, "color": None}},
    {**GOOD, "maybe": {"n": 4, "nested": {}}},
    {**GOOD, "color": "RED", "count": 9, "ids": [1, "two"]},
    {**GOOD, "ids": 5},
    {**GOOD, "choice": {"a": 1}},
    {**GOOD, "choice": {"b": "x"}},
    {**GOOD, "unused": "ignored"},
]

REFUSED = [
    {},
    {"inner": None},
    {"inner": {}},
    {"inner": {"n": None}},
    {"inner": {"n": "one"}},
    {"inner": {"n": 1.5}},
    {"inner": {"n": 1, "extra": 2}},
    {"inner": {"n": 1, "tags": [None]}},
    {"inner": {"n": 1, "tags": [1]}},
    {"inner": {"n": 1, "color": "GREEN"}},
    {"inner": {"n": 1, "nested": {"x": "wide"}}},
    {"inner": {"n": 1, "nested": 3}},
    {"inner": {"n": 1, "grid": [[1, None]]}},
    {"inner": {"n": 1, "grid": [None]}},
    {"inner": [{"n": 1}]},
    {"inner": "n=1"},
    {**GOOD, "count": 2**40},
    {**GOOD, "count": True},
    {**GOOD, "ids": [True]},
    {**GOOD, "choice": {}},
    {**GOOD, "choice": {"a": 1, "b": "x"}},
    {**GOOD, "choice": {"a": None}},
]


@pytest.mark.parametrize("inputs", COERCING)
def test_coercing_variables_get_what_graphql_core_gives(inputs: dict[str, Any]) -> None:
    assert _assert_same(TOY, TOY_OPERATION, inputs)


@pytest.mark.parametrize("inputs", REFUSED)
def test_refused_variables_get_no_plan_answer_so_graphql_core_words_the_error(
    inputs: dict[str, Any],
) -> None:
    assert not _assert_same(TOY, TOY_OPERATION, inputs)


def test_input_field_defaults_are_graphql_cores_own_values() -> None:
    planned, core = _both_ways(TOY, TOY_OPERATION, {"inner": {"n": 1, "nested": {}}})
    assert planned is not None and not isinstance(core, list)
    assert planned.coerced["inner"] == {"n": 1, "color": "RED", "nested": {"when": "now"}}
    assert planned.coerced["inner"] == core.coerced["inner"]


@pytest.mark.parametrize(
    "text",
    [
        "query ($count: Int = 3) { noop }",
        "query ($inner: Inner = {n: 1}) { noop }",
        "query ($nope: Unknown) { noop }",
        "query ($query: Query) { noop }",
        "query ($tree: Tree) { noop }",  # contains itself: its nesting is unbounded
    ],
)
def test_variables_a_plan_does_not_cover_get_none(text: str) -> None:
    assert plan_variables(TOY, _operation(text)) is None


def test_an_operation_without_variables_coerces_to_nothing() -> None:
    plan = plan_variables(TOY, _operation("{ noop }"))
    assert plan is not None
    assert plan.coerce({"stray": 1}) == VariableValues({}, {})


def test_the_send_mutations_variables_are_planned() -> None:
    operation = _operation(SEND)
    inputs = {
        "input": {
            "conversationId": "Q29udmVyc2F0aW9uOjE=",
            "body": "hello",
            "clientMessageId": "c-1",
        }
    }
    assert _assert_same(CHATR, operation, inputs)
    assert not _assert_same(CHATR, operation, {"input": {"body": "no conversation"}})


def _sample(type_: GraphQLInputType, variant: str) -> Any:
    """A value as a client sends it in JSON: `full` sets every field, `omitted` only the
    non-null ones, `null` nulls the nullable ones, `wrong` puts an object where a leaf goes."""
    nullable = not isinstance(type_, GraphQLNonNull)
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    if nullable and variant == "null":
        return None
    if isinstance(type_, GraphQLList):
        return [_sample(type_.of_type, variant)]
    if isinstance(type_, GraphQLEnumType):
        return next(iter(type_.values))
    if isinstance(type_, GraphQLScalarType):
        if variant == "wrong":
            return {"not": "a leaf"}
        return {"Int": 7, "Float": 1.5, "Boolean": True}.get(type_.name, f"{type_.name}-1")
    assert isinstance(type_, GraphQLInputObjectType)
    return {
        name: _sample(field.type, variant)
        for name, field in type_.fields.items()
        if variant != "omitted" or isinstance(field.type, GraphQLNonNull)
    }


INPUT_TYPES = sorted(
    name
    for name, type_ in CHATR.type_map.items()
    if isinstance(type_, GraphQLInputObjectType) and not name.startswith("__")
)


def test_chatr_has_input_types_to_compare() -> None:
    assert "SendMessageInput" in INPUT_TYPES
    assert len(INPUT_TYPES) > 5


@pytest.mark.parametrize("variant", ["full", "omitted", "null", "wrong"])
def test_every_chatr_input_type_coerces_as_graphql_core_coerces_it(variant: str) -> None:
    coerced = 0
    for name in INPUT_TYPES:
        operation = _operation(f"query ($value: {name}!, $maybe: {name}) {{ __typename }}")
        value = _sample(GraphQLNonNull(CHATR.type_map[name]), variant)  # type: ignore[arg-type]
        coerced += _assert_same(CHATR, operation, {"value": value, "maybe": value})
    if variant == "wrong":
        assert coerced < len(INPUT_TYPES)  # most inputs have a leaf somewhere to refuse
    else:
        assert coerced > len(INPUT_TYPES) // 2  # most samples coerce: a comparison of values
