"""Running a validated mutation from a plan made once for its document.

Why: graphql-core's executor does, on every request, work that depends only on the document:
it looks the operation up, collects the fields of every selection set, and walks each
field's type (non-null, list, leaf, abstract, object) to decide how to complete its value; in
3.3 every operation also goes through the incremental-delivery machinery. For a
`sendMessage` with a stub resolver, run from a plan it costs about 40% less CPU per request
(the resolvers and strawberry's wrappers around them stay as they are; the variables are
coerced by a plan of their own, chatr.schema.variable_plans).

A plan covers only what it can run exactly as graphql-core would:

- a mutation (its root fields run one after the other, as the spec says);
- selection sets of plain fields: no fragments, no directives (`@skip`, `@include` and
  the like depend on variables), no two fields under the same response key (merging);
- field types built of non-null, leaf (scalar, enum) and object types: no lists, no
  interfaces or unions (their runtime type is resolved per value). `__typename` is fine.

Any other document gets no plan (`plan_for` answers None) and graphql-core runs it. So do
variables that fail to coerce: the plan is not run, graphql-core reports the errors.

A leaf field whose resolver is strawberry's own wrapper around a plain attribute or a
method of the object alone (no arguments, no `info`, no field extensions, not async, no
exception handlers: `_direct_resolver`) is read by calling that attribute or method
directly: strawberry would build an `Info`, convert no arguments and call the same function
with the same object, through five calls of its own. On `sendMessage { id seq
conversationId }` those wrappers were most of the CPU of completing the answer.

What runs is graphql-core's own semantics, step for step (`Executor.execute_field`,
`complete_value`, `execute_fields`, `execute_fields_serially`): the same resolve info as
strawberry builds it, argument values from graphql-core's `get_argument_values`, leaf values
through `coerce_output_value`, `is_type_of` checked before an object's fields, errors located
at the field's node and path, a null in a non-null field propagated to the nearest nullable
parent (the whole `data` at the root), errors under an already nulled position dropped
(graphql-core's `CollectedErrors`), and sibling fields awaited concurrently with
`gather_with_cancel`. tests/http/test_operation_plans.py runs documents of every shape
covered, with values and errors at every level, both ways and compares the responses.
"""

from __future__ import annotations

import asyncio
import operator
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLField,
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    Undefined,
    default_field_resolver,
    is_leaf_type,
    located_error,
)
from graphql.execution.executor import CollectedErrors
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from graphql.pyutils import Path, gather_with_cancel, inspect
from graphql.type.definition import GraphQLResolveInfoHelpers
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField
from strawberry.types.fields.resolver import StrawberryResolver

from chatr.schema.variable_plans import VariablePlan, plan_variables

#: Plans kept (each holds its document, so a cached id is never reused for another).
MAX_PLANS = 1_000


class _NotCovered(Exception):
    """The document has something a plan does not cover."""


@dataclass(frozen=True, slots=True)
class Leaf:
    type: GraphQLLeafType


@dataclass(frozen=True, slots=True)
class NonNull:
    inner: Completion


@dataclass(frozen=True, slots=True)
class Object:
    type: GraphQLObjectType
    fields: tuple[FieldPlan, ...]


Completion = Leaf | NonNull | Object


@dataclass(frozen=True, slots=True)
class FieldPlan:
    key: str
    name: str
    node: FieldNode
    nodes: list[FieldNode]
    definition: GraphQLField
    parent_type: GraphQLObjectType
    resolve: Callable[..., Any]
    takes_arguments: bool
    completion: Completion
    #: What `resolve` comes down to, called with the parent object alone; only for leaves
    #: (`_direct_resolver`).
    direct: Callable[[Any], Any] | None = None


@dataclass(frozen=True, slots=True)
class OperationPlan:
    operation: OperationDefinitionNode
    root_type: GraphQLObjectType
    fields: tuple[FieldPlan, ...]
    #: The variables' coercion (chatr.schema.variable_plans); None: graphql-core's.
    variables: VariablePlan | None


class PlanCache:
    """Plans by (document, operation name), made on first use; None for documents no plan
    covers (remembered too)."""

    def __init__(self, schema: GraphQLSchema, *, max_plans: int = MAX_PLANS) -> None:
        self._schema = schema
        self._max_plans = max_plans
        self._plans: OrderedDict[
            tuple[int, str | None], tuple[DocumentNode, OperationPlan | None]
        ] = OrderedDict()

    def plan_for(
        self, document: DocumentNode, operation: OperationDefinitionNode
    ) -> OperationPlan | None:
        key = (id(document), operation.name.value if operation.name else None)
        found = self._plans.get(key)
        if found is not None and found[0] is document:
            return found[1]
        plan = plan_for(self._schema, operation)
        self._plans[key] = (document, plan)
        if len(self._plans) > self._max_plans:
            self._plans.popitem(last=False)
        return plan


def plan_for(schema: GraphQLSchema, operation: OperationDefinitionNode) -> OperationPlan | None:
    """The plan for `operation` (validated against `schema`), or None if it is not covered."""
    root_type = schema.mutation_type
    if operation.operation is not OperationType.MUTATION or root_type is None:
        return None
    if operation.directives:
        return None
    try:
        fields = _plan_selections(schema, root_type, operation.selection_set)
    except _NotCovered:
        return None
    return OperationPlan(operation, root_type, fields, plan_variables(schema, operation))


def _plan_selections(
    schema: GraphQLSchema, parent_type: GraphQLObjectType, selection_set: SelectionSetNode
) -> tuple[FieldPlan, ...]:
    plans: list[FieldPlan] = []
    keys: set[str] = set()
    for selection in selection_set.selections:
        if not isinstance(selection, FieldNode) or selection.directives:
            raise _NotCovered
        key = (selection.alias or selection.name).value
        if key in keys:
            raise _NotCovered
        keys.add(key)
        definition = schema.get_field(parent_type, selection.name.value)
        if definition is None:
            raise _NotCovered
        completion = _plan_type(schema, definition.type, selection)
        leaf = isinstance(completion, Leaf) or (
            isinstance(completion, NonNull) and isinstance(completion.inner, Leaf)
        )
        plans.append(
            FieldPlan(
                key=key,
                name=selection.name.value,
                node=selection,
                nodes=[selection],
                definition=definition,
                parent_type=parent_type,
                resolve=definition.resolve or default_field_resolver,
                takes_arguments=bool(definition.args or selection.arguments),
                completion=completion,
                direct=_direct_resolver(definition) if leaf else None,
            )
        )
    return tuple(plans)


#: The resolvers strawberry makes for a field (`GraphQLCoreConverter.from_resolver`): of a
#: field without a resolver, and the synchronous one of a field with a resolver.
_STRAWBERRY_BASIC = "GraphQLCoreConverter.from_resolver.<locals>._get_basic_result"
_STRAWBERRY_SYNC = "GraphQLCoreConverter.from_resolver.<locals>._resolver"


def _direct_resolver(definition: GraphQLField) -> Callable[[Any], Any] | None:
    """The function strawberry's resolver of `definition` calls in the end, when it calls
    it with the parent object alone and does nothing else that matters; else None.

    Only strawberry's own, unwrapped resolvers qualify (a field whose `resolve` something
    else wrapped keeps it), of fields with no field extensions (permissions are extensions)
    and no arguments. A field without a resolver reads the attribute through the config's
    default resolver, as strawberry's `_get_basic_result` does. A field with one qualifies
    if strawberry's `_resolver` has no exception handlers for it and the resolver takes
    nothing but the parent object (as `self`, `root` or a `Parent[…]` parameter): strawberry
    then calls it with the parent in those places and nothing else (`get_arguments`).
    """
    resolve = definition.resolve
    field = definition.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if resolve is None or type(field) is not StrawberryField or field.extensions or field.arguments:
        return None
    qualname = getattr(resolve, "__qualname__", "")
    if qualname == _STRAWBERRY_BASIC:
        if field.default_resolver is getattr:
            return operator.attrgetter(field.python_name)
        default, name = field.default_resolver, field.python_name
        return lambda source: default(source, name)
    resolver = field.base_resolver
    if (
        qualname != _STRAWBERRY_SYNC
        or type(resolver) is not StrawberryResolver
        or resolver.is_async
        or resolver.info_parameter is not None
        or _closure(resolve).get("field_exception_handlers", True)
        or not callable(resolver.wrapped_func)
    ):
        return None
    function = resolver.wrapped_func
    # As `get_arguments` passes the parent: first if the resolver asks for `self`, and by
    # name to a parameter annotated `Parent[…]` or named `root`.
    # (One parameter can be both: `root: Parent[…]`.)
    names = tuple(
        dict.fromkeys(
            parameter.name
            for parameter in (resolver.parent_parameter, resolver.root_parameter)
            if parameter is not None
        )
    )
    if resolver.self_parameter is None:
        return lambda source: function(**dict.fromkeys(names, source))
    if not names:
        return function
    return lambda source: function(source, **dict.fromkeys(names, source))


def _closure(function: Callable[..., Any]) -> dict[str, Any]:
    """The variables `function` closes over, by name."""
    cells = getattr(function, "__closure__", None) or ()
    names = function.__code__.co_freevars
    return {name: cell.cell_contents for name, cell in zip(names, cells, strict=True)}


def _plan_type(schema: GraphQLSchema, type_: GraphQLOutputType, node: FieldNode) -> Completion:
    if isinstance(type_, GraphQLNonNull):
        return NonNull(_plan_type(schema, type_.of_type, node))
    if is_leaf_type(type_):
        return Leaf(type_)
    if isinstance(type_, GraphQLObjectType) and node.selection_set is not None:
        return Object(type_, _plan_selections(schema, type_, node.selection_set))
    raise _NotCovered  # lists, interfaces, unions


class PlannedExecution:
    """One run of a plan; the counterpart of graphql-core's `Executor` for what it covers."""

    def __init__(
        self,
        schema: GraphQLSchema,
        plan: OperationPlan,
        variable_values: VariableValues,
        *,
        context_value: Any,
        info_class: Callable[..., Any],
        is_awaitable: Callable[[Any], bool],
        operation_extensions: dict[str, Any] | None,
        hide_suggestions: bool,
    ) -> None:
        self.schema = schema
        self.plan = plan
        self.variable_values = variable_values
        self.context_value = context_value
        self.info_class = info_class
        self.is_awaitable = is_awaitable
        self.operation_extensions = operation_extensions
        self.hide_suggestions = hide_suggestions
        self.collected_errors = CollectedErrors()
        self.background = _Background(is_awaitable)
        self.async_helpers = GraphQLResolveInfoHelpers(
            gather=_gather_async_work, track=self.background.track
        )

    async def run(self) -> tuple[dict[str, Any] | None, list[GraphQLError]]:
        """(data, errors): the root fields one after the other, as `execute_fields_serially`."""
        results: dict[str, Any] = {}
        try:
            for field in self.plan.fields:
                path = Path(None, field.key, self.plan.root_type.name)
                result = self.execute_field(field, None, path)
                if self.is_awaitable(result):
                    result = await result
                results[field.key] = result
        except GraphQLError as error:
            self.collected_errors.add(error, None)
            return None, self.collected_errors.errors
        return results, self.collected_errors.errors

    def execute_field(self, field: FieldPlan, source: Any, path: Path) -> Any:
        if field.direct is not None:
            try:
                result = field.direct(source)
                if not self.is_awaitable(result):
                    return self.complete_value(field.completion, field, None, path, result)
            except Exception as raw_error:
                return self.handle_field_error(raw_error, field, path)
            return self._complete_awaitable(field, self._info(field, path), path, result)
        info = self._info(field, path)
        try:
            arguments = (
                get_argument_values(
                    field.definition,
                    field.node,
                    self.variable_values,
                    None,
                    self.hide_suggestions,
                )
                if field.takes_arguments
                else {}
            )
            result = field.resolve(source, info, **arguments)
            if self.is_awaitable(result):
                return self._complete_awaitable(field, info, path, result)
            completed = self.complete_value(field.completion, field, info, path, result)
            if self.is_awaitable(completed):
                return self._await_completed(field, path, completed)
        except Exception as raw_error:
            return self.handle_field_error(raw_error, field, path)
        return completed

    def _info(self, field: FieldPlan, path: Path) -> Any:
        return self.info_class(
            field.name,
            field.nodes,
            field.definition.type,
            field.parent_type,
            path,
            self.schema,
            {},  # fragments: a planned document has none
            None,  # root value
            self.plan.operation,
            self.variable_values.coerced,
            self.context_value,
            self.is_awaitable,
            None,  # abort signal
            self.async_helpers,
            self.operation_extensions,
        )

    def handle_field_error(self, raw_error: Exception, field: FieldPlan, path: Path) -> None:
        error = located_error(raw_error, field.nodes, path.as_list())
        if isinstance(field.definition.type, GraphQLNonNull):
            raise error
        self.collected_errors.add(error, path)
        return None

    async def _complete_awaitable(
        self, field: FieldPlan, info: Any, path: Path, result: Awaitable[Any]
    ) -> Any:
        try:
            resolved = await result
            completed = self.complete_value(field.completion, field, info, path, resolved)
            if self.is_awaitable(completed):
                completed = await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, field, path)
            completed = None
        return completed

    async def _await_completed(self, field: FieldPlan, path: Path, completed: Any) -> Any:
        try:
            return await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, field, path)
            return None

    def complete_value(
        self, completion: Completion, field: FieldPlan, info: Any, path: Path, result: Any
    ) -> Any:
        if isinstance(result, Exception):
            raise result
        if isinstance(completion, NonNull):
            completed = self.complete_value(completion.inner, field, info, path, result)
            if completed is None:
                raise TypeError(
                    f"Cannot return null for non-nullable field {field.parent_type}.{field.name}."
                )
            return completed
        if result is None or result is Undefined:
            return None
        if isinstance(completion, Leaf):
            coerced = completion.type.coerce_output_value(result)
            if coerced is Undefined or coerced is None:
                raise TypeError(
                    f"Expected `{inspect(completion.type)}.coerce_output_value("
                    f"{inspect(result)})` to return non-nullable value, returned:"
                    f" {inspect(coerced)}"
                )
            return coerced
        return self._complete_object(completion, field, info, path, result)

    def _complete_object(
        self, completion: Object, field: FieldPlan, info: Any, path: Path, result: Any
    ) -> Any:
        return_type = completion.type
        if return_type.is_type_of:
            is_type_of = return_type.is_type_of(result, info)
            if self.is_awaitable(is_type_of):

                async def execute_subfields_async() -> dict[str, Any]:
                    if not await cast("Awaitable[bool]", is_type_of):
                        raise _invalid_return_type(return_type, result, field)
                    subfields = self.execute_fields(completion.fields, result, path)
                    if self.is_awaitable(subfields):
                        return cast("dict[str, Any]", await subfields)
                    return cast("dict[str, Any]", subfields)

                return execute_subfields_async()
            if not is_type_of:
                raise _invalid_return_type(return_type, result, field)
        return self.execute_fields(completion.fields, result, path)

    def execute_fields(self, fields: Sequence[FieldPlan], source: Any, path: Path) -> Any:
        """An object's fields, their awaitables awaited concurrently (`execute_fields`)."""
        results: dict[str, Any] = {}
        awaitable_keys: list[str] = []
        try:
            for field in fields:
                result = self.execute_field(
                    field, source, Path(path, field.key, field.parent_type.name)
                )
                results[field.key] = result
                if self.is_awaitable(result):
                    awaitable_keys.append(field.key)
        except Exception:
            if awaitable_keys:
                self.background.settle([results[key] for key in awaitable_keys])
            raise
        if not awaitable_keys:
            return results

        async def get_results() -> dict[str, Any]:
            if len(awaitable_keys) == 1:
                key = awaitable_keys[0]
                results[key] = await results[key]
            else:
                awaited = await gather_with_cancel(*(results[key] for key in awaitable_keys))
                results.update(zip(awaitable_keys, awaited, strict=True))
            return results

        return get_results()


def _gather_async_work(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
    return gather_with_cancel(*values)


class _Background:
    """Sibling work left running when a field failed, settled in the background (graphql-core's
    `track`). An object of its own so that the execution's resolve-info helpers do not refer
    back to the execution: that reference cycle kept every request's context, request and
    response alive until the cyclic collector ran, and under load the collector then walked
    thousands of requests' objects (a tenth of a send's CPU at 1,000 in flight)."""

    __slots__ = ("is_awaitable", "pending")

    def __init__(self, is_awaitable: Callable[[Any], bool]) -> None:
        self.is_awaitable = is_awaitable
        self.pending: set[Awaitable[Any]] = set()

    def settle(self, awaitables: list[Awaitable[Any]]) -> None:
        future = asyncio.gather(*awaitables, return_exceptions=True)
        self.pending.add(future)
        future.add_done_callback(self.pending.discard)

    def track(self, values: Sequence[Any]) -> None:
        awaitables = [value for value in values if self.is_awaitable(value)]
        if awaitables:
            self.settle(awaitables)


def _invalid_return_type(
    return_type: GraphQLObjectType, result: Any, field: FieldPlan
) -> GraphQLError:
    return GraphQLError(
        f"Expected value of type '{return_type}' but got: {inspect(result)}.", field.nodes
    )


def coerce_variables(
    schema: GraphQLSchema,
    plan: OperationPlan,
    raw_variable_values: dict[str, Any] | None,
    *,
    hide_suggestions: bool,
) -> VariableValues | None:
    """The operation's variables coerced as graphql-core's `Executor.build` does; None if
    they do not coerce (graphql-core then runs the request and words the errors)."""
    if plan.variables is not None:
        return plan.variables.coerce(raw_variable_values or {})
    values = get_variable_values(
        schema,
        plan.operation.variable_definitions or (),
        raw_variable_values or {},
        max_errors=50,
        hide_suggestions=hide_suggestions,
    )
    return None if isinstance(values, list) else values
