"""Operation variables coerced by a plan made once per operation, not by walking their types.

graphql-core coerces a request's variables (`get_variable_values`) by resolving each
variable's type from the document, walking the value once to check that it is not nested too
deeply, then walking it again beside its type (`coerce_input_value`): for every input field it
asks again whether the type is non-null, a list, an input object or a leaf, looks defaults up
and checks for unknown keys. On `sendMessage` that was about a tenth of the request's CPU,
more than executing the mutation's plan. The types never change once the schema is built, so
a variable plan compiles each variable's type into nested closures once, and a request only
runs them.

A plan covers what it can coerce exactly as graphql-core does:

- variables without a default value in the document (graphql-core coerces a default anew on
  every request: a shared, mutable result must not leak from one request to the next);
- input types that do not contain themselves (so the value's nesting is bounded by the
  type's, below graphql-core's `MAX_NESTING_DEPTH`, and its depth check cannot fail);
- field defaults that coerce (graphql-core's own memoized `coerce_default_value`).

Anything else gets no plan. A plan only ever answers the values graphql-core would; where
graphql-core would report an error (a missing non-null variable, a value of the wrong type,
an unknown field, an input type's own `out_type` raising) the plan answers None and
graphql-core coerces the request and words the errors. tests/api/test_variable_plans.py
compares both ways on values that coerce and values that do not, for every input type of
chatr's schema.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
    OperationDefinitionNode,
    Undefined,
)
from graphql.execution.get_variable_signature import (
    GraphQLVariableSignature,
    get_variable_signature,
)
from graphql.execution.values import VariableValues, VariableValueSource
from graphql.language.parser import MAX_NESTING_DEPTH
from graphql.pyutils import is_iterable
from graphql.type import is_required_input_field
from graphql.utilities.coerce_input_value import coerce_default_value

#: One value coerced to its type; `Undefined` where graphql-core would refuse it.
Coerce = Callable[[Any], Any]


class Unplanned(Exception):
    """Something a variable plan does not cover: graphql-core coerces these variables."""


@dataclass(frozen=True, slots=True)
class _Variable:
    name: str
    signature: GraphQLVariableSignature
    non_null: bool
    coerce: Coerce


@dataclass(frozen=True, slots=True)
class VariablePlan:
    """The coercion of one operation's variables."""

    variables: tuple[_Variable, ...]

    def coerce(self, inputs: dict[str, Any]) -> VariableValues | None:
        """What graphql-core's `get_variable_values` answers for `inputs` when they coerce;
        None when they do not (graphql-core then reports why)."""
        sources: dict[str, VariableValueSource] = {}
        coerced: dict[str, Any] = {}
        for variable in self.variables:
            name = variable.name
            value = inputs.get(name, Undefined)
            if value is Undefined:
                if variable.non_null:
                    return None
                sources[name] = VariableValueSource(variable.signature)
                continue
            sources[name] = VariableValueSource(variable.signature, value)
            coerced_value = variable.coerce(value)
            if coerced_value is Undefined:
                return None
            coerced[name] = coerced_value
        return VariableValues(sources, coerced)


def plan_variables(
    schema: GraphQLSchema, operation: OperationDefinitionNode
) -> VariablePlan | None:
    """The plan for `operation`'s variables, or None if it does not cover them."""
    variables: list[_Variable] = []
    try:
        for node in operation.variable_definitions or ():
            if node.default_value is not None:
                raise Unplanned("a default value in the document")
            signature = get_variable_signature(schema, node)
            if isinstance(signature, GraphQLError):
                raise Unplanned(signature.message)
            coerce = _coercer(signature.type, depth=0, enclosing=frozenset())
            non_null = isinstance(signature.type, GraphQLNonNull)
            variables.append(_Variable(signature.name, signature, non_null, coerce))
    except Unplanned:
        return None
    return VariablePlan(tuple(variables))


def _coercer(type_: GraphQLInputType, *, depth: int, enclosing: frozenset[str]) -> Coerce:
    """`coerce_input_value(value, type_)`, compiled. `depth` counts the list and input object
    levels above, as graphql-core's nesting check does; `enclosing` names the input objects."""
    if depth > MAX_NESTING_DEPTH:
        raise Unplanned("nested deeper than graphql-core allows")
    if isinstance(type_, GraphQLNonNull):
        return _non_null(_coercer(type_.of_type, depth=depth, enclosing=enclosing))
    if isinstance(type_, GraphQLList):
        return _list(_coercer(type_.of_type, depth=depth + 1, enclosing=enclosing))
    if isinstance(type_, GraphQLInputObjectType):
        return _input_object(type_, depth=depth, enclosing=enclosing)
    if isinstance(type_, (GraphQLScalarType, GraphQLEnumType)):
        return _leaf(type_)
    raise Unplanned(type_)


def _non_null(inner: Coerce) -> Coerce:
    def coerce_non_null(value: Any) -> Any:
        if value is None or value is Undefined:
            return Undefined
        return inner(value)

    return coerce_non_null


def _list(item: Coerce) -> Coerce:
    def coerce_list(value: Any) -> Any:
        if value is None or value is Undefined:
            return None
        if not is_iterable(value):  # a single value is a list of one
            coerced = item(value)
            return Undefined if coerced is Undefined else [coerced]
        items: list[Any] = []
        for each in value:
            coerced = item(each)
            if coerced is Undefined:
                return Undefined
            items.append(coerced)
        return items

    return coerce_list


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    out_name: str
    required: bool
    #: The field's coerced default (graphql-core's memoized one), `Undefined` if none.
    default: Any
    coerce: Coerce


def _input_object(
    type_: GraphQLInputObjectType, *, depth: int, enclosing: frozenset[str]
) -> Coerce:
    if type_.name in enclosing:
        raise Unplanned(f"{type_.name} contains itself")
    inside = enclosing | {type_.name}
    fields: list[_Field] = []
    for name, field in type_.fields.items():
        try:
            default = coerce_default_value(field)
        except TypeError as error:  # an invalid default: graphql-core raises per request
            raise Unplanned(str(error)) from error
        fields.append(
            _Field(
                name=name,
                out_name=field.out_name or name,
                required=is_required_input_field(field),
                default=default,
                coerce=_coercer(field.type, depth=depth + 1, enclosing=inside),
            )
        )
    known = frozenset(type_.fields)
    planned = tuple(fields)
    out_type = type_.out_type
    one_of = type_.is_one_of

    def coerce_input_object(value: Any) -> Any:
        if value is None or value is Undefined:
            return None
        if not isinstance(value, dict) or _has_unknown(value, known):
            return Undefined
        coerced: dict[str, Any] = {}
        for field in planned:
            field_value = value.get(field.name, Undefined)
            if field_value is Undefined:
                if field.required:
                    return Undefined
                if field.default is not Undefined:
                    coerced[field.out_name] = field.default
                continue
            coerced_field = field.coerce(field_value)
            if coerced_field is Undefined:
                return Undefined
            coerced[field.out_name] = coerced_field
        if one_of and not _exactly_one(value, coerced):
            return Undefined
        try:
            return out_type(coerced)
        except Exception:  # graphql-core lets it rise: let it word what follows
            return Undefined

    return coerce_input_object


def _has_unknown(value: dict[str, Any], known: frozenset[str]) -> bool:
    return any(name not in known for name, each in value.items() if each is not Undefined)


def _exactly_one(value: dict[str, Any], coerced: dict[str, Any]) -> bool:
    """A oneOf input's rule, as graphql-core checks it: one field given, and not null."""
    given = sum(1 for each in value.values() if each is not Undefined)
    return given == 1 and len(coerced) == 1 and next(iter(coerced.values())) is not None


def _leaf(type_: GraphQLScalarType | GraphQLEnumType) -> Coerce:
    coerce_leaf_value = type_.coerce_input_value

    def coerce_leaf(value: Any) -> Any:
        if value is None or value is Undefined:
            return None
        try:
            return coerce_leaf_value(value)
        except Exception:  # as graphql-core: an invalid value, whatever the error
            return Undefined

    return coerce_leaf
