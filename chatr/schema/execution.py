"""Executing a document that validated before, without strawberry's per-request machinery.

`strawberry.Schema.execute` builds, for every request, an execution context, one instance of
each schema extension, a runner that enters four hook phases through async context managers,
and a middleware manager; on a send that is about a tenth of the server's CPU, and for a
document already parsed and validated (chatr.schema.validation keeps those) none of it does
anything but look the document up and mask errors. `execute_validated` does exactly that
remainder, and only when it can prove that is all there is:

- the schema's extensions are chatr's own three (`ChatrErrors`, strawberry's
  `MaxTokensLimiter`, the bounded validation) and it has no custom directives: any other
  extension, added later, would be skipped here, so the schema then always takes
  strawberry's path;
- the text is in the validated-documents cache, the operation strawberry would pick (the
  one named, else the first) is there, and its type is allowed (anything else is answered
  by strawberry, which words the errors).

Then graphql-core executes it exactly as strawberry would (same execution context class,
`is_awaitable`, operation extensions), and errors are presented as `ChatrErrors` presents
them. The token limit is moot: the document was parsed under it before it was cached.

A mutation of the shapes chatr.schema.operation_plans covers (plain fields of leaf and object
types: `sendMessage` and most mutations) runs from a plan made once per document instead of
graphql-core's general executor, with the same answers; only for strawberry's own execution
context classes (the plan builds strawberry's resolve info itself).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from graphql import DocumentNode, GraphQLError, GraphQLSchema, OperationDefinitionNode, execute
from strawberry.execution import optimized_is_awaitable
from strawberry.extensions import MaxTokensLimiter
from strawberry.schema import Schema
from strawberry.schema.schema import (
    StrawberryGraphQLCoreExecutionContext,
    _OperationContextAwareGraphQLResolveInfo,
)
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.utils.await_maybe import await_maybe
from strawberry.utils.operation import get_first_operation

from chatr.schema.errors import ChatrErrors, present
from chatr.schema.operation_plans import (
    OperationPlan,
    PlanCache,
    PlannedExecution,
    coerce_variables,
)
from chatr.schema.validation import HintlessExecutionContext, validated_documents

_KNOWN_EXTENSIONS = (ChatrErrors, MaxTokensLimiter)
#: Execution context classes whose resolve info and hints a plan reproduces (the plan
#: builds strawberry's resolve info itself): anything else always runs on graphql-core.
_PLANNED_CONTEXTS = (StrawberryGraphQLCoreExecutionContext, HintlessExecutionContext)


def _plans(schema: GraphQLSchema) -> PlanCache:
    """The schema's plans, kept on the schema object itself (as strawberry keeps its own
    reference there): plans hold the schema's resolvers, so a registry keyed by schema
    would keep every schema ever built alive."""
    plans: PlanCache | None = getattr(schema, "_chatr_operation_plans", None)
    if plans is None:
        plans = PlanCache(schema)
        schema._chatr_operation_plans = plans  # type: ignore[attr-defined]
    return plans


def takes_fast_path(schema: Schema) -> bool:
    """Whether every extension of `schema` is one whose work `execute_validated` does."""
    if schema.directives:
        return False
    extensions = schema.get_extensions()
    return all(
        isinstance(extension, _KNOWN_EXTENSIONS) or getattr(extension, "bounded_validation", False)
        for extension in extensions
    )


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    """The operation strawberry would run: the one named, or else the document's first."""
    if name is None:
        return get_first_operation(document)
    for definition in document.definitions:
        if (
            isinstance(definition, OperationDefinitionNode)
            and definition.name is not None
            and definition.name.value == name
        ):
            return definition
    return None


async def execute_validated(
    schema: Schema,
    query: str | None,
    *,
    variable_values: dict[str, Any] | None,
    context_value: Any,
    operation_name: str | None,
    allowed_operation_types: Collection[OperationType],
    operation_extensions: dict[str, Any] | None,
) -> ExecutionResult | None:
    """The result of a validated document's operation; None when strawberry must run it."""
    if query is None:
        return None
    document = validated_documents(schema._schema).get(query)
    if document is None:
        return None
    operation = _operation(document, operation_name)
    if operation is None or OperationType(operation.operation.value) not in allowed_operation_types:
        return None
    if operation_name is None and operation.name is not None:
        operation_name = operation.name.value  # as strawberry passes it on
    context_class = schema.execution_context_class
    if context_class in _PLANNED_CONTEXTS:
        plan = _plans(schema._schema).plan_for(document, operation)
        if plan is not None:
            planned = await _run_planned(
                schema,
                plan,
                variable_values,
                context_value=context_value,
                operation_extensions=operation_extensions,
                hide_suggestions=context_class is HintlessExecutionContext,
            )
            if planned is not None:
                return planned
    try:
        result = await await_maybe(
            execute(
                schema._schema,
                document,
                context_value=context_value,
                variable_values=variable_values,
                operation_name=operation_name,
                executor_class=schema.execution_context_class,
                is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]  # (a bool-typed TypeGuard)
                operation_extensions=operation_extensions,
            )
        )
    except Exception as error:  # as strawberry: an error of the response
        return ExecutionResult(
            data=None, errors=present([GraphQLError(str(error), original_error=error)])
        )
    errors = present(result.errors) if result.errors else None
    return ExecutionResult(data=result.data, errors=errors)


async def _run_planned(
    schema: Schema,
    plan: OperationPlan,
    variable_values: dict[str, Any] | None,
    *,
    context_value: Any,
    operation_extensions: dict[str, Any] | None,
    hide_suggestions: bool,
) -> ExecutionResult | None:
    """The result of running `plan` (chatr.schema.operation_plans); None if the variables
    do not coerce (graphql-core then runs the request and words the errors)."""
    variables = coerce_variables(
        schema._schema, plan, variable_values, hide_suggestions=hide_suggestions
    )
    if variables is None:
        return None
    execution = PlannedExecution(
        schema._schema,
        plan,
        variables,
        context_value=context_value,
        info_class=_OperationContextAwareGraphQLResolveInfo,
        is_awaitable=optimized_is_awaitable,
        operation_extensions=operation_extensions,
        hide_suggestions=hide_suggestions,
    )
    try:
        data, errors = await execution.run()
    except Exception as error:  # as strawberry: an error of the response
        return ExecutionResult(
            data=None, errors=present([GraphQLError(str(error), original_error=error)])
        )
    return ExecutionResult(data=data, errors=present(errors) if errors else None)
