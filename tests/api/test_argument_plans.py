"""Planned argument conversion gives exactly what strawberry's own conversion gives.

Every argument of every field in the schema is converted both ways from values shaped like
graphql-core's coerced input (all input fields set; nullable ones null; nullable ones left
out), and the results must be equal: same input classes, same field values, same lists.
"""

from __future__ import annotations

import enum
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
)
from strawberry.schema import schema_converter
from strawberry.types.arguments import convert_arguments as strawberry_convert_arguments

from chatr.schema import build_schema
from chatr.schema.argument_plans import PlannedConversion, build_plan
from chatr.settings import Settings

SCHEMA = build_schema(Settings())
CORE = SCHEMA._schema


def _sample(type_: GraphQLInputType, variant: str) -> Any:
    """A value as graphql-core hands it to a resolver after coercion."""
    nullable = not isinstance(type_, GraphQLNonNull)
    if not nullable:
        type_ = type_.of_type  # type: ignore[union-attr]
    if nullable and variant == "null":
        return None
    if isinstance(type_, GraphQLList):
        return [_sample(type_.of_type, variant), _sample(type_.of_type, "full")]
    if isinstance(type_, GraphQLEnumType):
        value = next(iter(type_.values.values())).value
        assert isinstance(value, enum.Enum) or value is not None
        return value
    if isinstance(type_, GraphQLScalarType):
        return {"Int": 7, "Float": 1.5, "Boolean": True}.get(type_.name, f"{type_.name}-value")
    assert isinstance(type_, GraphQLInputObjectType)
    value = {}
    for name, field in type_.fields.items():
        if variant == "omitted" and not isinstance(field.type, GraphQLNonNull):
            continue
        value[name] = _sample(field.type, variant)
    return value


def _fields_with_arguments() -> list[tuple[str, GraphQLField]]:
    found = []
    for type_ in CORE.type_map.values():
        if isinstance(type_, GraphQLObjectType) and not type_.name.startswith("__"):
            for name, field in type_.fields.items():
                if field.args and field.extensions.get(
                    schema_converter.GraphQLCoreConverter.DEFINITION_BACKREF
                ):
                    found.append((f"{type_.name}.{name}", field))
    return found


FIELDS = _fields_with_arguments()


def test_the_schema_has_fields_with_input_objects_to_plan() -> None:
    names = [name for name, _ in FIELDS]
    assert "Mutation.sendMessage" in names
    assert len(names) > 50


@pytest.mark.parametrize("variant", ["full", "null", "omitted"])
@pytest.mark.parametrize(("name", "field"), FIELDS, ids=[name for name, _ in FIELDS])
def test_planned_conversion_equals_strawberrys(
    name: str, field: GraphQLField, variant: str
) -> None:
    strawberry_field = field.extensions[schema_converter.GraphQLCoreConverter.DEFINITION_BACKREF]
    arguments = strawberry_field.arguments
    raw = {}
    for arg_name, arg in field.args.items():
        if variant == "omitted" and not isinstance(arg.type, GraphQLNonNull):
            continue
        raw[arg_name] = _sample(arg.type, variant)
    registry, config = SCHEMA.schema_converter.scalar_registry, SCHEMA.config
    expected = strawberry_convert_arguments(raw, arguments, registry, config)
    plan = build_plan(arguments, registry, config)
    assert plan is not None, f"{name} fell back to strawberry's conversion"
    assert plan(raw) == expected
    assert (
        PlannedConversion(strawberry_convert_arguments)(raw, arguments, registry, config)
        == expected
    )


def test_the_installed_conversion_is_the_planned_one() -> None:
    assert isinstance(schema_converter.convert_arguments, PlannedConversion)


def test_a_reused_default_list_is_copied_each_time() -> None:
    field = dict(FIELDS)["Mutation.sendMessage"]
    arguments = field.extensions[schema_converter.GraphQLCoreConverter.DEFINITION_BACKREF].arguments
    plan = build_plan(arguments, SCHEMA.schema_converter.scalar_registry, SCHEMA.config)
    assert plan is not None
    shared = ["UploadTicket:1"]
    converted = plan({"input": {"clientMessageId": "c", "uploadIds": shared}})
    converted["input"].upload_ids.append("more")
    assert shared == ["UploadTicket:1"]
