"""Field arguments converted by a plan built once per field, not by walking their types per call.

Before a resolver runs, strawberry turns graphql-core's coerced argument values into Python
values (`strawberry.types.arguments.convert_arguments`): input objects become their classes,
lists and optionals are unwrapped. It does so by inspecting each argument's type afresh on every
call: a dozen `isinstance` checks, annotation resolution and a name spelling per input field,
recursively. On `sendMessage` that walk was about a seventh of the request's CPU, more than
the send's SQL. The types of a field's arguments never change once the schema is built, so
chatr compiles the walk into one closure per field, on its first call, and reuses it.

The plan covers what chatr's schema uses (scalars, enums, lists, optionals, input objects);
for anything else (`Maybe`, strawberry's `GlobalID`, input types that build themselves with
`from_input`) the field keeps strawberry's own conversion, so the result is always strawberry's.
`tests/schema/test_argument_plans.py` checks that for every argument of every field.

strawberry has no hook for this: `install` replaces the name `convert_arguments` in
`strawberry.schema.schema_converter`, the one module that calls it per request. strawberry
is pinned to one version in pyproject.toml, and the test fails if that call site moves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING
from typing import Any

from strawberry.relay.types import GlobalID
from strawberry.scalars import is_scalar
from strawberry.schema import schema_converter
from strawberry.types import arguments as strawberry_arguments
from strawberry.types.arguments import StrawberryArgument
from strawberry.types.base import (
    StrawberryList,
    StrawberryMaybe,
    StrawberryOptional,
    has_object_definition,
)
from strawberry.types.enum import StrawberryEnumDefinition, has_enum_definition
from strawberry.types.lazy_type import LazyType
from strawberry.types.unset import UNSET

Convert = Callable[[Any], Any]
Plan = Callable[[dict[str, Any]], dict[str, Any]]
StrawberryConvert = Callable[..., dict[str, Any]]


class Unplanned(Exception):
    """A type the plan does not cover: strawberry converts this field's arguments itself."""


def _identity(value: Any) -> Any:
    return value


def _is_leaf(type_: Any, scalar_registry: Mapping[object, Any]) -> bool:
    if isinstance(type_, LazyType):
        type_ = type_.resolve_type()
    if has_enum_definition(type_):
        return True
    return isinstance(type_, StrawberryEnumDefinition) or is_scalar(type_, scalar_registry)


def _converter(type_: Any, scalar_registry: Mapping[object, Any], config: Any) -> Convert:
    """The conversion of one value of `type_`, as strawberry's convert_argument does it."""
    if isinstance(type_, StrawberryMaybe) or type_ is GlobalID:
        raise Unplanned(type_)
    if isinstance(type_, StrawberryOptional):
        return _converter(type_.of_type, scalar_registry, config)
    if isinstance(type_, LazyType):
        return _converter(type_.resolve_type(), scalar_registry, config)
    if isinstance(type_, StrawberryList):
        return _list_converter(type_, scalar_registry, config)
    if _is_leaf(type_, scalar_registry):
        return _identity
    if has_object_definition(type_):
        return _input_converter(type_, scalar_registry, config)
    raise Unplanned(type_)


def _list_converter(
    type_: StrawberryList, scalar_registry: Mapping[object, Any], config: Any
) -> Convert:
    item_type = type_.of_type
    if isinstance(item_type, StrawberryOptional):
        item_type = item_type.of_type
    if item_type is not GlobalID and _is_leaf(item_type, scalar_registry):
        # Copied, as strawberry does: graphql-core hands every request that omits the
        # argument the same default list.
        return lambda value: None if value is None else list(value)
    convert_item = _converter(type_.of_type, scalar_registry, config)

    def convert_list(value: Any) -> Any:
        if value is None:
            return None
        return [None if item is None else convert_item(item) for item in value]

    return convert_list


def _input_converter(type_: Any, scalar_registry: Mapping[object, Any], config: Any) -> Convert:
    definition = type_.__strawberry_definition__
    if definition.from_input is not None:
        raise Unplanned(type_)
    defaults = (
        {
            field.python_name: None
            for field in definition.fields
            if field.default_value is MISSING and field.default_factory is MISSING
        }
        if definition.is_input
        else {}
    )
    fields = [
        (
            config.name_converter.from_field(field),
            field.python_name,
            _converter(field.resolve_type(type_definition=definition), scalar_registry, config),
        )
        for field in definition.fields
    ]

    def convert_input(value: Any) -> Any:
        if value is None:
            return None
        kwargs = dict(defaults)
        for graphql_name, python_name, convert in fields:
            if graphql_name in value:
                item = value[graphql_name]
                kwargs[python_name] = item if item is None or item is UNSET else convert(item)
        return type_(**kwargs)

    return convert_input


def build_plan(
    arguments: list[StrawberryArgument], scalar_registry: Mapping[object, Any], config: Any
) -> Plan | None:
    """The compiled conversion of a field's arguments, or None where strawberry must do it."""
    try:
        steps = [
            (
                config.name_converter.from_argument(argument),
                argument.python_name,
                _converter(argument.type, scalar_registry, config),
            )
            for argument in arguments
        ]
    except Unplanned:
        return None

    def plan(value: dict[str, Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        for name, python_name, convert in steps:
            if name in value:
                item = value[name]
                kwargs[python_name] = item if item is None or item is UNSET else convert(item)
        return kwargs

    return plan


class PlannedConversion:
    """A drop-in for strawberry's `convert_arguments` that plans each field once."""

    def __init__(self, fallback: StrawberryConvert) -> None:
        self.fallback = fallback
        # id(arguments) -> (arguments, scalar_registry, config, plan); the objects are kept
        # so that an id reused by another list after garbage collection cannot match.
        self._plans: dict[int, tuple[Any, Any, Any, Plan | None]] = {}

    def __call__(
        self,
        value: dict[str, Any],
        arguments: list[StrawberryArgument],
        scalar_registry: Mapping[object, Any],
        config: Any,
        info: Any = None,
    ) -> dict[str, Any]:
        if not arguments:
            return {}
        entry = self._plans.get(id(arguments))
        if (
            entry is None
            or entry[0] is not arguments
            or entry[1] is not scalar_registry
            or entry[2] is not config
        ):
            entry = (
                arguments,
                scalar_registry,
                config,
                build_plan(arguments, scalar_registry, config),
            )
            self._plans[id(arguments)] = entry
        plan = entry[3]
        if plan is None:
            return self.fallback(value, arguments, scalar_registry, config, info)
        return plan(value)


def install() -> None:
    """Route strawberry's per-request argument conversion through the plans (idempotent)."""
    if isinstance(schema_converter.convert_arguments, PlannedConversion):
        return
    if schema_converter.convert_arguments is not strawberry_arguments.convert_arguments:
        raise RuntimeError(
            "strawberry.schema.schema_converter no longer calls convert_arguments as chatr "
            "expects; review chatr.schema.argument_plans for this strawberry version"
        )
    schema_converter.convert_arguments = PlannedConversion(strawberry_arguments.convert_arguments)
